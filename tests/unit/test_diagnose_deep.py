"""``diagnose --deep`` and ``--fix`` without root: the fake cloud, this machine as the rescue,
a guest tree as the disk (``tests/fakes.py``), the playbooks of a small catalog.

--deep: the catalog's playbooks that declare deep checks and need no parameter run in check
mode in one rescue; one that would change something is a finding with what it would change as
evidence, one that would not clears its cause, the others are skipped and said so. --fix: the
suggested playbooks, each once, in rank order, applied in one rescue.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.deep import DeepSource, select
from cloudrescue.diagnose.engine import Diagnosis, diagnose
from cloudrescue.diagnose.findings import Evidence, Finding
from cloudrescue.diagnose.fix import suggested
from cloudrescue.phase import DiskChoice
from cloudrescue.playbook.runner import run_playbooks
from tests.playbook.conftest import load

from .test_diagnose_engine import KEY, ScriptedProbe
from .test_run_several import Several

WOULD_CHANGE = """\
name: fix-name
description: Give the guest its name back.
symptoms:
  deep: [fstab]
steps:
  - name: Name the guest
    action: ensure_line
    path: /etc/hostname
    line: web-1
    match: "^[a-z0-9-]+$"
"""
CLEAN = """\
name: keep-name
description: Keep the guest's name.
symptoms:
  deep: [sudoers]
steps:
  - name: Keep the name
    action: ensure_line
    path: /etc/hostname
    line: guest
    match: "^[a-z0-9-]+$"
"""
NEEDS_SECRET = """\
name: set-secret
description: Write a secret.
parameters:
  password: {type: secret, description: The secret.}
chroot: true
symptoms:
  deep: [root-password]
steps:
  - name: Set it
    action: set_password
    user: root
    password: "{{ password }}"
"""
NEEDS_VALUE = """\
name: set-motd
description: Write a message.
parameters:
  text: {type: string, description: The message.}
symptoms:
  deep: [cloud-init]
steps:
  - name: Write it
    action: ensure_line
    path: /etc/motd
    line: "{{ text }}"
    create: true
"""
COLLECT = """\
name: collect
description: Collect something, declaring no deep symptom.
steps:
  - name: Leave a trace
    action: ensure_line
    path: /etc/motd
    line: collected
    create: true
"""
MOTD = """\
name: fix-motd
description: Write the message of the day.
symptoms:
  deep: [disk-space]
steps:
  - name: Greet
    action: ensure_line
    path: /etc/motd
    line: hello
    create: true
"""


def catalog(*texts: str) -> Catalog:
    return Catalog.of([(playbook.name, playbook) for playbook in map(load, texts)])


@pytest.fixture
def run(tmp_path: Path) -> Several:
    return Several(tmp_path)


def deep(run: Several, *texts: str) -> tuple[Diagnosis, DeepSource]:
    chosen = catalog(*texts)
    checked, skipped = select(chosen.entries)
    source = DeepSource(
        run.workflow,
        checked,
        skipped,
        disk=DiskChoice(),
        on_step=run.steps.append,
        open_disks=lambda host, mountpoint: run.disks,
    )
    result = diagnose(run.cloud, "web-1", catalog=chosen, probe=ScriptedProbe(),
                      keys=(("me.pub", KEY),), sources=[source])
    return result, source


def test_a_playbook_that_would_change_is_a_finding_with_what_it_would_change(
    run: Several,
) -> None:
    result, source = deep(run, WOULD_CHANGE, CLEAN, NEEDS_SECRET, NEEDS_VALUE, COLLECT)
    # one rescue, check mode: the two runnable deep playbooks, nothing written
    assert run.rescues() == [f"rescue {run.server.id}", f"unrescue {run.server.id}"]
    assert source.report is not None and source.report.dry_run
    assert [r.playbook.name for r in source.report.runs] == ["fix-name", "keep-name"]
    assert (run.tree / "etc/hostname").read_text() == "guest\n"
    assert not (run.tree / "etc/motd").exists()
    assert all(mount.read_only for r in source.report.runs if (mount := r.mount) is not None)
    # the one that would change is the only finding, high, with the file and the change
    [finding] = result.findings
    assert (finding.key, finding.playbook, finding.confidence) == ("fix-name", "fix-name", "high")
    assert finding.command("web-1") == "cloudrescue run web-1 fix-name"
    assert "fstab entries whose device is missing" in finding.cause
    [evidence] = finding.evidence
    assert evidence.source == "deep" and evidence.text.startswith("/etc/hostname: ")
    # the clean one cleared its cause; the skipped ones said so; collect never ran
    assert source.cleared == ["keep-name"]
    assert "deep: nothing to change for keep-name" in result.notes
    assert "deep: skipped set-secret (needs password)" in result.notes
    assert "deep: skipped set-motd (needs text)" in result.notes
    assert not any("collect" in note for note in result.notes)
    run.left_alone()


def test_a_cleared_cause_drops_the_finding_the_console_suggested(run: Several) -> None:
    suspect = CLEAN.replace(
        "  deep: [sudoers]\n",
        "  console:\n    - {pattern: 'sudo: parse error', cause: sudo refuses, confidence: high}\n"
        "  deep: [sudoers]\n",
    )
    run.cloud.servers[run.server.id].console = "sudo: parse error in /etc/sudoers\n"
    result, _ = deep(run, suspect)
    assert result.healthy
    assert "the disk clears what was suspected of keep-name" in result.notes


def test_a_healthy_instance_gets_no_finding_and_nothing_changes(run: Several) -> None:
    result, source = deep(run, CLEAN, COLLECT)
    assert result.healthy and result.top is None
    assert source.cleared == ["keep-name"]
    assert (run.tree / "etc/hostname").read_text() == "guest\n"
    assert not (run.tree / "etc/motd").exists()
    run.left_alone()


def test_no_deep_playbook_no_rescue(run: Several) -> None:
    result, source = deep(run, COLLECT, NEEDS_VALUE)
    assert result.healthy and source.report is None
    assert run.rescues() == []
    assert result.notes[-1] == "deep: skipped set-motd (needs text)"


def test_fix_picks_the_suggested_playbooks_once_in_rank_order(run: Several) -> None:
    chosen = catalog(WOULD_CHANGE, MOTD, NEEDS_SECRET, CLEAN)
    evidence = (Evidence("deep", "/etc/hostname: would change"),)

    def finding(playbook: str | None, confidence: str = "high") -> Finding:
        return Finding(f"{playbook}", "a cause", confidence, evidence,  # type: ignore[arg-type]
                       playbook=playbook, advice=None if playbook else "by hand")

    findings = [
        finding("fix-motd"),
        finding(None, "certain"),
        finding("set-secret"),
        finding("fix-name", "medium"),
        finding("fix-motd", "medium"),
        finding("keep-name", "low"),
    ]
    picked, left = suggested(findings, chosen)
    assert [item.reference for item in picked] == ["fix-motd", "fix-name"]
    assert left == [("set-secret", "needs password")]

    report = run_playbooks(
        run.workflow,
        run.server,
        [(item.playbook, item.values) for item in picked],
        dry_run=False,
        disk=DiskChoice(),
        open_disks=lambda host, mountpoint: run.disks,
    )
    assert run.rescues() == [f"rescue {run.server.id}", f"unrescue {run.server.id}"]
    assert [(r.playbook.name, r.status) for r in report.runs] == [
        ("fix-motd", "changed"),
        ("fix-name", "changed"),
    ]
    assert (run.tree / "etc/hostname").read_text() == "web-1\n"
    assert (run.tree / "etc/motd").read_text() == "hello\n"
    run.left_alone()


def test_fix_with_nothing_suggested_picks_nothing() -> None:
    picked, left = suggested([], catalog(WOULD_CHANGE))
    assert (picked, left) == ([], [])


def test_fleet_diagnose_a_line_per_instance_and_a_count_per_cause() -> None:
    from cloudrescue.cli.fleet import diagnosis_rows
    from cloudrescue.cli.records import FLEET_DIAGNOSIS
    from cloudrescue.diagnose.many import count_causes, diagnose_many
    from tests.fakes import FakeClock, FakeCloud

    from . import consoles

    cloud = FakeCloud(FakeClock())
    servers = [cloud.add(f"web-{n}", address=consoles.ADDRESS) for n in range(1, 4)]
    stopped = cloud.add("db-1", status="SHUTOFF")
    gone = cloud.add("gone-1")
    for server, console in zip(servers, (consoles.HEALTHY, consoles.FSTAB, consoles.HEALTHY),
                               strict=True):
        cloud.servers[server.id].console = console
    shipped = Catalog.shipped()

    def one(server: ServerInfo) -> Diagnosis:
        return diagnose(cloud, server.id, catalog=shipped, probe=ScriptedProbe(),
                        keys=(("me.pub", KEY),))

    del cloud.servers[gone.id]
    results = diagnose_many([*servers, stopped, gone], one, workers=1)
    rows = diagnosis_rows(results)
    assert [tuple(row) for row in rows] == [FLEET_DIAGNOSIS.names] * 5
    assert [(row["instance"], row["healthy"], row["playbook"]) for row in rows] == [
        ("web-1", True, None), ("web-2", False, "fix-fstab"), ("web-3", True, None),
        ("db-1", False, None), ("gone-1", None, None),
    ]
    assert rows[3]["cause"] == "the instance is stopped" and rows[3]["confidence"] == "certain"
    assert rows[4]["cause"] == "diagnosis failed" and rows[4]["error"]
    assert rows[1]["command"] == "cloudrescue run web-2 fix-fstab"
    assert count_causes(results) == [
        ("no problem found", None, 2),  # the most frequent first, then by cause
        (rows[1]["cause"], "fix-fstab", 1),
        ("diagnosis failed", None, 1),
        ("the instance is stopped", None, 1),
    ]
