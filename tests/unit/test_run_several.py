"""Several playbooks in one rescue (``run_playbooks``; ``cloudrescue run INSTANCE PB1 PB2``),
without root: the fake cloud, this machine as the rescue, a guest tree as the disk.

One rescue request, the playbooks in order, each in a mount phase of its own; the first that
fails has its own changes restored and ends the run, the earlier ones' changes stay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from cloudrescue.cli.output import OutputOptions
from cloudrescue.cli.records import PLAYBOOK_RUN, RUN, STEP
from cloudrescue.cli.reports import run_record
from cloudrescue.cli.run import finish, shared_secrets
from cloudrescue.errors import ExitStatus, FixFailedError, InvalidInputError
from cloudrescue.phase import DiskChoice
from cloudrescue.playbook.engine import StepReport
from cloudrescue.playbook.params import resolve, route
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.runner import RunReport, run_playbooks
from cloudrescue.playbook.schema import ParameterSpec, Playbook
from tests.piped import piped, run_main
from tests.playbook.conftest import load, no_secret, snapshot

from .test_runner import EDIT, FAILING, RESCUE_ONLY, UNMOUNTED, Run

MOTD = """\
name: edit-motd
description: Write the message of the day, and see the hostname the run left.
parameters:
  name: {type: string, description: The name it greets., default: world}
chroot: true
steps:
  - name: Greet
    action: ensure_line
    path: /etc/motd
    line: "hello {{ name }}"
    match: "^hello "
    create: true
  - name: Keep the hostname
    action: ensure_line
    path: /etc/hostname
    line: web-1
    match: "^[a-z0-9-]+$"
"""


class Several(Run):
    """``Run``, with several playbooks in one go."""

    def plays(
        self,
        *texts: str,
        dry_run: bool = False,
        given: Mapping[str, Sequence[str]] | None = None,
        on_step: Callable[[StepReport], None] | None = None,
    ) -> RunReport:
        playbooks = [load(text) for text in texts]
        shares = zip(playbooks, route(playbooks, given or {}), strict=True)
        return run_playbooks(
            self.workflow,
            self.server,
            [(playbook, resolve(playbook, part, no_secret)) for playbook, part in shares],
            dry_run=dry_run,
            disk=DiskChoice(),
            on_step=on_step or self.steps.append,
            open_disks=lambda host, mountpoint: self.disks,
        )

    def rescues(self) -> list[str]:
        return [call for call in self.cloud.calls if call.startswith(("rescue ", "unrescue "))]


@pytest.fixture
def run(tmp_path: Path) -> Several:
    return Several(tmp_path)


def test_two_playbooks_run_in_order_in_one_rescue(run: Several) -> None:
    report = run.plays(EDIT, MOTD, given={"name": ["web-1"]})
    assert run.rescues() == [f"rescue {run.server.id}", f"unrescue {run.server.id}"]
    [entry] = run.journal.entries(include_restored=True)
    assert (entry.command, entry.state) == ("run edit-hostname edit-motd", "restored")
    assert [(r.playbook.name, r.status) for r in report.runs] == [
        ("edit-hostname", "changed"),
        ("edit-motd", "changed"),
    ]
    # In order: the second found the hostname the first had written (ok), on its own mount
    # with the chroot binds it asked for; the first mounted none.
    assert [(s.step.name, s.status) for s in run.steps] == [
        ("Name the guest", "changed"),
        ("Greet", "changed"),
        ("Keep the hostname", "ok"),
    ]
    assert (run.tree / "etc/motd").read_text() == "hello web-1\n"
    first, second = (r.mount for r in report.runs)
    assert first is not None and second is not None
    assert [m.kind for m in first.mounts] == ["root"]
    assert "bind" in [m.kind for m in second.mounts]
    assert run.events.messages.count("finding and mounting the instance's disk") == 2
    assert "playbook 2/2: edit-motd" in run.events.messages
    assert report.changed and report.failed is None
    assert report.result.message == "renamed on 203.0.113.10"
    run.left_alone()


def test_each_playbook_gets_the_phase_its_mount_asks_for(run: Several) -> None:
    report = run.plays(RESCUE_ONLY, UNMOUNTED, EDIT)
    rescue_only, unmounted, mounted = report.runs
    assert rescue_only.mount is None and rescue_only.unmount is None
    assert unmounted.mount is None and unmounted.unmount is not None
    assert mounted.mount is not None and not mounted.mount.read_only
    [command] = unmounted.result.steps[0].outcome.commands
    assert command.output == "/dev/vdb1 ext4"
    assert [r.status for r in report.runs] == ["ok", "ok", "changed"]
    assert report.result.message == "reached 203.0.113.10\nrenamed on 203.0.113.10"
    run.left_alone()


def test_the_second_failing_keeps_the_first_and_does_not_run_the_rest(run: Several) -> None:
    report = run.plays(EDIT, FAILING, RESCUE_ONLY, given={"name": ["web-1"]})
    # the first's change is kept; the second's (the same file) restored to what the first left
    assert (run.tree / "etc/hostname").read_text() == "web-1\n"
    assert [r.status for r in report.runs] == ["changed", "failed", "not-run"]
    failed = report.failed
    assert failed is not None and failed.playbook.name == "edit-then-fail"
    assert isinstance(failed.error, FixFailedError)
    assert "restored 1 change(s) from backups" in failed.error.message
    assert [s.status for s in failed.result.steps] == ["changed", "failed"]
    assert report.runs[2].result.steps == ()
    assert [s.step.name for s in run.steps] == ["Name the guest", "Name the guest", "Fail"]
    assert run.rescues() == [f"rescue {run.server.id}", f"unrescue {run.server.id}"]
    run.left_alone()

    record = run_record(report)
    assert tuple(record) == RUN.names
    assert record["playbook"] == "edit-hostname edit-then-fail rescue-only"
    assert record["result"] == "failed"
    assert [tuple(item) for item in record["playbooks"]] == [PLAYBOOK_RUN.names] * 3
    assert [(p["playbook"], p["result"]) for p in record["playbooks"]] == [
        ("edit-hostname", "changed"),
        ("edit-then-fail", "failed"),
        ("rescue-only", "not-run"),
    ]
    assert record["playbooks"][1]["error"] == failed.error.message
    assert [tuple(step) for step in record["playbooks"][1]["steps"]] == [STEP.names] * 2
    assert len(record["steps"]) == 3




def test_a_failed_run_is_reported_then_exits_with_its_errors_status(run: Several) -> None:
    report = run.plays(EDIT, FAILING, RESCUE_ONLY)
    env, out, _ = piped()
    with pytest.raises(FixFailedError) as raised:
        finish(env, OutputOptions(), report)
    assert raised.value.exit_status == ExitStatus.FIX_FAILED
    assert raised.value.message.startswith("edit-then-fail: `false` exited with status 1")
    assert raised.value.hint == "kept what edit-hostname changed; not run: rescue-only"
    shown = out.getvalue().splitlines()
    assert shown[0] == "playbook edit-hostname: changed"
    assert "playbook edit-then-fail: failed" in shown
    assert "playbook rescue-only: not run" in shown
    assert (
        "edit-hostname, edit-then-fail, rescue-only on web-1: 2 changed, 0 ok, 0 skipped."
        in shown
    )
    assert "Kept: what edit-hostname changed." in shown
    assert "Not run: rescue-only." in shown

    env, out, _ = piped()
    with pytest.raises(FixFailedError):
        finish(env, OutputOptions(format="json"), run.plays(EDIT, FAILING))
    assert json.loads(out.getvalue())["result"] == "failed"


def test_one_playbook_keeps_its_record_and_report(run: Several) -> None:
    report = run.plays(EDIT, given={"name": ["web-1"]})
    env, out, _ = piped()
    finish(env, OutputOptions(), report)
    shown = out.getvalue().splitlines()
    assert shown[0] == "changed  Name the guest"  # no heading: as before there were several
    assert "edit-hostname on web-1: 1 changed, 0 ok, 0 skipped." in shown
    record = run_record(report)
    assert (record["playbook"], record["result"], record["root"]) == (
        "edit-hostname",
        "changed",
        "/dev/vdb1",
    )
    failed = run.plays(FAILING)
    with pytest.raises(FixFailedError) as raised:
        finish(piped()[0], OutputOptions(), failed)
    assert raised.value.message.startswith("`false` exited")  # not prefixed: there is one
    assert raised.value.hint is None


def test_dry_run_checks_every_playbook_and_changes_nothing(run: Several) -> None:
    before = snapshot(run.tree)
    report = run.plays(EDIT, MOTD, dry_run=True)
    assert snapshot(run.tree) == before
    assert [r.status for r in report.runs] == ["changed", "changed"]
    assert all(r.mount is not None and r.mount.read_only for r in report.runs)
    assert run.events.messages.count("checking what to change") == 2
    env, out, _ = piped()
    finish(env, OutputOptions(), report)
    assert "playbook edit-hostname: would change" in out.getvalue()
    assert "Dry run: nothing was changed on the disk." in out.getvalue()
    record = run_record(report)
    assert record["message"] is None and record["playbooks"][0]["message"] is None
    run.left_alone()


def test_ctrl_c_in_the_second_restores_it_keeps_the_first_and_unrescues(run: Several) -> None:
    def interrupt_in_the_second(step: StepReport) -> None:
        run.steps.append(step)
        if step.step.name == "Greet":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.plays(EDIT, MOTD, given={"name": ["web-1"]}, on_step=interrupt_in_the_second)
    assert (run.tree / "etc/hostname").read_text() == "web-1\n"
    assert not (run.tree / "etc/motd").exists()
    assert "restored 1 change(s) from backups" in run.events.messages
    assert "what edit-hostname changed is kept" in run.events.messages
    run.left_alone()


def test_the_same_playbook_twice_is_refused_before_the_rescue(run: Several) -> None:
    with pytest.raises(InvalidInputError, match="playbook edit-hostname given twice"):
        run.plays(EDIT, EDIT)
    with pytest.raises(InvalidInputError, match="no playbook to run"):
        run.plays()
    assert run.rescues() == [] and run.journal.entries(include_restored=True) == []


FIREWALL = load(
    "name: fw\ndescription: A firewall.\nparameters:\n"
    "  mode: {type: choice, choices: [allow, disable], description: How., default: allow}\n"
    "  port: {type: int, description: Port., default: 22}\n"
    "steps:\n  - {name: say, action: run_rescue, argv: [echo, '{{ mode }}', '{{ port }}'],"
    " read_only: true}\n"
)
SSHD = load(
    "name: sshd\ndescription: sshd.\nparameters:\n"
    "  mode: {type: choice, choices: [comment, default], description: How., default: comment}\n"
    "steps:\n  - {name: say, action: run_rescue, argv: [echo, '{{ mode }}'], read_only: true}\n"
)


def test_params_go_to_every_playbook_that_declares_them_or_to_the_one_named() -> None:
    assert route([FIREWALL, SSHD], {"port": ["2222"]}) == [{"port": ["2222"]}, {}]
    assert route([FIREWALL, SSHD], {"mode": ["x"]}) == [{"mode": ["x"]}, {"mode": ["x"]}]
    # PLAYBOOK:NAME replaces NAME there, whatever the order on the command line
    for given in (
        {"mode": ["comment"], "fw:mode": ["disable"]},
        {"fw:mode": ["disable"], "mode": ["comment"]},
    ):
        assert route([FIREWALL, SSHD], given) == [{"mode": ["disable"]}, {"mode": ["comment"]}]
    assert route([FIREWALL], {"fw:port": ["1"]}) == [{"port": ["1"]}]


@pytest.mark.parametrize(
    ("playbooks", "given", "message"),
    [
        ([FIREWALL, SSHD], {"user": ["x"]},
         "none of these playbooks has a parameter 'user' (fw: mode, port; sshd: mode)"),
        ([FIREWALL], {"user": ["x"]}, "playbook fw has no parameter 'user' (parameters: mode"),
        ([FIREWALL, SSHD], {"web:mode": ["x"]},
         "--param web:mode=...: no playbook 'web' in this run (playbooks: fw, sshd)"),
        ([FIREWALL, SSHD], {"sshd:port": ["1"]},
         "playbook sshd has no parameter 'port' (parameters: mode)"),
        ([FIREWALL, FIREWALL], {}, "playbook fw given twice"),
    ],
)  # fmt: skip
def test_params_no_playbook_takes_are_refused(
    playbooks: list[Playbook], given: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        route(playbooks, given)
    assert raised.value.message.startswith(message)


def test_a_secret_is_asked_once_for_every_playbook_that_declares_it() -> None:
    asked: list[str] = []

    def secret(name: str, spec: ParameterSpec) -> Secret:
        asked.append(name)
        return Secret(f"pw-{len(asked)}")

    once = shared_secrets(secret)
    spec = ParameterSpec(type="secret", description="A password.")
    assert [once("password", spec), once("password", spec), once("token", spec)] == [
        Secret("pw-1"),
        Secret("pw-1"),
        Secret("pw-2"),
    ]
    assert asked == ["password", "token"]




@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("fix-firewall fix-firewall", "playbook fix-firewall given twice"),
        ("fix-firewall fix-sshd-config -p mode=disable",
         "fix-sshd-config: parameter 'mode': 'disable' is not one of comment, default"),
        ("fix-firewall fix-sshd-config -p port=22",
         "none of these playbooks has a parameter 'port'"),
        ("fix-firewall fix-sshd-config -p fix-fstab:mode=x",
         "--param fix-fstab:mode=...: no playbook 'fix-fstab' in this run"),
        ("fix-firewall fix-sshd-config -p fix-sshd-config:mode=disable",
         "fix-sshd-config: parameter 'mode': 'disable' is not one of"),
    ],
)  # fmt: skip
def test_run_refuses_bad_playbook_lists_in_one_line_before_the_cloud(
    argv: str, message: str
) -> None:
    code, out, err = run_main("--os-cloud", "no-such-cloud", "run", "web-1", *argv.split(), "--yes")
    assert code == ExitStatus.USAGE
    assert out == "" and "Traceback" not in err
    assert err.startswith(f"cloudrescue: error: {message}")


def test_run_takes_routed_values_and_only_then_reaches_for_the_cloud() -> None:
    code, _, err = run_main(
        "--os-cloud", "no-such-cloud", "run", "web-1", "fix-firewall", "fix-sshd-config",
        "-p", "fix-firewall:mode=disable", "-p", "fix-sshd-config:mode=default", "--yes",
    )  # fmt: skip
    assert code == ExitStatus.USAGE
    assert err.startswith("cloudrescue: error: cloud configuration: Cloud no-such-cloud")
