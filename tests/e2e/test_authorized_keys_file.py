"""`fix-ssh-keys` when the guest's sshd reads keys from outside the home, end to end.

The ``authorized-keys-file`` break points the instance's sshd at
``/etc/ssh/authorized_keys/%u`` (an sshd_config.d drop-in) with no file there for the cloud
user, so the lab key in ``~debian/.ssh/authorized_keys`` no longer logs in. The repair must
write the key where that sshd reads it, keep the file root's, and the login must then work
through the **instance's own sshd**, whose host key is pinned to what its console announced.
"""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from cloudrescue.remote.hostkeys import newest_announcement
from tests.lab.labkit import SSH_TIMEOUT, key_login, run_ssh

from .conftest import E2ELab

pytestmark = pytest.mark.lab

USER = "debian"
CENTRAL = "etc/ssh/authorized_keys"


class AnnouncedOnly(paramiko.MissingHostKeyPolicy):
    """Accept the server's host key only when the console announced its fingerprint."""

    def __init__(self, fingerprints: frozenset[str]) -> None:
        self.fingerprints = fingerprints

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if key.fingerprint not in self.fingerprints:
            raise paramiko.SSHException(f"{hostname}: host key {key.fingerprint} not announced")


def pinned_client(lab: E2ELab, name: str, address: str) -> paramiko.SSHClient:
    """A key login of the cloud user, the host key checked against the console log."""
    console = lab.cli("console", "log", name)
    assert console.returncode == 0, console.stderr
    announced = newest_announcement(console.stdout)
    assert announced is not None and announced.fingerprints, console.stdout[-2000:]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(AnnouncedOnly(announced.fingerprints))
    client.connect(
        address,
        username=USER,
        pkey=paramiko.Ed25519Key.from_private_key_file(str(lab.key)),
        look_for_keys=False,
        allow_agent=False,
        timeout=SSH_TIMEOUT,
        banner_timeout=SSH_TIMEOUT,
        auth_timeout=SSH_TIMEOUT,
    )
    return client


def test_keys_land_where_the_guest_sshd_reads_them(lab: E2ELab) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    assert key_login(address, USER, lab.key) == "ok"
    lab.break_(name, "authorized-keys-file")
    assert key_login(address, USER, lab.key) == "key refused"
    broken = lab.disk_files(instance["id"])
    assert broken[CENTRAL].endswith(" 40755 0:0") and f"{CENTRAL}/{USER}" not in broken
    home_keys = f"home/{USER}/.ssh/authorized_keys"
    assert home_keys in broken  # the lab key is still there; sshd no longer reads it

    public = Path(f"{lab.key}.pub").read_text().split()
    result = lab.cli("fix-ssh-keys", name, "--key", f"{lab.key}.pub", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"created /{CENTRAL}/{USER} (mode 0644)" in result.stdout, result.stdout

    fixed = lab.disk_files(instance["id"])
    assert fixed[f"{CENTRAL}/{USER}"].endswith(" 100644 0:0")  # root's, not the user's
    assert fixed[CENTRAL] == broken[CENTRAL]
    assert fixed[home_keys] == broken[home_keys]
    client = pinned_client(lab, name, address)
    try:
        status, output = run_ssh(
            client, f"stat -c '%u:%g %a' /{CENTRAL}/{USER}; cat /{CENTRAL}/{USER}"
        )
    finally:
        client.close()
    assert status == 0
    owner, *lines = output.splitlines()
    assert owner == "0:0 644"
    assert [line.split()[:2] for line in lines] == [public[:2]]

    again = lab.cli("fix-ssh-keys", name, "--key", f"{lab.key}.pub", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing needed changing" in again.stdout
    assert key_login(address, USER, lab.key) == "ok"
