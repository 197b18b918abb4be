"""`cloudrescue run NAME PB1 PB2`: two real breaks repaired by two playbooks in one rescue,
proven through the instance's own sshd."""

from __future__ import annotations

import json

import pytest

from tests.lab.labkit import key_login

from .conftest import E2ELab
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab


def test_a_firewall_and_an_sshd_config_are_repaired_in_one_rescue(lab: E2ELab) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    assert key_login(address, "debian", lab.key) == "ok"
    lab.break_(name, "firewall")
    lab.break_(name, "sshd-config")  # both on the disk: either repair alone is not enough
    assert key_login(address, "debian", lab.key) == "timeout"

    result = lab.cli("run", name, "fix-firewall", "fix-sshd-config", "--yes")
    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    firewall = shown.index("playbook fix-firewall: changed")
    sshd = shown.index("playbook fix-sshd-config: changed")
    assert firewall < sshd
    assert any("rewrote /etc/iptables/rules.v4" in line for line in shown[firewall:sshd])
    assert any("rewrote /etc/ssh/sshd_config" in line for line in shown[sshd:])
    assert f"fix-firewall, fix-sshd-config on {name}: 2 changed, 0 ok, 0 skipped." in shown
    assert "playbook 2/2: fix-sshd-config" in result.stderr

    finished = json.loads(lab.cli("status", "--finished", "-f", "json").stdout)
    rescues = [row for row in finished if row["instance"] == name]
    assert [(row["command"], row["state"]) for row in rescues] == [
        ("run fix-firewall fix-sshd-config", "restored")
    ]
    assert status_of(lab, name) == "ACTIVE/-"
    assert key_login(address, "debian", lab.key) == "ok"
