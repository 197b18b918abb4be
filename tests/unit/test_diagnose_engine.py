"""``diagnose`` without rescue (issue 12), through its seams: ``FakeCloud`` for the API and
the console, a scripted probe for sshd's ports. Each lab scenario the console and the probes
can tell apart gets its playbook first; a healthy instance gets no finding at all."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from cloudrescue.cli.diagnose import diagnosis_record
from cloudrescue.cli.environment import Environment
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.records import DIAGNOSIS, FINDING, PROBE
from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.engine import Diagnosis, diagnose
from cloudrescue.diagnose.findings import Evidence, Finding
from cloudrescue.diagnose.probe import PortProbe, PortState
from cloudrescue.diagnose.seen import Seen
from cloudrescue.diagnose.sshauth import KeyAnswer, SshAnswers
from cloudrescue.errors import NotFoundError
from cloudrescue.keys import PublicKey, parse_public_key
from tests.fakes import FakeClock, FakeCloud

from . import consoles

CATALOG = Catalog.shipped()
KEY = parse_public_key(
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA me"
)
BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"


@dataclass
class ScriptedProbe:
    """A probe answering what the scenario's sshd would: ``state`` for every port, and when
    open, the methods and whether the keys would be accepted."""

    state: PortState = "open"
    methods: tuple[str, ...] = ("publickey",)
    accepted: bool = True
    banner: str = BANNER
    asked: list[tuple[str, int, str | None]] = field(default_factory=list)

    def __call__(
        self, address: str, port: int, *, user: str | None,
        keys: Sequence[tuple[str, PublicKey]],
    ) -> PortProbe:
        self.asked.append((address, port, user))
        details = {"open": "accepted the connection", "refused": "refused the connection",
                   "no-answer": "did not answer in 3 s", "unreachable": "is unreachable",
                   "error": "could not be reached"}
        ssh = None
        if self.state == "open":
            answers = tuple(
                KeyAnswer(key.fingerprint, key.key_type, source, self.accepted)
                for source, key in keys
            ) if user else ()
            ssh = SshAnswers(self.banner, "SHA256:host", self.methods, False, user, answers)
        return PortProbe(address, port, self.state, details[self.state], 0.01, ssh)


def run(
    console: str,
    probe: ScriptedProbe | None = None,
    *,
    status: str = "ACTIVE",
    address: str = consoles.ADDRESS,
    keys: Sequence[tuple[str, PublicKey]] = (("me.pub", KEY),),
    **options: object,
) -> Diagnosis:
    cloud = FakeCloud(FakeClock())
    extra: dict[str, object] = {"fault": options.pop("fault")} if "fault" in options else {}
    server = cloud.add("web-1", address=address, status=status, **extra)
    cloud.servers[server.id].console = console
    return diagnose(cloud, "web-1", catalog=CATALOG, probe=probe or ScriptedProbe(),
                    keys=keys, **options)  # type: ignore[arg-type]


def top(result: Diagnosis) -> str | None:
    return result.top.playbook if result.top else None


@pytest.mark.parametrize(
    ("scenario", "console", "probe", "playbook"),
    [
        ("fstab", consoles.FSTAB, ScriptedProbe("refused"), "fix-fstab"),
        ("disk-full", consoles.DISK_FULL, ScriptedProbe("refused"), "disk-full"),
        ("sshd-config", consoles.SSHD_CONFIG, ScriptedProbe("refused"), "fix-sshd-config"),
        ("network", consoles.NETWORK_BROKEN, ScriptedProbe("no-answer"), "fix-network"),
        ("firewall", consoles.HEALTHY, ScriptedProbe("no-answer"), "fix-firewall"),
        ("lost-key", consoles.HEALTHY, ScriptedProbe(accepted=False), "fix-ssh-keys"),
        ("no-address", consoles.NO_ADDRESS, ScriptedProbe("unreachable"), "fix-network"),
    ],
)
def test_the_top_finding_names_the_scenarios_playbook(
    scenario: str, console: str, probe: ScriptedProbe, playbook: str
) -> None:
    result = run(console, probe)
    assert top(result) == playbook, [(f.key, f.confidence) for f in result.findings]
    assert result.top is not None and result.top.evidence
    assert result.top.command("web-1") is not None


@pytest.mark.parametrize("console", [consoles.HEALTHY, consoles.FSTAB + consoles.HEALTHY])
def test_a_healthy_instance_gets_no_finding_and_no_suggestion(console: str) -> None:
    result = run(console)
    assert result.healthy and result.findings == () and result.top is None
    record = diagnosis_record(result)
    assert (record["healthy"], record["playbook"], record["command"]) == (True, None, None)


def test_what_cannot_be_seen_from_outside_is_no_finding_not_a_guess() -> None:
    """root-password and sudoers: the console and sshd look healthy; only the disk tells."""
    assert run(consoles.HEALTHY, ScriptedProbe(accepted=True)).healthy


def test_silence_of_a_stopped_boot_is_evidence_of_the_boot_not_a_second_playbook() -> None:
    result = run(consoles.FSTAB, ScriptedProbe("refused"))
    assert [f.playbook for f in result.findings] == ["fix-fstab"]
    assert any(e.source == "probe" for e in result.findings[0].evidence)


def test_a_firewall_finding_cites_the_console_line_saying_sshd_runs() -> None:
    result = run(consoles.HEALTHY, ScriptedProbe("no-answer"))
    assert result.top is not None and result.top.confidence == "medium"
    assert [e.source for e in result.top.evidence] == ["console", "probe"]
    assert "Started ssh.service" in result.top.evidence[0].text


def test_the_address_mismatch_cites_the_console_row_and_the_clouds_address() -> None:
    result = run(consoles.NETWORK_BROKEN, ScriptedProbe("no-answer"))
    assert result.top is not None and result.top.confidence == "high"
    texts = [e.text for e in result.top.evidence]
    assert any("192.168.100.10" in text for text in texts)
    assert f"the cloud assigned it {consoles.ADDRESS}" in texts


def test_refused_keys_with_a_guessed_user_are_less_sure_and_say_why() -> None:
    result = run(consoles.HEALTHY, ScriptedProbe(accepted=False))
    assert result.seen.user == "debian" and result.seen.user_guessed
    assert result.top is not None and result.top.confidence == "medium"
    assert "guessed from the console's OS name" in result.top.cause
    assert result.top.command("web-1") == "cloudrescue run web-1 fix-ssh-keys --param key=me.pub"


def test_refused_keys_for_a_given_user_are_sure_and_the_fix_names_the_user_and_keys() -> None:
    result = run(consoles.HEALTHY, ScriptedProbe(accepted=False), user="admin")
    assert result.top is not None and result.top.confidence == "high"
    assert result.top.command("web-1") == (
        "cloudrescue run web-1 fix-ssh-keys --param user=admin --param key=me.pub"
    )


def test_default_keys_are_left_to_the_playbooks_own_default() -> None:
    result = run(consoles.HEALTHY, ScriptedProbe(accepted=False), user="admin", keys_given=False)
    assert result.top is not None
    assert result.top.command("web-1") == "cloudrescue run web-1 fix-ssh-keys --param user=admin"


def test_no_key_and_no_user_are_notes_not_findings() -> None:
    assert "no public key was checked" in " ".join(run(consoles.HEALTHY, keys=()).notes)
    anonymous = consoles.HEALTHY.replace("Debian GNU/Linux 12 (bookworm) ", "Mystery OS ")
    result = run(anonymous)
    assert result.healthy and result.seen.user is None
    assert "no user to check keys for" in " ".join(result.notes)


def test_publickey_only_is_noted_a_password_will_not_help() -> None:
    notes = " ".join(run(consoles.HEALTHY).notes)
    assert "a password will not help over SSH" in notes
    notes = " ".join(run(consoles.HEALTHY, ScriptedProbe(methods=("publickey", "password"))).notes)
    assert "password will not help" not in notes


def test_the_ports_given_are_probed_at_the_address_rescue_would_pick() -> None:
    probe = ScriptedProbe()
    run(consoles.HEALTHY, probe, ports=(22, 2222))
    assert probe.asked == [(consoles.ADDRESS, 22, "debian"), (consoles.ADDRESS, 2222, "debian")]
    probe = ScriptedProbe()
    run(consoles.HEALTHY, probe, address="192.0.2.9")
    assert probe.asked == [("192.0.2.9", 22, "debian")]


@pytest.mark.parametrize(
    ("status", "key", "advice"),
    [
        ("SHUTOFF", "api:shutoff", "openstack server start"),
        ("RESCUE", "api:rescue", "cloudrescue unrescue"),
        ("SUSPENDED", "api:suspended", "openstack server resume"),
        ("REBOOT", "api:transition", "wait"),
    ],
)
def test_a_stopped_or_busy_instance_is_said_by_the_api_and_not_probed(
    status: str, key: str, advice: str
) -> None:
    probe = ScriptedProbe()
    result = run(consoles.KERNEL_PANIC, probe, status=status)
    assert result.top is not None and result.top.key == key
    assert result.top.advice is not None and advice in result.top.advice
    assert probe.asked == []
    assert f"sshd was not probed: the instance is {status}" in result.notes


def test_an_error_instance_shows_novas_fault_as_certain() -> None:
    result = run(consoles.HEALTHY, status="ERROR", fault="No valid host was found. (code 500)")
    assert result.top is not None and result.top.confidence == "certain"
    assert "No valid host was found" in result.top.cause
    record = diagnosis_record(result)
    assert record["fault"] == "No valid host was found. (code 500)"
    assert "`openstack server show web-1`" in record["findings"][0]["advice"]


def test_the_console_of_a_kernel_panic_is_read_even_when_stopped() -> None:
    result = run(consoles.KERNEL_PANIC, status="SHUTOFF")
    assert [f.key for f in result.findings] == ["api:shutoff", "builtin:kernel-panic"]


def test_an_instance_without_address_is_said_and_not_probed() -> None:
    probe = ScriptedProbe()
    result = run(consoles.HEALTHY, probe, address="")
    assert result.top is not None and result.top.key == "api:no-address"
    assert probe.asked == [] and result.seen.address is None


def test_an_unreadable_or_empty_console_is_a_note() -> None:
    cloud = FakeCloud(FakeClock(), console_errors=1)
    cloud.add("web-1")
    result = diagnose(cloud, "web-1", catalog=CATALOG, probe=ScriptedProbe())
    assert result.healthy
    assert "the console log could not be read" in result.notes[0]
    assert "console log is empty" in " ".join(run("").notes)


def test_an_unknown_instance_is_the_error_and_nothing_is_probed() -> None:
    probe = ScriptedProbe()
    with pytest.raises(NotFoundError, match="no instance named or with id 'web-9'"):
        diagnose(FakeCloud(FakeClock()), "web-9", catalog=CATALOG, probe=probe)
    assert probe.asked == []


@dataclass(frozen=True)
class DeepCheck:
    """A source of findings added from outside (a deep check of the disk, later)."""

    name: str = "deep"

    def findings(self, seen: Seen) -> Sequence[Finding]:
        return [Finding("fix-sudoers", "sudoers has a syntax error", "high",
                        (Evidence("deep", "/etc/sudoers.d/99-deploy:2: syntax error"),),
                        playbook="fix-sudoers")]


def test_more_sources_add_findings_ranked_with_the_others() -> None:
    result = run(consoles.HEALTHY, sources=[DeepCheck()])
    assert top(result) == "fix-sudoers"


def piped(result: Diagnosis, output: OutputOptions) -> str:
    out = io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=out, stderr=io.StringIO())
    from cloudrescue.cli.diagnose import _for_people

    show_record(env, output, diagnosis_record(result), for_people=lambda: _for_people(env, result))
    return out.getvalue()


def test_the_record_has_the_documented_fields() -> None:
    record = diagnosis_record(run(consoles.SSHD_CONFIG, ScriptedProbe("refused")))
    assert tuple(record) == DIAGNOSIS.names
    assert [tuple(item) for item in record["findings"]] == [FINDING.names]
    assert [tuple(item) for item in record["probes"]] == [PROBE.names]
    assert record["boot_line"] == consoles.HEALTHY.count("\n") + 1
    shown = json.loads(piped(run(consoles.SSHD_CONFIG, ScriptedProbe("refused")),
                             OutputOptions(format="json")))
    assert shown["command"] == "cloudrescue run web-1 fix-sshd-config"
    evidence = shown["findings"][0]["evidence"]
    assert {"source": "probe", "line": None,
            "text": f"{consoles.ADDRESS}:22 refused the connection"} in evidence


def test_for_people_the_findings_table_comes_first_then_evidence_then_what_to_run() -> None:
    text = piped(run(consoles.FSTAB, ScriptedProbe("refused")), OutputOptions())
    lines = text.splitlines()
    assert lines[0].startswith("web-1 (ACTIVE, 203.0.113.10): 1 finding")
    assert lines[1].split() == ["#", "confidence", "cause", "fix"]
    assert lines[2].split()[:2] == ["1", "high"] and "cloudrescue run web-1 fix-fstab" in lines[2]
    assert "console line" in text and "Dependency failed for local-fs.target" in text
    assert lines[-1] == "run: cloudrescue run web-1 fix-fstab"
    healthy = piped(run(consoles.HEALTHY), OutputOptions())
    assert "no problem found" in healthy and "run:" not in healthy


@pytest.mark.parametrize("kind", ["table", "json", "yaml", "value", "csv"])
def test_guest_text_never_reaches_the_terminal_unescaped(kind: str) -> None:
    text = piped(run(consoles.HOSTILE, ScriptedProbe("refused")), OutputOptions(format=kind))
    assert "\x1b" not in text and "\x07" not in text
    if kind == "table":
        assert "[bold]x[/]" in text  # shown as text, not read as markup
    hostile_sshd = ScriptedProbe(accepted=False, banner="SSH-2.0-\x1b[31mevil[/]\nfake line")
    text = piped(run(consoles.HEALTHY, hostile_sshd), OutputOptions(format=kind))
    assert "\x1b" not in text and "fake line" in text
    if kind == "table":
        assert "\nfake line" not in text  # the banner cannot start a line of the report


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        ({"message": "No valid host. ", "code": 500}, "No valid host. (code 500)"),
        ({"message": "a\nmulti-line\tfault"}, "a multi-line fault"),
        ({"code": 500}, "no message (code 500)"),
        ({}, None),
        (None, None),
    ],
)
def test_novas_fault_is_one_line(fault: object, line: str | None) -> None:
    from cloudrescue.cloud.openstack import _fault

    assert _fault(fault) == line


def test_the_user_cloud_inits_table_of_keys_names_is_asked_about_and_said() -> None:
    table = ("<14>Dec 01 17:19:01 cloud-init: ci-info: ++++Authorized keys from "
             "/home/admin/.ssh/authorized_keys for user admin++++\n")
    rescue = "ci-info: +++Authorized keys from /root/.ssh/authorized_keys for user root+++\n"
    # printed at the first boot only; a rescue's own table (root) is not the instance's user
    console = consoles.HEALTHY.replace(consoles.KEYS, consoles.KEYS + table) + rescue + (
        consoles.HEALTHY)
    probe = ScriptedProbe(accepted=False)
    result = run(console, probe)
    assert probe.asked == [(consoles.ADDRESS, 22, "admin")]
    seen = result.seen
    assert (seen.user, seen.user_guessed) == ("admin", False)
    assert seen.user_source == "cloud-init's table of authorized keys (console line 13)"
    assert ("keys checked for admin: cloud-init's table of authorized keys (console line 13) "
            "(--user names another)") in result.notes
    # not a guess: the finding is as sure as for a given user, the playbook finds the user
    assert result.top is not None and result.top.confidence == "high"
    assert result.top.command("web-1") == "cloudrescue run web-1 fix-ssh-keys --param key=me.pub"
    guessed = run(consoles.HEALTHY)
    assert guessed.seen.user_source == "the cloud image's user of the OS the console names"
