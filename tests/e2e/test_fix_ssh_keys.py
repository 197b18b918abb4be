"""`cloudrescue fix-ssh-keys` end to end: break a lab instance for real, repair it, log in.

Every check of success goes through the **instance's own sshd** after unrescue.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from cloudrescue.journal import Journal
from tests.lab.labkit import key_login

from .conftest import E2ELab

pytestmark = pytest.mark.lab


@pytest.fixture
def new_key(tmp_path: Path) -> Path:
    """A fresh ed25519 key pair; returns the private key path."""
    path = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(path)], check=True)
    return path


def status_of(lab: E2ELab, name: str) -> str:
    [view] = [i for i in lab.admin.instances() if i["name"] == name]
    return f"{view['status']}/{view.get('task_state') or '-'}"


def test_lost_key_is_repaired_and_second_run_changes_nothing(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    assert key_login(address, "debian", lab.key) == "ok"
    lab.break_(name, "lost-key")
    assert key_login(address, "debian", lab.key) == "key refused"

    first = lab.cli("fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes")
    assert first.returncode == 0, first.stderr
    assert "changed" in first.stdout and "authorized_keys" in first.stdout
    assert key_login(address, "debian", new_key) == "ok"
    assert status_of(lab, name) == "ACTIVE/-"

    second = lab.cli("fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes")
    assert second.returncode == 0, second.stderr
    assert "nothing needed changing" in second.stdout
    assert "No rescue in flight" in lab.cli("status").stdout


def test_bad_perms_are_repaired(lab: E2ELab) -> None:
    instance = lab.add()
    lab.break_(instance["name"], "bad-perms")
    assert key_login(instance["address"], "debian", lab.key) == "key refused"
    result = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{lab.key}.pub", "--yes")
    assert result.returncode == 0, result.stderr
    assert "mode of /home/debian/.ssh 0777 -> 0700" in result.stdout
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_dry_run_shows_the_diff_and_changes_nothing(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    lab.break_(instance["name"], "lost-key")
    result = lab.cli(
        "fix-ssh-keys", instance["name"], "--key", f"{new_key}.pub", "--dry-run", "--yes"
    )
    assert result.returncode == 0, result.stderr
    public = Path(f"{new_key}.pub").read_text().split()[1]
    assert f"+ssh-ed25519 {public}" in result.stdout
    assert "Dry run: nothing was changed" in result.stdout
    assert key_login(instance["address"], "debian", new_key) == "key refused"


def test_symlinked_dot_ssh_is_handled_inside_the_guest(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    lab.break_(instance["name"], "ssh-symlink")
    result = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{new_key}.pub", "--yes")
    assert result.returncode == 0, result.stderr
    assert "moved /home/debian/.ssh aside" in result.stdout
    assert key_login(instance["address"], "debian", new_key) == "ok"


def test_forged_rescue_host_key_is_refused_and_nothing_changes(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    lab.faults(forge_rescue_host_keys=True)
    try:
        result = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{new_key}.pub", "--yes")
    finally:
        lab.clear_faults()
    assert result.returncode == 8, result.stderr
    assert "not one of the" in result.stderr and "refusing to connect" in result.stderr
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert key_login(instance["address"], "debian", new_key) == "key refused"
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_volume_backed_needs_a_stable_device_rescue_image(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add(volume_backed=True)
    lab.break_(instance["name"], "lost-key")
    refused = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{new_key}.pub", "--yes")
    assert refused.returncode == 5, refused.stderr
    assert "volume-backed" in refused.stderr
    fixed = lab.cli(
        "fix-ssh-keys",
        instance["name"],
        "--key",
        f"{new_key}.pub",
        "--yes",
        "--image",
        "cloudrescue-rescue",
    )
    assert fixed.returncode == 0, fixed.stderr
    assert key_login(instance["address"], "debian", new_key) == "ok"


@pytest.mark.parametrize("variant", ["xfs", "lvm", "btrfs"])
def test_other_disk_layouts(lab: E2ELab, new_key: Path, variant: str) -> None:
    instance = lab.add(variant=variant)
    lab.break_(instance["name"], "lost-key")
    result = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{new_key}.pub", "--yes")
    assert result.returncode == 0, result.stderr
    assert key_login(instance["address"], "debian", new_key) == "ok"


def test_kill_9_mid_run_is_restored_by_resume(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    name = instance["name"]
    lab.faults(transition_delay=3.0)
    try:
        process = lab.popen("fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes")
        journal = Journal(Path(lab.env["CLOUDRESCUE_STATE_DIR"]))
        deadline = time.monotonic() + 120
        # Kill it once it has seen RESCUE and before it asks for unrescue.
        while not any(e.server_name == name and e.state == "rescued" for e in journal.entries()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        lab.clear_faults()
    assert status_of(lab, name) == "RESCUE/-"
    status = lab.cli("status")
    assert (
        name in status.stdout and "dead" in status.stdout and "cloudrescue resume" in status.stdout
    )
    resumed = lab.cli("resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued, now ACTIVE" in resumed.stdout
    assert key_login(instance["address"], "debian", lab.key) == "ok"
    assert "No rescue in flight" in lab.cli("status").stdout
