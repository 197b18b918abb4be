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
from cloudrescue.diagnose.deep import DeepSource, inspections, select
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
  deep: [firewall]
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
  deep: [network]
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


PASSWORD = """\
name: reset-password
description: Set a password.
parameters:
  user: {type: user, description: Guest account., default: root}
  password: {type: secret, description: New password.}
chroot: true
symptoms:
  deep: [root-password]
steps:
  - name: Set it
    action: set_password
    user: "{{ user }}"
    password: "{{ password }}"
"""
CLOUD_INIT = """\
name: reset-cloud-init
description: Reset cloud-init.
symptoms:
  deep: [cloud-init]
steps:
  - name: Reset
    action: cloud_init_reset
"""
BROKEN = """\
name: broken-check
description: A check that fails in check mode (its file is a directory).
symptoms:
  deep: [selinux]
steps:
  - name: Fail
    action: ensure_line
    path: /etc/ssh/sshd_config.d
    line: anything
"""
TODAY = 20788  # 2026-12-01, as /etc/shadow counts


def catalog(*texts: str) -> Catalog:
    return Catalog.of([(playbook.name, playbook) for playbook in map(load, texts)])


@pytest.fixture
def run(tmp_path: Path) -> Several:
    return Several(tmp_path)


def deep(run: Several, *texts: str, user: str | None = None) -> tuple[Diagnosis, DeepSource]:
    chosen = catalog(*texts)
    checked, skipped = select(chosen.entries)
    source = DeepSource(
        run.workflow,
        checked,
        skipped,
        disk=DiskChoice(),
        on_step=run.steps.append,
        open_disks=lambda host, mountpoint: run.disks,
        inspect=inspections(chosen.entries),
        user=user,
        day=lambda: TODAY,
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


def test_a_failing_check_is_a_low_finding_and_the_later_checks_run_still(run: Several) -> None:
    result, source = deep(run, BROKEN, WOULD_CHANGE, CLEAN)
    assert source.report is not None
    assert [(r.playbook.name, r.status) for r in source.report.runs] == [
        ("broken-check", "failed"), ("fix-name", "changed"), ("keep-name", "ok"),
    ]
    keys = [finding.key for finding in result.findings]
    assert keys == ["fix-name", "deep-failed:broken-check"]  # high first, then the low one
    failed = result.findings[1]
    assert failed.confidence == "low" and failed.playbook is None
    assert failed.cause.startswith("check broken-check could not run: ")
    assert failed.command("web-1") is None
    assert "cloudrescue run web-1 broken-check --dry-run" in (failed.advice_for("web-1") or "")
    assert source.cleared == ["keep-name"]
    run.left_alone()


def test_expired_passwords_name_reset_password_and_show_no_hash(run: Several) -> None:
    shadow = run.tree / "etc/shadow"
    secret = "$y$j9T$salt$notshownanywhere"
    shadow.write_text(f"root:{secret}:0:0:99999:7:::\ndebian:{secret}:0:0:99999:7:::\n")
    result, _ = deep(run, PASSWORD, CLEAN)
    # one rescue: the check-mode playbook, then the inspection in a phase of its own
    assert run.rescues() == [f"rescue {run.server.id}", f"unrescue {run.server.id}"]
    [finding] = result.findings
    assert (finding.key, finding.playbook, finding.confidence) == (
        "reset-password", "reset-password", "medium")
    assert finding.command("web-1") == "cloudrescue run web-1 reset-password"
    texts = [item.text for item in finding.evidence]
    assert texts == [
        "/etc/shadow: root: set, expired: it must be changed at the next login (last change 0)",
        "/etc/shadow: debian: set, expired: it must be changed at the next login (last change 0)",
    ]
    shown = repr(result)
    assert "$y$" not in shown and "notshownanywhere" not in shown
    assert shadow.read_text().startswith(f"root:{secret}:0:")  # read-only
    # no cloud.cfg, no authorized_keys in this tree: the usual name whose home exists
    assert "deep: the cloud user is debian (from a cloud image's usual user name)" in result.notes
    run.left_alone()


def test_only_the_users_password_expired_names_the_user(run: Several) -> None:
    (run.tree / "etc/cloud").mkdir()
    (run.tree / "etc/cloud/cloud.cfg").write_text(
        "system_info:\n  default_user:\n    name: debian\n")
    (run.tree / "etc/shadow").write_text(
        f"root:*:19000:0:99999:7:::\ndebian:$6$s$h:{TODAY - 100}:0:30:7:::\n")
    result, _ = deep(run, PASSWORD)
    [finding] = result.findings
    assert finding.command("web-1") == "cloudrescue run web-1 reset-password --param user=debian"
    assert [item.text for item in finding.evidence] == [
        "/etc/shadow: debian: set, expired on 2026-09-22 "
        "(password changed on 2026-08-23)",
        "/etc/shadow: root: locked (password changed on 2022-01-08)",
    ]
    assert "deep: the cloud user is debian (from cloud-init's default user in " \
        "/etc/cloud/cloud.cfg)" in result.notes


def test_locked_passwords_are_a_cloud_images_normal_state(run: Several) -> None:
    result, source = deep(run, PASSWORD, CLOUD_INIT)
    assert result.healthy
    assert "reset-password" in source.cleared
    assert "deep: passwords in /etc/shadow: root: locked; debian: locked" in result.notes
    # no cloud-init state on this disk: nothing to say, nothing cleared either
    assert "reset-cloud-init" not in source.cleared
    run.left_alone()


def test_cloud_init_disabled_or_in_error_names_reset_cloud_init(run: Several) -> None:
    data = run.tree / "var/lib/cloud/data"
    data.mkdir(parents=True)
    (data / "instance-id").write_text(run.server.id + "\n")
    (data / "result.json").write_text(
        '{"v1": {"datasource": "DataSourceOpenStack", "errors": ["\\u001b[31mboom\\nforged"]}}')
    (run.tree / "etc/cloud").mkdir()
    (run.tree / "etc/cloud/cloud-init.disabled").write_text("")
    (run.tree / "var/log").mkdir(parents=True, exist_ok=True)
    (run.tree / "var/log/cloud-init.log").write_text(
        "Cloud-init v. 22.4 running 'init-local'\n[ERROR] old run\n"
        "Cloud-init v. 22.4 running 'init-local'\n2026 - util.py[ERROR]: new run\n")
    result, _ = deep(run, CLOUD_INIT)
    [finding] = result.findings
    assert finding.command("web-1") == "cloudrescue run web-1 reset-cloud-init"
    assert finding.cause.startswith("cloud-init is disabled: ")
    assert "cloud-init's last run ended with 1 error" in finding.cause
    texts = [item.text for item in finding.evidence]
    assert texts == [
        "/etc/cloud/cloud-init.disabled exists",
        "/var/lib/cloud/data: \x1b[31mboom\nforged",  # kept as seen: renderers escape it
        "/var/log/cloud-init.log: 2026 - util.py[ERROR]: new run",
    ]


def test_another_instances_cloud_init_data_kept_by_manual_cache_clean(run: Several) -> None:
    data = run.tree / "var/lib/cloud/data"
    data.mkdir(parents=True)
    (data / "instance-id").write_text("i-0123456789\n")
    (run.tree / "etc/cloud/cloud.cfg.d").mkdir(parents=True)
    (run.tree / "etc/cloud/cloud.cfg.d/99-cache.cfg").write_text("manual_cache_clean: true\n")
    result, _ = deep(run, CLOUD_INIT)
    [finding] = result.findings
    assert finding.confidence == "high"
    assert "another instance's data (manual_cache_clean)" in finding.cause
    assert [item.text for item in finding.evidence] == [
        f"/var/lib/cloud/data/instance-id is i-0123456789, not {run.server.id}"]


def test_a_healthy_cloud_init_state_clears_what_the_console_suspected(run: Several) -> None:
    data = run.tree / "var/lib/cloud/data"
    data.mkdir(parents=True)
    (data / "instance-id").write_text(run.server.id + "\n")
    (data / "status.json").write_text('{"v1": {"init": {"errors": []}, "stage": null}}')
    suspect = CLOUD_INIT.replace(
        "  deep: [cloud-init]\n",
        "  console:\n    - {pattern: 'cloud-init.*ERROR', cause: cloud-init failed}\n"
        "  deep: [cloud-init]\n",
    )
    run.cloud.servers[run.server.id].console = "cloud-init[1]: ERROR an old failure\n"
    result, source = deep(run, suspect)
    assert result.healthy and source.cleared == ["reset-cloud-init"]
    assert "the disk clears what was suspected of reset-cloud-init" in result.notes


def test_a_disk_that_does_not_mount_for_the_inspectors_is_a_low_finding_each(
    run: Several,
) -> None:
    from cloudrescue.errors import DiskError

    class Unmountable:
        """The tree's disk session whose mount fails (a fault the tree cannot produce)."""

        def __init__(self) -> None:
            self.inner = run.disks
            self.report = run.disks.report

        def choose_root(self, **kwargs: object) -> object:
            return self.inner.choose_root(**kwargs)  # type: ignore[arg-type]

        def mount(self, **kwargs: object) -> object:
            raise DiskError("mount: wrong fs type")

        def unmount(self) -> object:
            return self.inner.unmount()

        @property
        def leftover(self) -> list[str]:
            return self.inner.leftover

    chosen = catalog(PASSWORD, CLOUD_INIT)
    source = DeepSource(run.workflow, [], [], open_disks=lambda host, mp: Unmountable(),  # type: ignore[arg-type,return-value]
                        inspect=inspections(chosen.entries), day=lambda: TODAY)
    result = diagnose(run.cloud, "web-1", catalog=chosen, probe=ScriptedProbe(),
                      keys=(("me.pub", KEY),), sources=[source])
    assert [(f.key, f.confidence) for f in result.findings] == [
        ("deep-failed:reset-cloud-init (cloud-init)", "low"),
        ("deep-failed:reset-password (root-password)", "low"),
    ]
    assert result.findings[0].cause == (
        "check reset-cloud-init (cloud-init) could not run: mount: wrong fs type")
    assert source.cleared == []
    run.left_alone()
