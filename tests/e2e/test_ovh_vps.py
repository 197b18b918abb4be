"""An OVHcloud VPS repaired through the lab's OVH API (``--provider ovh-vps``): netboot rescue,
reboot task, the rescue e-mail's password, ``--trust-host-key``; proven by a login through
the instance's own sshd. Few rescues: each one is CI time."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from cloudrescue.cloud.ovh_vps import open_ovh_vps, ovh_settings
from cloudrescue.journal import Journal
from cloudrescue.lab import ovhconf
from tests.lab.labkit import key_login

from .conftest import CLOUDRESCUE, E2ELab
from .test_kill_matrix import logs_in

pytestmark = pytest.mark.lab


def ovh_env(lab: E2ELab, conf: Path | None = None) -> dict[str, str]:
    return {**lab.env, "CLOUDRESCUE_OVH_CONFIG": str(conf or lab.state / "ovh.conf")}


def vps(lab: E2ELab, name: str) -> tuple[str, str]:
    """Netboot mode and state of a lab VPS, as the OVH API shows them."""
    found = open_ovh_vps(config_file=lab.state / "ovh.conf")._client.get(f"/vps/{name}")
    return found["netbootMode"], found["state"]


@pytest.fixture
def new_key(tmp_path: Path) -> Path:
    path = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(path)], check=True)
    return path


def test_fix_ssh_keys_on_a_vps(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    lab.break_(name, "lost-key")
    env = ovh_env(lab)
    refused = lab.cli("--provider", "ovh-vps", "fix-ssh-keys", name, "--key",
                      f"{new_key}.pub", "--yes", env=env)  # fmt: skip
    assert refused.returncode == 8, refused.stderr
    assert "shows no console log" in refused.stderr and "--trust-host-key" in refused.stderr
    assert vps(lab, name) == ("local", "running")

    fixed = lab.cli("--provider", "ovh-vps", "fix-ssh-keys", name, "--key", f"{new_key}.pub",
                    "--trust-host-key", "--yes", env=env)  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    assert "changed" in fixed.stdout and "authorized_keys" in fixed.stdout
    assert key_login(address, "debian", new_key) == "ok"
    assert vps(lab, name) == ("local", "running")
    password = lab.admin.call("GET", f"/instances/{name}/admin-pass")["admin_pass"]
    assert password and password not in fixed.stdout + fixed.stderr
    [entry] = [e for e in Journal(Path(env["CLOUDRESCUE_STATE_DIR"])).entries(
        include_restored=True) if e.server_name == name]  # fmt: skip
    assert entry.state == "restored" and entry.cloud.startswith("ovh-vps:http://127.0.0.1:")
    assert "trusted on first use (--trust-host-key)" in entry.note


def test_wrong_application_secret_is_exit_5_and_changes_nothing(
    lab: E2ELab, tmp_path: Path
) -> None:
    instance = lab.add()
    good = ovhconf.read(lab.state / "ovh.conf")
    wrong = tmp_path / "ovh.conf"
    forged = ovhconf.OvhAccount(good.application_key, "0" * 32, good.consumer_key)
    endpoint = ovh_settings(config_file=lab.state / "ovh.conf").endpoint
    ovhconf.write(wrong, forged, endpoint)
    result = lab.cli("--provider", "ovh-vps", "fix-ssh-keys", instance["name"], "--key",
                     f"{lab.key}.pub", "--trust-host-key", "--yes",
                     env=ovh_env(lab, wrong))  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith("cloudrescue: error: VPS ")
    assert "authentication failed: the request signature was refused" in result.stderr
    assert "0" * 32 not in result.stderr
    assert vps(lab, instance["name"]) == ("local", "running")
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_a_reboot_task_in_error_leaves_the_vps_on_local(lab: E2ELab) -> None:
    instance = lab.add()
    name = instance["name"]
    lab.faults(ovh_reboot_fails=[name])
    try:
        result = lab.cli("--provider", "ovh-vps", "fix-ssh-keys", name, "--key",
                         f"{lab.key}.pub", "--trust-host-key", "--yes",
                         env=ovh_env(lab))  # fmt: skip
    finally:
        lab.faults(ovh_reboot_fails=None)
    assert result.returncode == 5, result.stderr
    assert f"the reboot of VPS {name} failed: its task" in result.stderr
    assert "is error" in result.stderr
    assert vps(lab, name) == ("local", "running")
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def vps_cli(lab: E2ELab, *args: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return lab.cli("--provider", "ovh-vps", *args, "--trust-host-key", "--yes",
                   env=env or ovh_env(lab), stdin=stdin)  # fmt: skip


def popen_vps(lab: E2ELab, *args: str) -> subprocess.Popen[str]:
    """``cloudrescue --provider ovh-vps ARGS`` running, its stdin a pipe (no terminal)."""
    return subprocess.Popen([CLOUDRESCUE, "--provider", "ovh-vps", *args], env=ovh_env(lab),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_run_fix_firewall_with_the_rescue_password_on_stdin(lab: E2ELab) -> None:
    """No rescue e-mail at all (the lab's knob): the password the user reads in it goes in
    on stdin once cloudrescue asks; the firewall that dropped SSH is repaired."""
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    lab.break_(name, "firewall")
    assert key_login(address, "debian", lab.key) != "ok"
    lab.faults(ovh_no_rescue_email=[name])
    try:
        process = popen_vps(lab, "--rescue-password-stdin", "run", name, "fix-firewall",
                            "--trust-host-key", "--yes")  # fmt: skip
        assert process.stderr is not None and process.stdin is not None
        seen: list[str] = []
        for line in process.stderr:
            seen.append(line)
            if f"reading the root password of the rescue of {name}" in line:
                break
        else:
            pytest.fail("".join(seen))
        password = lab.admin.call("GET", f"/instances/{name}/admin-pass")["admin_pass"]
        out, err = process.communicate(f"{password}\n", timeout=300)
    finally:
        lab.faults(ovh_no_rescue_email=None)
    assert process.returncode == 0, "".join(seen) + err
    assert "changed" in out and password not in out + err + "".join(seen)
    assert logs_in(address, lab.key)
    assert vps(lab, name) == ("local", "running")


def test_shell_command_with_the_secret_link_email(lab: E2ELab, new_key: Path) -> None:
    """The e-mail links to a one-time secret page (the lab's other form): followed; the
    shell's command repairs the user's key, and the instance's own sshd lets it in."""
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    lab.break_(name, "lost-key")
    line = Path(f"{new_key}.pub").read_text().strip()
    command = f"echo '{line}' > /home/debian/.ssh/authorized_keys"  # the file keeps its owner
    lab.faults(ovh_rescue_email_link=[name])
    try:
        done = vps_cli(lab, "shell", name, "--command", command)
    finally:
        lab.faults(ovh_rescue_email_link=None)
    assert done.returncode == 0, done.stderr
    assert logs_in(address, new_key)
    assert vps(lab, name) == ("local", "running")


def test_no_rescue_email_in_time_sets_the_vps_back(lab: E2ELab, tmp_path: Path) -> None:
    instance = lab.add()
    name = instance["name"]
    conf = tmp_path / "ovh.conf"
    conf.write_text((lab.state / "ovh.conf").read_text() + "rescue_email_timeout = 2\n")
    lab.faults(ovh_no_rescue_email=[name])
    try:
        result = vps_cli(lab, "fix-ssh-keys", name, "--key", f"{lab.key}.pub",
                         env=ovh_env(lab, conf))  # fmt: skip
    finally:
        lab.faults(ovh_no_rescue_email=None)
    assert result.returncode == 6, result.stderr
    error = f"cloudrescue: error: no rescue e-mail for VPS {name} arrived within 2 s"
    assert error in result.stderr
    assert "--rescue-password-stdin" in result.stderr
    assert vps(lab, name) == ("local", "running")
    assert logs_in(instance["address"], lab.key)  # rebooted out of the rescue, its own sshd


def test_kill_9_mid_rescue_then_resume_from_the_journal(lab: E2ELab, new_key: Path) -> None:
    """kill -9 once the netboot is on rescue and the reboot runs; `resume` reopens the OVH
    account the journal names (its endpoint and ovh.conf: neither --provider nor
    $CLOUDRESCUE_OVH_CONFIG given), sets the netboot back to local and reboots."""
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    process = popen_vps(lab, "fix-ssh-keys", name, "--key", f"{new_key}.pub",
                        "--trust-host-key", "--yes")  # fmt: skip
    deadline = time.monotonic() + 120
    try:  # killed while the reboot into rescue runs
        while vps(lab, name) != ("rescue", "rebooting"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    journal = Journal(Path(lab.env["CLOUDRESCUE_STATE_DIR"]))
    [entry] = [e for e in journal.entries() if e.server_name == name]
    assert f" config={lab.state / 'ovh.conf'}" in entry.cloud and not entry.process_alive
    plain = {k: v for k, v in lab.env.items() if k not in ("CLOUDRESCUE_OVH_CONFIG",
                                                           "CLOUDRESCUE_PROVIDER")}  # fmt: skip
    resumed = lab.cli("resume", name, "--yes", env=plain)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued, now ACTIVE" in resumed.stdout
    assert vps(lab, name) == ("local", "running")
    assert logs_in(address, lab.key)
    assert [e for e in journal.entries() if e.server_name == name] == []
