"""Rescue mode itself on the lab: `rescue`/`unrescue`, Ctrl-C, and a rescue that refuses us."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from cloudrescue.journal import Journal
from cloudrescue.remote.base import CommandTimeoutError
from cloudrescue.remote.ssh import Endpoint, HostKeyCheck, connect
from tests.lab.labkit import key_login

from .conftest import CLOUDRESCUE, E2ELab
from .test_errors import one_error_line
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab


def wait_until(check: Callable[[], bool], process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 120
    while not check():
        if process is not None:
            assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def journal_state(lab: E2ELab, name: str) -> str | None:
    entries = Journal(Path(lab.env["CLOUDRESCUE_STATE_DIR"])).entries(include_restored=True)
    states = [e.state for e in entries if e.server_name == name]
    return states[-1] if states else None


def test_rescue_prints_the_login_and_the_password_only_when_asked(lab: E2ELab) -> None:
    instance = lab.add()
    name = instance["name"]
    held = lab.cli("-vv", "rescue", name, "--show-password", "--yes")  # -vv: the API requests
    assert held.returncode == 0, held.stderr
    password = re.search(r"root password: (\S+)", held.stdout)
    fingerprint = re.search(
        r"host key (SHA256:\S+) \(verified against the console log\)", held.stdout
    )
    assert password and fingerprint, held.stdout
    assert password.group(1) not in held.stderr
    assert f"/servers/{instance['id']}/action" in held.stderr  # the requests were shown...
    assert '"adminPass": "***"' in held.stderr  # ...with the password taken out
    assert status_of(lab, name) == "RESCUE/-"
    known_hosts = re.search(r"UserKnownHostsFile=(\S+) root@", held.stdout)
    assert known_hosts, held.stdout
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts.group(1))  # the file `rescue` told us to use
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        instance["address"],
        username="root",
        password=password.group(1),
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    try:
        key = client.get_transport().get_remote_server_key()  # type: ignore[union-attr]
        assert fingerprint.group(1) == key.fingerprint
        _, out, _ = client.exec_command("lsblk -J -o NAME,MOUNTPOINT")
        assert out.channel.recv_exit_status() == 0
    finally:
        client.close()
    host = connect(
        Endpoint(instance["address"]),
        password=password.group(1),
        host_keys=HostKeyCheck(trust_on_first_use=True),
        wait_seconds=30,
    )
    try:  # a command that overruns its timeout is killed on the rescue, not left running
        with pytest.raises(CommandTimeoutError, match="did not finish within 1 s"):
            host.run(["sleep", "3600"], timeout=1)
        assert host.run(["pgrep", "-f", "sleep 3600"], check=False).exit_code == 1
        assert host.run(["echo", "still", "usable"], timeout=5).stdout == "still usable\n"
    finally:
        host.close()
    status = lab.cli("status")
    assert name in status.stdout and "held" in status.stdout
    left = lab.cli("unrescue", name, "--yes")
    assert left.returncode == 0, left.stderr
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_wrong_rescue_password_is_refused_and_unrescued(lab: E2ELab) -> None:
    instance = lab.add()
    lab.faults(rescue_password_ignored=True)
    try:
        result = lab.cli(
            "fix-ssh-keys",
            instance["name"],
            "--key",
            f"{lab.key}.pub",
            "--yes",
            "--ssh-timeout",
            "10",
        )
    finally:
        lab.clear_faults()
    assert result.returncode == 7, result.stderr
    assert "password" in one_error_line(result)
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert journal_state(lab, instance["name"]) == "restored"
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def interrupted_fix(
    lab: E2ELab, name: str, *, twice: bool, signum: int = signal.SIGINT
) -> tuple[int, str]:
    """Ctrl-C (or ``signum``) a fix of ``name`` while nova is rescuing it (2 s), ``twice``
    during the cleanup; its exit status and stderr."""
    lab.faults(transition_delay=2.0)
    try:
        process = lab.popen("fix-ssh-keys", name, "--key", f"{lab.key}.pub", "--yes")
        wait_until(lambda: status_of(lab, name) == "ACTIVE/rescuing", process)
        process.send_signal(signum)
        if twice:
            time.sleep(0.5)  # the rescue takes 2 s more: the cleanup is still waiting for it
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        lab.clear_faults()
    return process.returncode, stderr


def test_ctrl_c_unrescues(lab: E2ELab) -> None:
    instance = lab.add()
    name = instance["name"]
    returncode, stderr = interrupted_fix(lab, name, twice=False)
    assert returncode == 130, stderr
    assert "interrupted: restoring" in stderr
    assert status_of(lab, name) == "ACTIVE/-"
    assert journal_state(lab, name) == "restored"
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_second_ctrl_c_leaves_it_in_rescue_and_resume_restores(lab: E2ELab) -> None:
    instance = lab.add()
    name = instance["name"]
    returncode, stderr = interrupted_fix(lab, name, twice=True)
    assert returncode == 130, stderr
    assert "left in rescue" in stderr and "cloudrescue resume" in stderr
    wait_until(lambda: status_of(lab, name) == "RESCUE/-")
    assert journal_state(lab, name) == "left-in-rescue"
    resumed = lab.cli("resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued, now ACTIVE" in resumed.stdout
    assert key_login(instance["address"], "debian", lab.key) == "ok"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_closed_terminal_or_a_kill_still_unrescues(lab: E2ELab, signum: int) -> None:
    instance = lab.add()
    name = instance["name"]
    returncode, stderr = interrupted_fix(lab, name, twice=False, signum=signum)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr
    assert status_of(lab, name) == "ACTIVE/-"
    assert journal_state(lab, name) == "restored"
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_the_cloud_remembers_what_a_lost_journal_forgot(lab: E2ELab, tmp_path: Path) -> None:
    """Rescued from one machine, seen and restored from another (an empty journal)."""
    instance = lab.add()
    name = instance["name"]
    held = lab.cli("rescue", name, "--yes")
    assert held.returncode == 0, held.stderr
    elsewhere = {**lab.env, "CLOUDRESCUE_STATE_DIR": str(tmp_path / "another-machine")}
    status = subprocess.run(
        [CLOUDRESCUE, "status"], env=elsewhere, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr
    assert "No rescue in flight or left behind in the journal." in status.stdout
    assert "In rescue or marked in the cloud, not in this journal:" in status.stdout
    assert name in status.stdout and "RESCUE" in status.stdout
    resumed = subprocess.run(
        [CLOUDRESCUE, "resume", name, "--yes"],
        env=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued (mark of run" in resumed.stdout
    assert status_of(lab, name) == "ACTIVE/-"
    assert key_login(instance["address"], "debian", lab.key) == "ok"
    # this machine's held entry: it is back, closed
    mine = lab.cli("resume", "--held", "--yes", name)
    assert mine.returncode == 0, mine.stderr
    assert f"{name}: was already ACTIVE; journal entry closed" in mine.stdout
