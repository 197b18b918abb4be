"""The rescue procedure on a fake cloud, a fake clock and this machine as the rescue system.

No root, no lab: ``tests/fakes.py`` stands in for nova and the rescue's sshd, so every path
through ``RescueWorkflow`` (entering, leaving, holding, Ctrl-C, refusals, resume) runs here.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudrescue.cloud.base import Address, RescueStarted, ServerInfo
from cloudrescue.errors import (
    CloudError,
    ConnectionFailedError,
    HostKeyError,
    InvalidInputError,
    NotFoundError,
    WrongStateError,
)
from cloudrescue.journal import Journal
from cloudrescue.keys import load_public_keys
from cloudrescue.marks import MARK_RUN, read_mark
from cloudrescue.rescue import (
    LeftInRescueError,
    RescueSettings,
    RescueWorkflow,
    pick_address,
    rescue_settings,
    rescues_in_cloud,
    stranded,
)
from tests.fakes import (
    RESCUE_FINGERPRINT,
    RESCUE_KEY_ENTRY,
    FakeClock,
    FakeCloud,
    FakeConnect,
    RecordingEvents,
    announcement,
    rescue_fingerprint,
)
from tests.playbook.conftest import write_public_key


class Rig:
    """A fake cloud with one instance, and a workflow on it."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.clock = FakeClock()
        self.cloud = FakeCloud(self.clock)
        self.server = self.cloud.add("web-1")
        self.journal = Journal(tmp_path / "state")
        self.events = RecordingEvents()
        self.rescue_root = tmp_path / "rescue"
        (self.rescue_root / "root").mkdir(parents=True)  # the rescue system's /root
        self.connect = FakeConnect(self.cloud, self.rescue_root)
        self.settings = RescueSettings(**settings)  # type: ignore[arg-type]

    def workflow(self) -> RescueWorkflow:
        return RescueWorkflow(
            self.cloud,
            self.journal,
            self.events,
            self.settings,
            connect=self.connect,
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    def status(self) -> str:
        info = self.cloud.servers[self.server.id].info
        return f"{info.status}/{info.task_state or '-'}"

    def states(self) -> list[str]:
        return [entry.state for entry in self.journal.entries(include_restored=True)]


def rescues(rig: Rig) -> int:
    """How many rescue requests the cloud got."""
    return [call.split()[0] for call in rig.cloud.calls].count("rescue")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_session_rescues_logs_in_and_always_unrescues(rig: Rig) -> None:
    workflow = rig.workflow()
    with workflow.session(rig.server, command="test") as rescued:
        assert rig.status() == "RESCUE/-"
        assert rescued.address == "203.0.113.10"
        assert rescued.announced is not None
        assert RESCUE_FINGERPRINT in rescued.announced.fingerprints
        assert read_mark(rig.cloud.servers[rig.server.id].info) is not None
        assert rig.states() == ["rescued"]
        assert rescued.password not in repr(rescued)
    assert rig.status() == "ACTIVE/-"
    assert rig.connect.hosts[0].closed
    assert rig.states() == ["restored"]
    assert read_mark(rig.cloud.servers[rig.server.id].info) is None
    calls = rig.cloud.calls
    assert calls.index(f"mark {rig.server.id}") < calls.index(f"rescue {rig.server.id}")
    assert rig.clock.slept >= 2 * rig.cloud.transition
    assert rig.events.polls > 0


def test_an_error_inside_the_session_still_unrescues(rig: Rig) -> None:
    with pytest.raises(RuntimeError, match="boom"), rig.workflow().session(rig.server, command="t"):
        raise RuntimeError("boom")
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]


def test_first_ctrl_c_unrescues(rig: Rig) -> None:
    with pytest.raises(KeyboardInterrupt), rig.workflow().session(rig.server, command="test"):
        raise KeyboardInterrupt
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]
    assert any(m.startswith("interrupted: restoring web-1") for m in rig.events.messages)


def test_second_ctrl_c_leaves_it_in_rescue_and_resume_restores(rig: Rig) -> None:
    def interrupt_once_leaving(seconds: float) -> None:
        if rig.cloud.calls and rig.cloud.calls[-2].startswith("unrescue"):
            rig.clock.on_sleep = None
            raise KeyboardInterrupt

    with (
        pytest.raises(LeftInRescueError, match="web-1 was left in rescue") as raised,
        rig.workflow().session(rig.server, command="test"),
    ):
        rig.clock.on_sleep = interrupt_once_leaving
        raise KeyboardInterrupt
    assert raised.value.hint == "run `cloudrescue resume` to unrescue it"
    assert rig.states() == ["left-in-rescue"]
    [entry] = rig.journal.entries()
    assert rig.workflow().resume(entry) == "web-1: unrescued, now ACTIVE"
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]


def test_refused_rescue_clears_the_mark_and_closes_the_entry(rig: Rig) -> None:
    rig.cloud.refuse_rescue = CloudError("rescue of web-1: HTTP 409: conflict")
    with pytest.raises(CloudError), rig.workflow().session(rig.server, command="test"):
        pytest.fail("the body must not run")
    [entry] = rig.journal.entries(include_restored=True)
    assert entry.state == "restored"
    assert entry.note == "rescue refused: rescue of web-1: HTTP 409: conflict"
    assert read_mark(rig.cloud.servers[rig.server.id].info) is None
    assert rig.status() == "ACTIVE/-"


def test_refused_password_unrescues(rig: Rig) -> None:
    rig.cloud.ignore_password = True
    with (
        pytest.raises(ConnectionFailedError, match="refused the rescue password"),
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]
    assert "waiting for sshd: attempt 1: password refused" in rig.events.messages


def test_no_announced_host_key_is_refused_unless_trusted(tmp_path: Path) -> None:
    rig = Rig(tmp_path, host_key_timeout=30.0)
    rig.cloud.announce = False
    with (
        pytest.raises(HostKeyError, match="shows no SSH host key fingerprints") as raised,
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert raised.value.hint and "--trust-host-key" in raised.value.hint
    assert rig.status() == "ACTIVE/-"
    trusting = Rig(tmp_path / "trusting", trust_host_key=True)
    trusting.cloud.announce = False
    started = trusting.clock.now
    with trusting.workflow().session(trusting.server, command="test") as rescued:
        assert rescued.announced is None
    waited = trusting.clock.now - started
    assert waited < 15.0 + 3 * trusting.cloud.transition + 5  # the shortened wait, not 180 s


def test_hold_keeps_it_in_rescue_with_a_login_to_print(rig: Rig, tmp_path: Path) -> None:
    key_line = write_public_key(tmp_path / "me.pub")
    keys = load_public_keys(tmp_path / "me.pub")
    login = rig.workflow().hold(rig.server, keys=keys)
    assert rig.status() == "RESCUE/-"
    assert rig.states() == ["held"]
    assert (login.address, login.user) == ("203.0.113.10", "root")
    assert login.fingerprint == RESCUE_FINGERPRINT
    assert login.verified and login.password not in repr(login)
    assert login.known_hosts.read_text() == f"203.0.113.10 {RESCUE_KEY_ENTRY}\n"
    authorized = rig.rescue_root / "root/.ssh/authorized_keys"
    assert authorized.read_text() == key_line + "\n"
    assert rig.connect.hosts[0].closed
    final = rig.workflow().unrescue(rig.cloud.servers[rig.server.id].info)
    assert final.status == "ACTIVE"
    assert rig.states() == ["restored"]


def test_a_rescue_answer_never_shows_its_password() -> None:
    started = RescueStarted(admin_password="Adm1n-s3cret", stable_device=True)
    for shown in (repr(started), str(started)):
        assert "Adm1n-s3cret" not in shown
        assert "stable_device=True" in shown  # the rest is still shown
    assert started.admin_password == "Adm1n-s3cret"


def test_unrescue_refuses_an_instance_not_in_rescue_and_closes_every_entry(rig: Rig) -> None:
    with pytest.raises(WrongStateError, match="web-1 is not in rescue"):
        rig.workflow().unrescue(rig.server)
    rig.workflow().hold(rig.server)
    rig.journal.start(cloud="fake", server_id=rig.server.id, server_name="web-1", command="x")
    rig.workflow().unrescue(rig.cloud.servers[rig.server.id].info)
    notes = sorted(e.note for e in rig.journal.entries(include_restored=True))
    assert rig.states() == ["restored", "restored"]
    assert "closed by unrescue" in notes


def test_leave_waits_for_a_rescue_still_in_progress(rig: Rig) -> None:
    started = rig.cloud.rescue(rig.server, admin_password="x", image=None)
    assert started.admin_password == "x"
    assert rig.status() == "ACTIVE/rescuing"
    final = rig.workflow().leave(rig.server, None)
    assert final.status == "ACTIVE"
    assert f"unrescue {rig.server.id}" in rig.cloud.calls


def test_resume_of_a_vanished_or_already_active_instance_closes_the_entry(rig: Rig) -> None:
    run_id = rig.journal.start(
        cloud="fake", server_id=rig.server.id, server_name="web-1", command="x"
    )
    [entry] = rig.journal.entries()
    assert rig.workflow().resume(entry) == "web-1: was already ACTIVE; journal entry closed"
    gone = rig.journal.start(cloud="fake", server_id="no-such-id", server_name="old", command="x")
    [entry] = [e for e in rig.journal.entries() if e.run_id == gone]
    assert rig.workflow().resume(entry) == "old: no longer exists; journal entry closed"
    assert run_id != gone and rig.journal.entries() == []


def test_stranded_lists_entries_of_dead_runs_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    journal = Journal(state)
    journal.start(cloud="fake", server_id="alive", server_name="mine", command="x")
    script = (
        "import sys; from pathlib import Path; from cloudrescue.journal import Journal\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "j.start(cloud='fake', server_id='s1', server_name='dead-1', command='x')\n"
        "held = j.start(cloud='fake', server_id='s2', server_name='dead-2', command='rescue')\n"
        "j.update(held, 'held')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(state)], check=True)
    assert [e.server_name for e in stranded(journal)] == ["dead-1"]
    assert {e.server_name for e in stranded(journal, include_held=True)} == {"dead-1", "dead-2"}
    only = stranded(journal, instance="s2", include_held=True)
    assert [e.server_name for e in only] == ["dead-2"]


def test_input_is_checked_before_the_cloud_is_asked(rig: Rig, tmp_path: Path) -> None:
    rig.settings = RescueSettings(image="no-such-image")
    with pytest.raises(NotFoundError), rig.workflow().session(rig.server, command="test"):
        pytest.fail("the body must not run")
    bare = rig.cloud.add("bare", address="")
    rig.settings = RescueSettings()
    with (
        pytest.raises(InvalidInputError, match="has no IP address"),
        rig.workflow().session(bare, command="test"),
    ):
        pytest.fail("the body must not run")
    assert rig.journal.entries(include_restored=True) == []
    assert not any(call.startswith(("mark", "rescue")) for call in rig.cloud.calls)
    rig.settings = RescueSettings(image="rescue-image")
    with rig.workflow().session(rig.server, command="test"):
        assert rig.status() == "RESCUE/-"


def test_a_mark_names_the_run(rig: Rig) -> None:
    with rig.workflow().session(rig.server, command="test") as rescued:
        info = rig.cloud.servers[rig.server.id].info
        assert info.metadata[MARK_RUN] == rescued.run_id
        mark = read_mark(info)
        assert mark is not None and mark.since is not None and mark.since.endswith("+00:00")


def test_pick_address_prefers_floating_then_public_then_private() -> None:
    def server(*addresses: Address, access: str | None = None) -> ServerInfo:
        return ServerInfo("id", "web", "ACTIVE", None, addresses=addresses, access_ipv4=access)

    private = Address("10.0.0.5", 4, "fixed", "lan")
    public = Address("51.83.10.7", 4, "fixed", "ext")
    public6 = Address("2001:41d0::7", 6, "fixed", "ext")
    floating = Address("10.1.0.9", 4, "floating", "lan")
    assert pick_address(server(private, public6, public)) == "51.83.10.7"
    assert pick_address(server(private, public, floating)) == "10.1.0.9"
    assert pick_address(server(private)) == "10.0.0.5"
    assert pick_address(server(private, access="192.0.2.1")) == "192.0.2.1"
    assert pick_address(server(Address("not-an-ip", 4, "fixed", "x"))) == "not-an-ip"
    assert pick_address(server(private), "192.0.2.99") == "192.0.2.99"
    with pytest.raises(InvalidInputError, match="has no IP address"):
        pick_address(server())


def test_rescue_settings_check_the_jump_host(tmp_path: Path) -> None:
    settings = rescue_settings(jump="admin@bastion.example:2222", state_timeout=30)
    assert settings.jump is not None
    assert (settings.jump.endpoint.username, settings.jump.endpoint.port) == ("admin", 2222)
    assert settings.state_timeout == 30
    assert rescue_settings().jump is None
    with pytest.raises(InvalidInputError, match="expected \\[user@\\]host\\[:port\\]"):
        rescue_settings(jump="host:notaport")
    with pytest.raises(InvalidInputError, match="no such file"):
        rescue_settings(jump="bastion", jump_key=tmp_path / "missing")


FORGED = announcement("SHA256:" + "F" * 43)


def test_a_block_the_guest_prints_while_shutting_down_is_not_the_rescues(rig: Rig) -> None:
    # Printed after the request, before RESCUE: not taken, and no different from a rescue
    # block read late, so the instance is rescued once more; the guest prints it again as it
    # shuts down the second time, and that time the workflow waits for the rescue's own.
    rig.cloud.guest_block_at_shutdown = FORGED
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
        assert rescued.announced.fingerprints == {rescue_fingerprint(2)}
    assert rescues(rig) == 2


def test_only_a_guest_block_is_refused_and_trusting_is_said(tmp_path: Path) -> None:
    rig = Rig(tmp_path, host_key_timeout=20.0)
    rig.cloud.guest_block_at_shutdown = FORGED
    rig.cloud.announce = False
    with (
        pytest.raises(HostKeyError, match="printed before it are not trusted"),
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    trusting = Rig(tmp_path / "trusting", trust_host_key=True)
    trusting.cloud.guest_block_at_shutdown = FORGED
    trusting.cloud.announce = False
    with trusting.workflow().session(trusting.server, command="test") as rescued:
        assert rescued.announced is None
        [entry] = trusting.journal.entries()
        trusted = f"host key {RESCUE_FINGERPRINT} trusted on first use (--trust-host-key)"
        assert entry.note == trusted


def test_a_block_seen_late_is_not_taken_and_the_instance_is_rescued_once_more(rig: Rig) -> None:
    # The rescue printed its block before the workflow could read its baseline (a slow API,
    # a busy machine): it cannot be told from a guest's, so the instance is rescued again,
    # with a new password, and the second rescue's block is the one verified.
    rig.cloud.late_rescues = 1
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
        assert rescued.announced.fingerprints == {rescue_fingerprint(2)}
        assert rig.connect.hosts[-1].host_key_fingerprint == rescue_fingerprint(2)
        assert rescued.password == rig.cloud.servers[rig.server.id].admin_password
        assert rig.states() == ["rescued"]
    sid = rig.server.id
    asked = [call for call in rig.cloud.calls if call.split()[0] in ("rescue", "unrescue")]
    assert asked == [f"rescue {sid}", f"unrescue {sid}", f"rescue {sid}", f"unrescue {sid}"]
    assert any("rescuing it once more" in message for message in rig.events.messages)
    assert f"rescuing {rig.server.name} once more" in rig.events.messages
    assert rig.status() == "ACTIVE/-" and rig.states() == ["restored"]


def test_a_lost_answer_to_the_second_rescue_request_is_checked_too(rig: Rig) -> None:
    rig.cloud.late_rescues = 1
    rig.cloud.lose_rescue_answer = True  # both answers lost, both requests applied
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
        assert rescued.announced.fingerprints == {rescue_fingerprint(2)}
    assert sum("answer was lost" in message for message in rig.events.messages) == 2
    assert rig.status() == "ACTIVE/-" and rig.states() == ["restored"]


def test_ctrl_c_while_rescuing_once_more_still_unrescues(rig: Rig) -> None:
    rig.cloud.late_rescues = 1
    rig.events.interrupt_at = "rescuing web-1 once more"
    with pytest.raises(KeyboardInterrupt), rig.workflow().session(rig.server, command="test"):
        pytest.fail("the body must not run")
    assert rig.status() == "ACTIVE/-" and rig.states() == ["restored"]
    assert read_mark(rig.cloud.servers[rig.server.id].info) is None


def test_seen_late_twice_is_refused_after_the_usual_wait(tmp_path: Path) -> None:
    rig = Rig(tmp_path, host_key_timeout=30.0)
    rig.cloud.late_rescues = 2
    with (
        pytest.raises(HostKeyError, match="printed before it are not trusted"),
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert rescues(rig) == 2  # not a third
    assert rig.connect.hosts == []  # no login was tried with either block
    assert rig.status() == "ACTIVE/-" and rig.states() == ["restored"]


def test_no_console_before_the_request_is_the_usual_wait_and_never_a_second_rescue(
    tmp_path: Path,
) -> None:
    # A stopped or broken instance's console may be unavailable until it is rescued: the
    # rescue goes on, and with no read to compare with, a block before the baseline is only
    # refused (after the usual wait), as it was before the read existed.
    rig = Rig(tmp_path, host_key_timeout=30.0)
    rig.cloud.console_errors = 1  # the read before the request
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
    late = Rig(tmp_path / "late", host_key_timeout=30.0)
    late.cloud.console_errors, late.cloud.late_rescues = 1, 1
    with (
        pytest.raises(HostKeyError, match="printed before it are not trusted"),
        late.workflow().session(late.server, command="test"),
    ):
        pytest.fail("the body must not run")
    for each in (rig, late):
        assert rescues(each) == 1
        assert any("no console log before the rescue" in m for m in each.events.messages)
        assert each.status() == "ACTIVE/-" and each.states() == ["restored"]


def test_trusting_takes_no_second_rescue_for_a_late_block(tmp_path: Path) -> None:
    rig = Rig(tmp_path, trust_host_key=True)
    rig.cloud.late_rescues = 1
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is None  # the late block is not taken, even trusting
    assert rescues(rig) == 1


def test_the_guests_own_boot_blocks_before_the_request_take_no_second_rescue(rig: Rig) -> None:
    rig.cloud.servers[rig.server.id].console += FORGED  # printed at its last boot
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
        assert rescued.announced.fingerprints == {RESCUE_FINGERPRINT}
    assert rescues(rig) == 1


def test_two_different_announcements_after_rescue_are_refused(rig: Rig) -> None:
    rig.cloud.block_after_rescue = FORGED
    with (
        pytest.raises(HostKeyError, match="announced 2 different sets of host keys"),
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert rig.status() == "ACTIVE/-"


def three_keys(rescue: str) -> str:
    """A fingerprint block of three keys, the one the rescue presents last."""
    return (
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"256 SHA256:{'E' * 43} root@rescue (ECDSA)\n"
        f"3072 SHA256:{'A' * 43} root@rescue (RSA)\n"
        f"256 {rescue} root@rescue (ED25519)\n"
        "-----END SSH HOST KEY FINGERPRINTS-----\n"
    )


def test_a_block_being_printed_is_taken_once_the_console_settled(rig: Rig) -> None:
    # The rescue prints its block a line every 0.3 s: the read that first sees it sees it
    # half printed; the workflow reads again until two reads agree, so the block is whole.
    rig.cloud.rescue_block = three_keys
    rig.cloud.line_interval = 0.3
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
        assert rescued.announced.fingerprints == {
            f"SHA256:{'E' * 43}",
            f"SHA256:{'A' * 43}",
            RESCUE_FINGERPRINT,
        }
        assert rescued.announced.labels == {"ECDSA", "RSA", "ED25519"}
    reads = rig.cloud.console_reads
    begun = [i for i, text in enumerate(reads) if "BEGIN SSH HOST KEY" in text]
    first = reads[begun[0]]
    assert "END SSH HOST KEY" not in first  # the case at hand: a block caught half way
    # It grew at each read while it was printed (never cut half way), then two reads agreed.
    taken = next(i for i in begun if i > 0 and reads[i] == reads[i - 1])
    assert all(reads[i] != reads[i - 1] for i in begun[1 : begun.index(taken)])
    assert "END SSH HOST KEY" in reads[taken]
    assert rig.status() == "ACTIVE/-"


def test_trusting_does_not_override_an_announcement(tmp_path: Path) -> None:
    rig = Rig(tmp_path, trust_host_key=True)
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
    assert any("--trust-host-key is not needed" in m for m in rig.events.messages)


def test_a_lost_answer_to_the_rescue_request_is_checked_not_believed(rig: Rig) -> None:
    rig.cloud.lose_rescue_answer = True
    with rig.workflow().session(rig.server, command="test"):
        assert rig.status() == "RESCUE/-"
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]
    assert any("answer was lost" in message for message in rig.events.messages)


def test_a_lost_answer_with_the_cloud_gone_leaves_the_entry_open(rig: Rig) -> None:
    rig.cloud.lose_rescue_answer = rig.cloud.down_after_rescue = True
    with (
        pytest.raises(CloudError, match="HTTP 504") as raised,
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert raised.value.hint is not None and "cloudrescue resume" in raised.value.hint
    [entry] = rig.journal.entries()
    assert entry.state == "rescue-requested"
    assert entry.note == "rescue answer lost: rescue of web-1: HTTP 504: gateway timeout"
    rig.cloud.down = False
    assert rig.workflow().resume(entry) == "web-1: unrescued, now ACTIVE"


def test_resume_leaves_alone_an_instance_someone_else_holds_now(rig: Rig) -> None:
    rig.workflow().hold(rig.server)
    [ours] = rig.journal.entries()
    rig.cloud.set_marks(rig.server.id, {MARK_RUN: "another-run"})
    done = rig.workflow().resume(ours)
    assert done == "web-1: now in the hands of run another-run: left alone; journal entry closed"
    assert rig.status() == "RESCUE/-"
    rig.cloud.clear_marks(rig.server.id, (MARK_RUN,))
    other = rig.journal.start(
        cloud="fake", server_id=rig.server.id, server_name="web-1", command="x"
    )
    [entry] = [e for e in rig.journal.entries() if e.run_id == other]
    assert "someone else (no mark)" in rig.workflow().resume(entry)
    assert rig.status() == "RESCUE/-"


def test_the_cloud_knows_what_the_journal_lost(rig: Rig, tmp_path: Path) -> None:
    rig.workflow().hold(rig.server)
    quiet = rig.cloud.add("quiet")
    rig.journal = Journal(tmp_path / "another-machine")
    [found] = rescues_in_cloud(rig.cloud)
    assert found.server.id == rig.server.id and found.mark is not None
    assert quiet.id not in {f.server.id for f in rescues_in_cloud(rig.cloud)}
    done = rig.workflow().resume_marked(rig.cloud.servers[rig.server.id].info)
    assert done == f"web-1: unrescued (mark of run {found.mark.run_id}), now ACTIVE"
    assert rig.status() == "ACTIVE/-"
    with pytest.raises(WrongStateError, match="carries no cloudrescue mark"):
        rig.workflow().resume_marked(quiet)


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    journal.start(cloud="fake", server_id="s", server_name="web-1", command="x")
    [entry] = journal.entries()
    assert entry.process_alive and entry.pid_start
    reused = dataclasses.replace(entry, pid=os.getppid(), pid_start="1")
    assert not reused.process_alive


def test_resume_after_the_unrescue_was_asked_waits_for_it(rig: Rig) -> None:
    rig.workflow().hold(rig.server)
    [entry] = rig.journal.entries()
    rig.cloud.unrescue(rig.server.id)  # the run died right after asking
    assert rig.status() == "RESCUE/unrescuing"
    assert rig.workflow().resume(entry) == "web-1: unrescued, now ACTIVE"
    assert rig.cloud.calls.count(f"unrescue {rig.server.id}") == 1


@pytest.mark.parametrize(
    "fault",
    ["unrescue_errors", "lose_unrescue_answer", "console_errors", "unmark_errors"],
)
def test_passing_api_failures_do_not_leave_it_in_rescue(rig: Rig, fault: str) -> None:
    setattr(rig.cloud, fault, 1 if fault.endswith("errors") else True)
    with rig.workflow().session(rig.server, command="test") as rescued:
        assert rescued.announced is not None
    assert rig.status() == "ACTIVE/-"
    assert rig.states() == ["restored"]
    if fault == "unmark_errors":  # the mark stays, and says so; resume NAME clears it
        assert any("cloudrescue resume web-1" in m for m in rig.events.messages)
        marked = rig.cloud.servers[rig.server.id].info
        assert read_mark(marked) is not None
        assert "unrescued" in rig.workflow().resume_marked(marked)
        assert read_mark(rig.cloud.servers[rig.server.id].info) is None
