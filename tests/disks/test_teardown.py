"""Undoing in a ``finally:`` must never raise, even when the rescue system is gone."""

from __future__ import annotations

from cloudrescue.disks.teardown import Teardown, UndoStep
from cloudrescue.errors import ConnectionFailedError

from .scripted import ScriptedHost


def test_lost_connection_is_reported_and_steps_are_kept_for_a_retry() -> None:
    def gone(argv: list[str]) -> tuple[int, str]:
        raise ConnectionFailedError("the SSH connection to rescue was lost")

    host = ScriptedHost(gone)
    teardown = Teardown(host)
    teardown.add(UndoStep("command", "detached /dev/loop9", argv=("losetup", "-d", "/dev/loop9")))
    teardown.add(UndoStep("mount", "/mnt"))
    report = teardown.undo_all()
    assert not report.ok and len(teardown.steps) == 2
    assert any("connection" in line for line in report.failed)
    host.answer = lambda argv: (0, "")
    again = teardown.undo_all()
    assert again.ok and teardown.steps == []
    assert again.done == ["unmounted /mnt", "detached /dev/loop9 (`losetup -d /dev/loop9`)"]
