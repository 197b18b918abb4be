"""Nova's state machine over the lab runtime: checks, task states, worker threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar, runtime_checkable

from cloudrescue.errors import InvalidInputError
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.error_bodies import instance_not_found, invalid_state
from cloudrescue.lab.api.store import ServerRecord, ServerStore, launch_time
from cloudrescue.lab.disk_files import GuestFile
from cloudrescue.lab.model import BastionInfo, BootOutcome, InstanceSpec, RescueRequest

log = logging.getLogger(__name__)
T = TypeVar("T")

PROVISION_PARALLELISM = 4
UNSEEN_ANNOUNCE_DELAY = 30.0  # a rescue no client has seen prints its host keys by then


class ComputeFailedError(Exception):
    """A failure of the compute (the lab's hypervisor) recorded as nova records it: the
    instance goes to ERROR with an instance fault of ``code`` and ``message`` (nova's
    ``wrap_instance_fault``), and its ``power_state`` is what the failure left."""

    def __init__(self, message: str, *, code: int, power_state: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.power_state = power_state


class Runtime(Protocol):
    """What the daemon needs of ``cloudrescue.lab.runtime.LabRuntime`` (docs/lab-design.md)."""

    def provision(self, spec: InstanceSpec) -> None: ...
    def boot(self, spec: InstanceSpec) -> BootOutcome: ...
    def shutdown(self, spec: InstanceSpec) -> None: ...
    def rescue(self, spec: InstanceSpec, request: RescueRequest) -> None: ...
    def unrescue(self, spec: InstanceSpec) -> BootOutcome: ...
    def console_output(self, spec: InstanceSpec, length: int | None) -> str: ...
    def break_instance(self, spec: InstanceSpec, scenario: str) -> str: ...
    def write_files(self, spec: InstanceSpec, files: list[GuestFile]) -> str: ...
    def announce_host_keys(self, spec: InstanceSpec) -> bool: ...
    def cut_ssh(self, spec: InstanceSpec) -> int: ...
    def destroy(self, spec: InstanceSpec) -> None: ...


@runtime_checkable
class BastionRuntime(Protocol):
    """A runtime that can make the lab's bastion and private network (``LabRuntime`` can)."""

    def bastion(self) -> BastionInfo | None: ...
    def make_bastion(self) -> BastionInfo: ...


@dataclass(frozen=True)
class Transition:
    """An action nova accepts in some states; ``task_state`` is shown while it runs."""

    action: str
    vm_states: frozenset[str]
    task_states: frozenset[str | None]
    task_state: str


_IDLE: frozenset[str | None] = frozenset({None})
RESCUE = Transition("rescue", frozenset({st.ACTIVE, st.STOPPED, st.ERROR}), _IDLE, st.RESCUING)
UNRESCUE = Transition("unrescue", frozenset({st.RESCUED}), _IDLE, st.UNRESCUING)
STOP = Transition("stop", frozenset({st.ACTIVE, st.ERROR}), _IDLE, st.POWERING_OFF)
START = Transition("start", frozenset({st.STOPPED}), _IDLE, st.POWERING_ON)
SOFT_REBOOT = Transition("reboot", frozenset({st.ACTIVE}), _IDLE, st.REBOOTING)
HARD_REBOOT = Transition(
    "reboot",
    frozenset({st.ACTIVE, st.STOPPED, st.ERROR}),
    frozenset({None, st.REBOOTING, st.REBOOT_STARTED, st.REBOOTING_HARD}),
    st.REBOOTING_HARD,
)


def check_state(record: ServerRecord, action: str, transition: Transition | None = None) -> None:
    """Raise nova's 409 when ``record`` is not in a state ``transition`` starts from."""
    vm_states = transition.vm_states if transition else frozenset({st.ACTIVE, st.STOPPED})
    task_states = transition.task_states if transition else _IDLE
    if record.vm_state not in vm_states:
        raise invalid_state(action, record.id, "vm_state", record.vm_state)
    if record.task_state not in task_states:
        raise invalid_state(action, record.id, "task_state", record.task_state)


class Machine:
    """Runs runtime calls in worker threads, one at a time per instance, and records the result."""

    def __init__(
        self,
        runtime: Runtime,
        store: ServerStore,
        delay: Callable[[], float],
        workers: int = 32,
        announce_delay: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self._delay = delay
        self._announce_delay = announce_delay
        self._announcements: dict[str, tuple[object, threading.Timer]] = {}
        self._rescue_seen: set[str] = set()  # RESCUE served to a client since the request
        self._announcements_guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-op")
        # Console reads have their own threads: behind 32 rescues booting at once they waited
        # seconds for a free operation thread, where nova answers them from the compute node.
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lab-read")
        self._provisioning = threading.BoundedSemaphore(PROVISION_PARALLELISM)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stopping = threading.Event()

    def _lock(self, server_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(server_id, threading.Lock())

    def stop(self) -> None:
        """Let running runtime calls finish; jobs not yet started give up their task state.

        Rescue systems whose host-key block is still due print it now: they run on without
        the daemon, as a rescue's cloud-init does without nova-api.
        """
        self._stopping.set()
        self._pool.shutdown(wait=True)
        self._reads.shutdown(wait=True)
        with self._announcements_guard:
            due = list(self._announcements.items())
            self._announcements.clear()
        for server_id, (_token, timer) in due:
            timer.cancel()
            self._print_host_keys(server_id)

    def begin(self, server_id: str, transition: Transition) -> ServerRecord:
        """Check the state and set the task state (nova's API half of an action)."""
        try:
            with self.store.edit(server_id) as record:
                check_state(record, transition.action, transition)
                record.task_state = transition.task_state
                accepted = ServerRecord.from_json(record.to_json())
        except KeyError:
            raise instance_not_found(server_id) from None
        self._cancel_announcement(server_id)  # the rescue system goes away before it prints
        return accepted

    def reset_state(self, server_id: str, vm_state: str) -> None:
        """Nova's ``os-resetState``: set the vm_state, clear the task state, touch nothing
        else (the hypervisor is not asked; a job in flight still records its result)."""
        try:
            with self.store.edit(server_id) as record:
                record.vm_state = vm_state
                record.task_state = None
        except KeyError:
            raise instance_not_found(server_id) from None

    # -- the rescue's host-key block, printed a while after RESCUE -----------------------
    #
    # A real rescue boots and runs cloud-init for tens of seconds after nova reports RESCUE
    # before it prints its keys; the lab compresses that to ``announce_delay`` seconds and
    # counts them from the moment an API client is first served the status RESCUE, so a
    # client that polls promptly is never beaten to its console baseline by a slow machine
    # (the compression's artefact, not a cloud's behaviour). A rescue nobody looks at prints
    # after ``UNSEEN_ANNOUNCE_DELAY`` at the latest.

    def _schedule_announcement(self, spec: InstanceSpec) -> None:
        with self._announcements_guard:
            seen = spec.id in self._rescue_seen
        self._start_announcement_timer(spec.id, spec.name, seen=seen)

    def _start_announcement_timer(self, server_id: str, name: str, *, seen: bool) -> None:
        token = object()
        delay = max(0.0, self._announce_delay())
        if not seen:
            delay = max(delay, UNSEEN_ANNOUNCE_DELAY)
        timer = threading.Timer(delay, self._announce, args=(server_id, token))
        timer.daemon = True
        timer.name = f"lab-announce-{name}"
        with self._announcements_guard:
            previous = self._announcements.get(server_id)
            self._announcements[server_id] = (token, timer)
        if previous is not None:
            previous[1].cancel()
        if delay == 0.0:  # now, before the client that saw RESCUE has its answer
            self._announce(server_id, token)
            return
        timer.start()

    def rescue_seen(self, record: ServerRecord) -> None:
        """An API client was served ``record`` with the status RESCUE: the rescue's block
        is now due ``announce_delay`` seconds from here."""
        with self._announcements_guard:
            if record.id in self._rescue_seen:
                return
            self._rescue_seen.add(record.id)
            pending = record.id in self._announcements
        if pending:
            self._start_announcement_timer(record.id, record.spec.name, seen=True)

    def _announce(self, server_id: str, token: object) -> None:
        with self._announcements_guard:
            current = self._announcements.get(server_id)
            if current is None or current[0] is not token:
                return  # cancelled: the rescue was left, or the daemon is stopping
            del self._announcements[server_id]
            self._print_host_keys(server_id)

    def _print_host_keys(self, server_id: str) -> None:
        record = self.store.get(server_id)
        if record is None:
            return
        try:
            if self.runtime.announce_host_keys(record.spec):
                log.info("%s: the rescue printed its host keys", record.spec.name)
        except Exception:
            log.exception("%s: printing the rescue's host keys failed", record.spec.name)

    def _cancel_announcement(self, server_id: str) -> None:
        with self._announcements_guard:
            pending = self._announcements.pop(server_id, None)
            self._rescue_seen.discard(server_id)
        if pending is not None:
            pending[1].cancel()

    def _finish_idle(self, server_id: str, task_state: str | None) -> None:
        try:
            with self.store.edit(server_id) as record:
                if record.task_state == task_state:
                    record.task_state = None
        except KeyError:
            return

    def _job(
        self,
        server_id: str,
        task_state: str | None,
        work: Callable[[InstanceSpec], T],
        finish: Callable[[ServerRecord, T], None],
        delay: bool,
        fatal: bool,
        after: Callable[[InstanceSpec], None] | None = None,
    ) -> T:
        with self._lock(server_id):
            record = self.store.get(server_id)
            if record is None:
                raise LookupError(server_id)
            if self._stopping.is_set():
                self._finish_idle(server_id, task_state)
                raise RuntimeError("the lab daemon is stopping")
            try:
                result = work(record.spec)
            except ComputeFailedError as error:
                log.error("%s: %s failed: %s", record.spec.name, task_state, error.message)
                with self.store.edit(server_id) as failed:
                    failed.vm_state = st.ERROR
                    failed.task_state = None
                    failed.power_state = error.power_state
                    failed.set_fault(error.message, code=error.code)
                raise
            except Exception as error:
                log.exception("%s: %s failed", record.spec.name, task_state or "operation")
                if not fatal or isinstance(error, InvalidInputError):
                    self._finish_idle(server_id, task_state)
                    raise
                with self.store.edit(server_id) as failed:
                    failed.vm_state = st.ERROR
                    failed.task_state = None
                    failed.set_fault(f"{type(error).__name__}: {error}")
                raise
            if delay:
                time.sleep(max(0.0, self._delay()))
            with self.store.edit(server_id) as done:
                finish(done, result)
                if done.task_state == task_state:
                    done.task_state = None
            if after is not None:
                after(record.spec)
            return result

    def _submit(
        self,
        record: ServerRecord,
        work: Callable[[InstanceSpec], T],
        finish: Callable[[ServerRecord, T], None],
        delay: bool = True,
        fatal: bool = True,
        after: Callable[[InstanceSpec], None] | None = None,
    ) -> Future[T]:
        log.info("%s: %s", record.spec.name, record.task_state or "admin operation")
        return self._pool.submit(
            self._job, record.id, record.task_state, work, finish, delay, fatal, after
        )

    def rescue(
        self, server_id: str, request: RescueRequest, *, fails: bool = False
    ) -> Future[None]:
        """Rescue; the rescue's host-key block is printed ``announce_delay`` seconds after a
        client first sees RESCUE (a real rescue's cloud-init prints it long after nova
        reports RESCUE; see ``rescue_seen``).

        ``fails`` (the ``rescue_fails`` fault): the rescue fails in the compute as nova's
        ``rescue_instance`` does when its driver fails: the guest was powered off first, no
        rescue system comes up, and after the transition delay the instance is ERROR (power
        state SHUTDOWN) with the fault ``Instance <id> cannot be rescued: Driver Error: ...``
        (code 400, nova's ``InstanceNotRescuable``). The API accepted the request (200 and
        ``adminPass``), as nova's does: its rescue is a cast to the compute.
        """
        record = self.begin(server_id, RESCUE)
        if fails:
            return self._submit(record, self._failed_rescue, _nothing, delay=False)
        deferred = replace(request, defer_host_keys=True)
        return self._submit(
            record,
            lambda spec: self.runtime.rescue(spec, deferred),
            _running(st.RESCUED),
            after=self._schedule_announcement,
        )

    def _failed_rescue(self, spec: InstanceSpec) -> None:
        self.runtime.shutdown(spec)  # nova powers the guest off before its driver rescues
        time.sleep(max(0.0, self._delay()))
        raise ComputeFailedError(
            f"Instance {spec.id} cannot be rescued: Driver Error: the rescue system did not "
            "start (the lab's rescue_fails fault)",
            code=400,
            power_state=st.SHUTDOWN,
        )

    def unrescue(self, server_id: str) -> Future[BootOutcome]:
        record = self.begin(server_id, UNRESCUE)
        return self._submit(record, self.runtime.unrescue, _booted)

    def stop_server(self, server_id: str) -> Future[None]:
        record = self.begin(server_id, STOP)
        return self._submit(record, self.runtime.shutdown, _stopped)

    def start_server(self, server_id: str) -> Future[BootOutcome]:
        record = self.begin(server_id, START)
        return self._submit(record, self.runtime.boot, _booted)

    def reboot(self, server_id: str, hard: bool) -> Future[BootOutcome]:
        record = self.begin(server_id, HARD_REBOOT if hard else SOFT_REBOOT)

        def reboot(spec: InstanceSpec) -> BootOutcome:
            self.runtime.shutdown(spec)
            return self.runtime.boot(spec)

        return self._submit(record, reboot, _booted)

    def provision(self, record: ServerRecord) -> Future[BootOutcome]:
        """Create and boot a new instance (at most four at a time)."""

        def provision(spec: InstanceSpec) -> BootOutcome:
            with self._provisioning:
                if self._stopping.is_set():
                    raise RuntimeError("the lab daemon is stopping")
                self.runtime.provision(spec)
                return self.runtime.boot(spec)

        return self._submit(record, provision, _booted, delay=False)

    def break_instance(self, server_id: str, scenario: str) -> Future[str]:
        """The runtime's break scenario; the guest reboots, so a SHUTOFF instance comes up."""

        record = self._get(server_id)
        return self._submit(
            record, lambda spec: self.runtime.break_instance(spec, scenario), _rebooted, delay=False
        )

    def write_files(self, server_id: str, files: list[GuestFile]) -> Future[str]:
        """Files written on the instance's disk; like a break, the guest reboots."""
        record = self._get(server_id)
        return self._submit(
            record, lambda spec: self.runtime.write_files(spec, files), _rebooted, delay=False
        )

    def cut_ssh(self, server_id: str) -> Future[int]:
        return self._submit(
            self._get(server_id), self.runtime.cut_ssh, _nothing, delay=False, fatal=False
        )

    def destroy(self, server_id: str) -> Future[None]:
        """Stop and delete the instance, then forget its record."""

        def destroy(spec: InstanceSpec) -> None:
            self._cancel_announcement(spec.id)
            self.runtime.destroy(spec)
            self.store.remove(spec.id)

        return self._pool.submit(self._locked, server_id, destroy)

    def _locked(self, server_id: str, work: Callable[[InstanceSpec], None]) -> None:
        with self._lock(server_id):
            record = self.store.get(server_id)
            if record is None:
                raise LookupError(server_id)
            work(record.spec)

    def console_output(self, spec: InstanceSpec, length: int | None) -> Future[str]:
        """Read the console log; not serialised with the instance's other operations, nor
        queued behind any instance's (its own threads)."""
        return self._reads.submit(self.runtime.console_output, spec, length)

    def _get(self, server_id: str) -> ServerRecord:
        record = self.store.get(server_id)
        if record is None:
            raise instance_not_found(server_id)
        return record


def _running(vm_state: str) -> Callable[[ServerRecord, object], None]:
    def finish(record: ServerRecord, _result: object) -> None:
        record.vm_state = vm_state
        record.power_state = st.RUNNING
        record.launched_at = record.launched_at or launch_time()

    return finish


def _booted(record: ServerRecord, outcome: BootOutcome) -> None:
    _running(st.ACTIVE)(record, outcome)
    record.boot_outcome = outcome


def _rebooted(record: ServerRecord, _detail: str) -> None:
    """After a disk edit (break, files): the guest booted again, so a SHUTOFF one is up."""
    if record.vm_state in (st.STOPPED, st.ERROR):
        record.vm_state = st.ACTIVE
        record.power_state = st.RUNNING
    record.boot_outcome = None


def _stopped(record: ServerRecord, _result: None) -> None:
    record.vm_state = st.STOPPED
    record.power_state = st.SHUTDOWN


def _nothing(_record: ServerRecord, _result: object) -> None:
    return None
