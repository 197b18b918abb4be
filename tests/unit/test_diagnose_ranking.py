"""Ranking of findings (issue 12): by confidence, then by the strength of the evidence (API 3,
probe 2, console 1), then by the number of items, then by name; evidence for one playbook
from several sources is one finding; what only says "sshd cannot be reached" supports a sure
finding instead of competing with it."""

from __future__ import annotations

from typing import Any

from cloudrescue.diagnose.engine import judge
from cloudrescue.diagnose.findings import Confidence, Evidence, Finding, rank

CONSOLE = Evidence.console(12, "[DEPEND] Dependency failed for local-fs.target")
CONSOLE_2 = Evidence.console(10, "[ TIME ] Timed out waiting for device UUID=1234")
PROBE = Evidence("probe", "203.0.113.10:22 refused the connection")
API = Evidence("api", "status SHUTOFF")


def finding(key: str, confidence: Confidence, *evidence: Evidence, **extra: Any) -> Finding:
    return Finding(key, f"cause of {key}", confidence, tuple(evidence), playbook=key, **extra)


def test_confidence_comes_first() -> None:
    ranked = rank([
        finding("low-one", "low", API, PROBE, CONSOLE),
        finding("certain-one", "certain", CONSOLE),
        finding("medium-one", "medium", PROBE),
        finding("high-one", "high", CONSOLE),
    ])
    assert [f.key for f in ranked] == ["certain-one", "high-one", "medium-one", "low-one"]


def test_ties_go_to_the_stronger_evidence_then_more_of_it_then_the_name() -> None:
    ranked = rank([
        finding("b-console", "high", CONSOLE),
        finding("a-console", "high", CONSOLE_2),
        finding("probe", "high", PROBE),  # 2 > 1
        finding("two-console", "high", CONSOLE, CONSOLE_2),  # 2, two items
        finding("api", "high", API),  # 3
    ])
    assert [f.key for f in ranked] == ["api", "two-console", "probe", "a-console", "b-console"]


def test_findings_of_one_playbook_merge_keeping_the_surer_cause_and_all_evidence() -> None:
    merged = rank([
        Finding("fix-fstab", "emergency mode", "low", (CONSOLE,), playbook="fix-fstab"),
        Finding("fix-fstab", "a missing device", "high", (CONSOLE_2, CONSOLE),
                playbook="fix-fstab"),
    ])
    [only] = merged
    assert (only.cause, only.confidence) == ("a missing device", "high")
    assert only.evidence == (CONSOLE_2, CONSOLE)  # console lines in the log's order, once each


def test_evidence_is_in_log_order_then_as_it_came() -> None:
    found = finding("x", "high", PROBE, CONSOLE, API, CONSOLE_2)
    assert found.evidence == (CONSOLE_2, CONSOLE, PROBE, API)


def test_silence_supports_a_sure_finding_instead_of_suggesting_its_own_playbook() -> None:
    silent = finding("fix-sshd-config", "medium", PROBE, reachability=True)
    fstab = finding("fix-fstab", "high", CONSOLE)
    [top] = judge([silent, fstab])
    assert top.key == "fix-fstab" and PROBE in top.evidence


def test_silence_alone_is_a_finding_of_the_playbook_that_declares_it() -> None:
    silent = finding("fix-firewall", "medium", PROBE, reachability=True)
    hint = finding("fix-fstab", "low", CONSOLE)
    assert [f.key for f in judge([hint, silent])] == ["fix-firewall", "fix-fstab"]


def test_a_suggested_command_quotes_what_the_shell_would_split() -> None:
    found = Finding("fix-ssh-keys", "c", "high", (PROBE,), playbook="fix-ssh-keys",
                    params=(("key", "/home/me/my keys.pub"),))
    assert found.command("web 1") == (
        "cloudrescue run 'web 1' fix-ssh-keys --param 'key=/home/me/my keys.pub'"
    )
    assert Finding("builtin:x", "c", "high", (CONSOLE,), advice="do it").command("web") is None
