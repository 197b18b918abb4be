"""Building a hostile world (``corpus.World``) and running a shipped playbook on it the way the
CLI does, without a lab: ``run_playbook`` on a fake cloud (``tests/fakes.py``), this machine as
the rescue system, the guest tree under tmp as the instance's disk (mounted, check mode,
rollback and unmount all exercised), Rich rendering of the progress and the report captured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.output import OutputOptions
from cloudrescue.cli.render import RichEvents, printable
from cloudrescue.cli.reports import render_run
from cloudrescue.disks import AskRoot, MountedGuest, RootFilesystem
from cloudrescue.disks.fstab import parse_fstab
from cloudrescue.disks.probe import os_display_name, parse_os_release
from cloudrescue.disks.session import MountRecord
from cloudrescue.errors import CloudRescueError
from cloudrescue.guestfs import GuestFS
from cloudrescue.journal import Journal
from cloudrescue.phase import DiskChoice
from cloudrescue.playbook.catalog import load_shipped
from cloudrescue.playbook.engine import check_values
from cloudrescue.playbook.params import resolve
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.runner import RunReport, run_playbook
from cloudrescue.playbook.schema import ParameterSpec, Playbook
from cloudrescue.remote.local import LocalHost
from cloudrescue.rescue import RescueSettings, RescueWorkflow
from tests.fakes import FakeClock, FakeCloud, FakeConnect, TreeDisks
from tests.guests import TREE_ROOT
from tests.hostile.corpus import (
    CANARY_DISK,
    CanaryDisk,
    Case,
    World,
    disk_image,
    furnish,
    make_rescue,
)
from tests.playbook.conftest import write_public_key

BOUND = 30.0  # seconds a run may take, FIFOs and 100 GB files included
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None
PASSWORD = "Hostile-guest-2026"


@functools.cache
def _shipped(name: str) -> Playbook:
    return load_shipped(name)  # parsed once: a Playbook is not changed by a run


class HostileDisks(TreeDisks):
    """``TreeDisks`` that looks at the guest the way the real disk session does: os-release
    (its name is shown) and fstab read through ``GuestFS``, unreadable ones taken as absent."""

    def choose_root(
        self, *, disk: str | None, volume_id: str | None, ask: AskRoot | None
    ) -> RootFilesystem:
        values = parse_os_release(self._read("/etc/os-release"))
        name = os_display_name(values) if values else None
        return dataclasses.replace(TREE_ROOT, os_name=name, os_id=values.get("ID"))

    def _read(self, path: str) -> str:
        try:
            return GuestFS(LocalHost(), str(self.tree)).read_text(path) or ""
        except (CloudRescueError, OSError):
            return ""

    def mount(self, *, root: RootFilesystem, chroot: bool, read_only: bool) -> MountedGuest:
        records = [MountRecord("/", str(self.tree), "/dev/vdb1", "ext4", (), "root")]
        if chroot:
            records += [
                MountRecord(p, f"{self.tree}{p}", p, "bind", ("--bind",), "bind")
                for p in ("/dev", "/proc", "/sys", "/run")
            ]
        mount = MountedGuest(
            root=str(self.tree),
            filesystem=root,
            mounts=tuple(records),
            skipped=(),
            fstab=tuple(parse_fstab(self._read("/etc/fstab"))),
            read_only=read_only,
            device_mapper=None,
        )
        self.mounted.append(mount)
        return mount


@dataclass
class Outcome:
    """How one run ended: its report or its error, how long it took, what it printed."""

    report: RunReport | None
    error: BaseException | None
    seconds: float
    finished: bool
    output: str


class Hostile:
    """Builds worlds for cases and runs playbooks on them."""

    def __init__(
        self,
        tmp_path: Path,
        stack: contextlib.ExitStack,
        host_keys: dict[str, bytes],
        disk: CanaryDisk | None,
        lower: Path | None,
    ) -> None:
        self.tmp_path = tmp_path
        self.stack = stack
        self.host_keys = host_keys
        self.disk = disk
        self.lower = lower
        self.key = tmp_path / "operator.pub"
        write_public_key(self.key, "operator@laptop")
        # cloudrescue's journal (SQLite, a sync per commit: half of a run's time on a disk)
        self.journal = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=SHM)))

    def world(self, case: Case) -> World:
        world = World(self.tmp_path / "world", case.guest, disk=self.disk)
        world.base.mkdir()
        if self.disk is not None and self.disk.image.read_bytes() != CANARY_DISK:
            self.disk.reset()  # an earlier case wrote it: that one failed, not this one
        make_rescue(world)
        if case.guest == "debian":
            assert self.lower is not None
            self._overlay(world, self.lower)
        else:
            world.tree.mkdir()
        furnish(world.tree, case.guest, self.host_keys)
        case.plant(world)
        return world

    def _overlay(self, world: World, lower: Path) -> None:
        layers = world.base / "overlay"
        upper, work = layers / "upper", layers / "work"
        for directory in (upper, work, world.tree):
            directory.mkdir(parents=True)
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(world.tree)], check=True
        )
        self.stack.callback(subprocess.run, ["umount", "--lazy", str(world.tree)], check=False)
        world.upper, world.lower = upper, lower

    def given(self, world: World, playbook: str) -> dict[str, list[str]]:
        return {
            "fix-ssh-keys": {"key": [str(self.key)]},
            "reset-password": {"ssh": ["true"]},
            "collect-logs": {"destination": [str(world.out / "logs.tar.gz")]},
        }.get(playbook, {})

    def run(self, world: World, playbook_name: str, *, dry_run: bool) -> Outcome:
        """``run_playbook`` as ``cloudrescue run`` does it, in a thread bounded by ``BOUND``."""
        out, err = io.StringIO(), io.StringIO()
        env = Environment(
            stdin=io.StringIO(),
            stdout=out,
            stderr=err,
            stdin_isatty=False,
            stdout_isatty=False,
            stderr_isatty=False,
        )
        result: dict[str, object] = {}

        def secret(name: str, spec: ParameterSpec) -> Secret:
            return Secret(PASSWORD)

        def work() -> None:
            clock = FakeClock()
            cloud = FakeCloud(clock)
            server = cloud.add("web-1")
            playbook = _shipped(playbook_name)
            try:
                values = resolve(playbook, self.given(world, playbook_name), secret)
                check_values(playbook, values)
                with RichEvents(env) as events:
                    workflow = RescueWorkflow(
                        cloud,
                        Journal(self.journal),
                        events,
                        RescueSettings(),
                        connect=FakeConnect(cloud, world.rescue),
                        clock=clock,
                        sleep=clock.sleep,
                    )
                    report = run_playbook(
                        workflow,
                        server,
                        playbook,
                        values,
                        dry_run=dry_run,
                        disk=DiskChoice(),
                        open_disks=lambda host, mountpoint: HostileDisks(world.tree),
                    )
                result["report"] = report
                render_run(env, OutputOptions(), report)  # for people
                render_run(env, OutputOptions(format="json"), report)  # for scripts
            except BaseException as error:  # judged by the test
                result["error"] = error
                err.write(f"cloudrescue: error: {printable(str(error))}\n")  # as cli.main does

        started = time.monotonic()
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(BOUND)
        finished = not worker.is_alive()
        deadline = time.monotonic() + 2 * BOUND
        while worker.is_alive() and time.monotonic() < deadline:  # failed: clean up after it
            _unblock(world)
            _kill_sandboxes(world)
            worker.join(1.0)
        if not finished:
            _kill_sandboxes(world)
        report = result.get("report")
        error = result.get("error")
        return Outcome(
            report if isinstance(report, RunReport) else None,
            error if isinstance(error, BaseException) else None,
            time.monotonic() - started,
            finished,
            err.getvalue() + out.getvalue(),
        )


def _kill_sandboxes(world: World) -> None:
    """Kill the guest programs this world's run left running (``unshare`` ignores SIGTERM while
    it waits for the sandbox: SIGKILL, which ``--kill-child`` passes on)."""
    wanted = f"sandbox\0{world.tree}\0".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if wanted in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)


def _unblock(world: World) -> None:
    """Give EOF to whatever waits on a planted FIFO (a run that did not finish in time)."""
    for fifo in world.fifos:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))


@pytest.fixture(scope="session")
def host_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """An ed25519 host key pair for the guests (sshd -t wants one)."""
    where = tmp_path_factory.mktemp("host-keys") / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@guest", "-f", str(where)],
        check=True,
    )
    return {path.name: path.read_bytes() for path in where.parent.iterdir()}


@pytest.fixture(scope="session")
def canary_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanaryDisk | None]:
    if os.geteuid() != 0:
        yield None
        return
    yield from disk_image(tmp_path_factory.mktemp("canary-disk"))


@pytest.fixture(scope="session")
def debian_lower() -> Path | None:
    """The lab's cached debootstrapped Debian guest (built when the cache lacks it)."""
    if os.geteuid() != 0:
        return None
    from cloudrescue.lab.rootfs import guest_rootfs

    return guest_rootfs("debian", lambda message: None).path


@pytest.fixture
def hostile(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    host_keys: dict[str, bytes],
    canary_disk: CanaryDisk | None,
    debian_lower: Path | None,
) -> Iterator[Hostile]:
    if os.geteuid() != 0:
        pytest.skip("needs root (guest files given to uid 1000, device nodes, overlay mounts)")
    # The rescue's temporary directories (mktemp -t) are the fake rescue's, under its root.
    monkeypatch.setenv("TMPDIR", str(tmp_path / "world" / "rescue" / "tmp"))
    with contextlib.ExitStack() as stack:
        yield Hostile(tmp_path, stack, host_keys, canary_disk, debian_lower)
