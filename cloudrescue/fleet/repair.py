"""One playbook on a fleet, journalled: the procedure `fleet run` / `fleet fix-ssh-keys` /
`fleet reset-password` and `fleet resume --continue` follow.

The fleet run and its members are written to the journal before the first instance starts;
each instance gets a ``RescueWorkflow`` of its own (its progress goes to its own events) over
the one shared cloud backend, and its rescue is journalled under the fleet id; each result is
written as it comes. ``resume_fleet`` unrescues what a dead fleet run left in rescue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.errors import CloudRescueError, InvalidInputError, WrongStateError
from cloudrescue.events import SilentEvents
from cloudrescue.fleet.journal import DONE_RESULTS, FleetJournal, FleetRun
from cloudrescue.fleet.pacing import Pacing
from cloudrescue.fleet.polling import SharedPolling
from cloudrescue.fleet.runner import (
    ErrorBudget,
    FleetAbandonedError,
    FleetObserver,
    FleetResult,
    InstanceEvents,
    Outcome,
    run_fleet,
)
from cloudrescue.journal import Journal
from cloudrescue.phase import DiskChoice
from cloudrescue.playbook.params import Resolved
from cloudrescue.playbook.runner import RunReport, run_playbook
from cloudrescue.playbook.schema import Playbook
from cloudrescue.remote.ssh import connect
from cloudrescue.rescue import Connect, RescueSettings, RescueWorkflow


@dataclass(frozen=True)
class FleetPlaybook:
    """What to run on every instance: the playbook, its values (secrets included, never
    journalled), the parameters as given and where the playbook came from (a catalog name or
    a file's absolute path: both journalled, for ``--continue``)."""

    playbook: Playbook
    values: Mapping[str, Resolved]
    given: Mapping[str, Sequence[str]]
    source: str
    dry_run: bool = False
    disk: str | None = None


@dataclass(frozen=True)
class FleetReport:
    """A fleet run's outcome: its id and every instance's result."""

    fleet_id: str
    playbook: Playbook
    dry_run: bool
    result: FleetResult


class _Recording:
    """The observer, with each finished instance's result written to the journal."""

    def __init__(self, inner: FleetObserver, fleets: FleetJournal, fleet_id: str) -> None:
        self._inner = inner
        self._fleets = fleets
        self._fleet_id = fleet_id

    def started(self, outcome: Outcome) -> None:
        self._inner.started(outcome)

    def stage(self, outcome: Outcome, message: str) -> None:
        self._inner.stage(outcome, message)

    def finished(self, outcome: Outcome) -> None:
        error = outcome.error
        self._fleets.record(
            self._fleet_id,
            outcome.server.id,
            outcome.result,
            error=error.message if error is not None else "",
            exit_status=error.exit_status.name if error is not None else "",
        )
        self._inner.finished(outcome)

    def note(self, message: str) -> None:
        self._inner.note(message)


class FleetRepair:
    """Runs one playbook on many instances through one backend and one journal."""

    def __init__(
        self,
        backend: CloudBackend,
        journal: Journal,
        settings: RescueSettings,
        *,
        connect: Connect = connect,
    ) -> None:
        self.backend = backend
        self.polled = SharedPolling(backend)  # the workers' waits share one listing
        self.journal = journal
        self.fleets = FleetJournal(journal)
        self.settings = settings
        self._connect = connect

    def _repair(
        self, fleet_id: str, work: FleetPlaybook
    ) -> Callable[[ServerInfo, InstanceEvents], RunReport]:
        journal = self.journal.for_fleet(fleet_id)

        def repair(server: ServerInfo, events: InstanceEvents) -> RunReport:
            workflow = RescueWorkflow(
                self.polled, journal, events, self.settings, connect=self._connect
            )
            return run_playbook(
                workflow,
                server,
                work.playbook,
                work.values,
                dry_run=work.dry_run,
                disk=DiskChoice(work.disk),  # no one to ask: several roots fail that instance
                on_step=events.on_step,
            )

        return repair

    def run(
        self,
        servers: Sequence[ServerInfo],
        work: FleetPlaybook,
        pacing: Pacing,
        budget: ErrorBudget,
        observer: FleetObserver,
        *,
        command: str,
        fleet_id: str | None = None,
    ) -> FleetReport:
        """Run ``work`` on ``servers``: a new fleet run, or the rest of ``fleet_id``."""
        if fleet_id is None:
            fleet_id = self.fleets.start(
                cloud=self.backend.cloud_name,
                command=command,
                playbook=work.source,
                params={name: list(texts) for name, texts in work.given.items()},
                dry_run=work.dry_run,
                servers=list(servers),
            )
        else:
            self.fleets.adopt(fleet_id)
        observer.note(f"fleet run {fleet_id}: {len(servers)} instance(s)")
        recording = _Recording(observer, self.fleets, fleet_id)
        try:
            result = run_fleet(servers, pacing, budget, self._repair(fleet_id, work), recording)
        except FleetAbandonedError as error:
            self.fleets.finish(fleet_id, "interrupted")
            error.hint = f"run `cloudrescue fleet resume {fleet_id}` to unrescue them"
            raise
        except BaseException:
            self.fleets.finish(fleet_id, "interrupted")
            raise
        self.fleets.finish(fleet_id, "interrupted" if result.interrupted else "finished")
        return FleetReport(fleet_id, work.playbook, work.dry_run, result)

    def to_continue(self, run: FleetRun) -> list[ServerInfo]:
        """The members of ``run`` that never ran (not-started, interrupted), as the cloud
        shows them now; refused while the run's process is alive."""
        if run.state == "running" and run.process_alive:
            raise WrongStateError(
                f"fleet run {run.fleet_id} is still running (process {run.pid})",
                hint="wait for it, or stop it with Ctrl-C",
            )
        left = [member for member in run.members if member.result not in DONE_RESULTS]
        if not left:
            raise InvalidInputError(
                f"fleet run {run.fleet_id}: every instance was already done, nothing to continue"
            )
        return [self.backend.get_server(member.server_id) for member in left]

    def resume(self, run: FleetRun) -> list[str]:
        """Unrescue what fleet run ``run`` left in rescue (its journal entries still open, their
        process gone); one line per instance of what was done."""
        if run.state == "running" and run.process_alive:
            raise WrongStateError(
                f"fleet run {run.fleet_id} is still running (process {run.pid})",
                hint="wait for it, or stop it with Ctrl-C",
            )
        workflow = RescueWorkflow(
            self.backend, self.journal, SilentEvents(), self.settings, connect=self._connect
        )
        done: list[str] = []
        for entry in self.journal.entries():
            if entry.fleet_id != run.fleet_id or entry.process_alive:
                continue
            try:
                done.append(workflow.resume(entry))
            except CloudRescueError as error:
                done.append(f"{entry.server_name}: failed: {error.message}")
        if run.state == "running":
            self.fleets.finish(run.fleet_id, "interrupted")
        return done
