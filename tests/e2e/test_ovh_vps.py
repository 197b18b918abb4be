"""An OVHcloud VPS repaired through the lab's OVH API (``--provider ovh-vps``): netboot rescue,
reboot task, the rescue e-mail's password, ``--trust-host-key``; proven by a login through
the instance's own sshd. Few rescues: each one is CI time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cloudrescue.cloud.ovh_vps import open_ovh_vps
from cloudrescue.journal import Journal
from cloudrescue.lab import ovhconf
from tests.lab.labkit import key_login

from .conftest import E2ELab

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
    endpoint = open_ovh_vps(config_file=lab.state / "ovh.conf").cloud_name.split(":", 1)[1]
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
