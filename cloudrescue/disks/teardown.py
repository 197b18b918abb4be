"""Everything disk work sets up on the rescue system, recorded so it can be undone in reverse.

Each mount, loop device, LVM activation or rename, temporary directory and device node is
recorded as an ``UndoStep`` right after it is made. ``Teardown.undo_all`` undoes them newest
first, keeps going when one step fails, and may be called again (finished steps are gone).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cloudrescue.disks.commands import last_line, run_tool
from cloudrescue.disks.mountinfo import read_mounts
from cloudrescue.remote.base import Host

StepKind = Literal["mount", "command", "dir", "node"]
BUSY_RETRY_DELAY = 1.0


@dataclass(frozen=True)
class UndoStep:
    """One thing to undo: unmount a path, run a command, remove a directory or node."""

    kind: StepKind
    target: str
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    recursive: bool = False
    failure_hint: str = ""

    def describe(self) -> str:
        if self.kind == "mount":
            return f"unmounted {self.target}"
        if self.kind == "dir":
            return f"removed directory {self.target}"
        if self.kind == "node":
            return f"removed device node {self.target}"
        return f"{self.target} (`{' '.join(self.argv)}`)"


@dataclass
class UnmountReport:
    """What undoing did: done steps, lazy unmounts, who held busy mounts, what failed."""

    done: list[str] = field(default_factory=list)
    lazy: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing was left behind (lazy unmounts count as done, they are reported)."""
        return not self.failed

    def extend(self, other: UnmountReport) -> None:
        self.done += other.done
        self.lazy += other.lazy
        self.busy += other.busy
        self.failed += other.failed


@dataclass
class Teardown:
    """The ordered record of what was set up on ``host``."""

    host: Host
    steps: list[UndoStep] = field(default_factory=list)
    retry_delay: float = BUSY_RETRY_DELAY

    def add(self, step: UndoStep) -> UndoStep:
        """Record a step (call right after the thing it undoes was made)."""
        self.steps.append(step)
        return step

    def undo(self, step: UndoStep, report: UnmountReport | None = None) -> bool:
        """Undo one recorded step now; True (and forgotten) when it worked."""
        report = report if report is not None else UnmountReport()
        if step not in self.steps:
            return True
        if step.kind == "mount":
            self._sync(report)
        return self._attempt(step, report)

    def undo_all(self) -> UnmountReport:
        """Undo every recorded step, newest first; never raises for a step that fails.

        Safe in a ``finally:``: a step that fails (even with the SSH connection gone) is
        reported in ``failed`` and kept, so that calling again retries it.
        """
        report = UnmountReport()
        if any(step.kind == "mount" for step in self.steps):
            self._sync(report)
        for step in reversed(list(self.steps)):
            self._attempt(step, report)
        return report

    # -- one step ---------------------------------------------------------------------------

    def _sync(self, report: UnmountReport) -> None:
        try:
            run_tool(self.host, ["sync"], check=False)
        except Exception as error:  # reported; unmounting goes on
            report.failed.append(f"could not sync: {error}")

    def _attempt(self, step: UndoStep, report: UnmountReport) -> bool:
        try:
            done = self._undo(step, report)
        except Exception as error:  # reported; the next steps still run
            report.failed.append(f"could not undo: {step.describe()}: {error}")
            return False
        if done:
            self.steps.remove(step)
            report.done.append(step.describe())
        return done

    def _undo(self, step: UndoStep, report: UnmountReport) -> bool:
        if step.kind == "mount":
            return self._unmount(step, report)
        if step.kind == "command":
            result = run_tool(self.host, step.argv, check=False, env=dict(step.env) or None)
            if not result.ok:
                hint = f" {step.failure_hint}" if step.failure_hint else ""
                problem = f"could not undo: {step.describe()}: {last_line(result)}."
                report.failed.append(problem + hint)
            return result.ok
        if step.kind == "dir":
            if self.host.lstat(step.target) is None:
                return True
            result = run_tool(self.host, ["rmdir", "--", step.target], check=False)
            if not result.ok:
                report.failed.append(f"could not remove {step.target}: {last_line(result)}")
            return result.ok
        if self.host.lstat(step.target) is not None:  # "node"
            self.host.unlink(step.target)
        return True

    def _is_mounted(self, path: str) -> bool:
        return any(mount.mountpoint == path for mount in read_mounts(self.host))

    def _unmount(self, step: UndoStep, report: UnmountReport) -> bool:
        flags = ["-R"] if step.recursive else []
        for attempt in range(2):
            result = run_tool(self.host, ["umount", *flags, "--", step.target], check=False)
            if result.ok or not self._is_mounted(step.target):
                return True
            if attempt == 0:
                report.busy.append(self._holders(step.target, result.stderr))
                time.sleep(self.retry_delay)
        lazy = run_tool(self.host, ["umount", "--lazy", *flags, "--", step.target], check=False)
        if lazy.ok or not self._is_mounted(step.target):
            report.lazy.append(
                f"{step.target} was busy and was detached lazily: it is freed once the "
                "processes using it exit"
            )
            return True
        report.failed.append(f"could not unmount {step.target}: {last_line(lazy)}")
        return False

    def _holders(self, path: str, stderr: str) -> str:
        fuser = run_tool(self.host, ["fuser", "-vm", path], check=False, timeout=30)
        listing = "\n".join(
            line.rstrip() for line in (fuser.stderr + fuser.stdout).splitlines() if line.strip()
        )
        reason = stderr.strip() or "busy"
        return f"{path}: {reason}" + (f"\n{listing}" if listing else "")


def env_pairs(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Environment as the hashable pairs ``UndoStep`` stores."""
    return tuple(sorted(env.items()))
