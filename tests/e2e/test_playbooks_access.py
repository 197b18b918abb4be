"""Catalog playbooks that give access back, end to end against the lab break they repair.

Each case breaks a fresh instance for real (the lab key login fails), repairs it with the real
CLI, logs in through the **instance's own sshd**, and runs the playbook again to see it change
nothing. Each dry run leaves every file of the disk as it was (hashed before and after).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import paramiko
import pytest

from tests.lab.labkit import key_login, run_ssh, ssh_client, tcp_open

from .conftest import E2ELab
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab

PASSWORD = "Tr0ub4dor-and-3-horses"
USER = {"debian": "debian", "rhel": "cloud-user"}


@dataclass(frozen=True)
class Case:
    """A playbook, the break it repairs, and what its reports must say."""

    playbook: str
    scenario: str
    family: str = "debian"
    params: tuple[str, ...] = ()
    broken: tuple[str, ...] = ("unreachable",)  # how the lab key login fails once broken
    reported: tuple[str, ...] = ()  # in the report of the repair
    untouched: tuple[str, ...] = ()  # never in the report of the repair
    shown: tuple[str, ...] = ()  # in the dry run's diff
    not_shown: tuple[str, ...] = ()  # never in the dry run's diff
    id: str = ""

    def args(self, name: str, *extra: str) -> tuple[str, ...]:
        """``cloudrescue run NAME PLAYBOOK ...``."""
        params = [word for param in self.params for word in ("--param", param)]
        return ("run", name, self.playbook, *params, "--yes", *extra)


CASES = [
    Case(
        "fix-sshd-config",
        "sshd-config",
        reported=("rewrote /etc/ssh/sshd_config",),
        shown=(
            "-PasswordAuthentcation no",
            "+# cloudrescue: sshd rejected this line (Bad configuration option: "
            "PasswordAuthentcation): PasswordAuthentcation no",
        ),
    ),
    Case(
        "fix-firewall",
        "firewall",
        broken=("timeout",),
        reported=("rewrote /etc/iptables/rules.v4",),
        untouched=("/etc/ufw", "/.autorelabel"),
        shown=(
            "-A INPUT -p tcp -m tcp --dport 22 -j DROP",
            "+# cloudrescue: dropped SSH: -A INPUT -p tcp -m tcp --dport 22 -j DROP",
        ),
    ),
    Case(
        "fix-firewall",
        "firewall",
        family="rhel",
        reported=("rewrote /etc/firewalld/zones/public.xml", "created /.autorelabel"),
        untouched=("/etc/ufw",),
        shown=('+  <service name="ssh"/>',),
    ),
    Case(
        "fix-firewall",
        "firewall",
        params=("mode=disable",),
        broken=("timeout",),
        reported=("moved /etc/iptables/rules.v4 aside", "moved /etc/iptables/rules.v6 aside"),
        id="fix-firewall-disable",
    ),
    Case(
        "fix-fstab",
        "fstab",
        reported=("rewrote /etc/fstab",),
        untouched=("/.autorelabel",),
        shown=("/srv/data\text4\tdefaults,nofail,x-systemd.device-timeout=10s\t0 2",),
        not_shown=("umask=0077,nofail",),  # /boot/efi's partition is on the disk
    ),
    Case(
        "fix-fstab",
        "fstab",
        family="rhel",
        reported=("rewrote /etc/fstab", "created /.autorelabel"),
    ),
    Case(
        "disk-full",
        "disk-full",
        reported=("cut /var/log/app-debug.log",),
        shown=("would: cut /var/log/app-debug.log",),
    ),
    Case(
        "fix-network",
        "network",
        broken=("timeout", "unreachable"),  # no answer, or no answer to ARP
        reported=("rewrote /etc/network/interfaces",),
        shown=("-iface eth0 inet static", "+iface eth0 inet dhcp"),
    ),
    Case(
        "fix-network",
        "network",
        family="rhel",
        broken=("timeout", "unreachable"),
        reported=(
            "rewrote /etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
            "rewrote /etc/sysconfig/network-scripts/ifcfg-eth0",
            "created /.autorelabel",
        ),
        shown=("-method=manual", "+method=auto", "-BOOTPROTO=none", "+BOOTPROTO=dhcp"),
    ),
]


def case_id(case: Case) -> str:
    return case.id or f"{case.playbook}-{case.family}"


def broken_instance(lab: E2ELab, case: Case) -> tuple[str, str, str]:
    """A fresh instance of the case's family, reachable, then broken: name, address, user."""
    instance = lab.add(family=case.family)
    name, address, user = instance["name"], instance["address"], USER[case.family]
    assert key_login(address, user, lab.key) == "ok"
    lab.break_(name, case.scenario)
    assert key_login(address, user, lab.key).startswith(case.broken)
    return name, address, user


def squeezed(text: str) -> str:
    """``text`` with each run of blanks one space (the terminal renderer expands tabs)."""
    return re.sub(r"[ \t]+", " ", text)


def assert_same_files(before: dict[str, str], after: dict[str, str]) -> None:
    paths = before.keys() | after.keys()
    changed = sorted(path for path in paths if before.get(path) != after.get(path))
    assert not changed, f"{len(before)} files hashed; these differ: {changed[:20]}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_repaired_reachable_and_second_run_changes_nothing(lab: E2ELab, case: Case) -> None:
    name, address, user = broken_instance(lab, case)
    assert not tcp_open(address)
    instance_id = next(i["id"] for i in lab.admin.instances() if i["name"] == name)
    before = lab.disk_files(instance_id)

    first = lab.cli(*case.args(name))
    assert first.returncode == 0, first.stderr
    assert lab.disk_files(instance_id) != before  # what the dry runs rely on sees changes
    assert f"{case.playbook} on {name}: 1 changed" in first.stdout
    for text in case.reported:
        assert text in first.stdout
    for text in case.untouched:
        assert text not in first.stdout
    assert key_login(address, user, lab.key) == "ok"
    assert status_of(lab, name) == "ACTIVE/-"

    second = lab.cli(*case.args(name))
    assert second.returncode == 0, second.stderr
    assert f"{case.playbook} on {name}: 0 changed" in second.stdout
    assert f"{name}: ok, nothing needed changing." in second.stdout
    assert key_login(address, user, lab.key) == "ok"


DRY_RUNS = [case for case in CASES if case.shown]


@pytest.mark.parametrize("case", DRY_RUNS, ids=case_id)
def test_dry_run_shows_the_change_and_changes_no_file(lab: E2ELab, case: Case) -> None:
    name, address, user = broken_instance(lab, case)
    instance_id = next(i["id"] for i in lab.admin.instances() if i["name"] == name)
    before = lab.disk_files(instance_id)

    result = lab.cli(*case.args(name, "--dry-run"))
    assert result.returncode == 0, result.stderr
    assert f"{case.playbook} on {name}: 1 would change" in result.stdout
    assert "Dry run: nothing was changed on the disk." in result.stdout
    for text in case.shown:
        assert squeezed(text) in squeezed(result.stdout)
    for text in case.not_shown:
        assert text not in result.stdout
    assert_same_files(before, lab.disk_files(instance_id))
    assert key_login(address, user, lab.key).startswith(case.broken)


# -- reset-password: proven by a password login through the guest's own sshd ----------------


def password_login(address: str, user: str, password: str) -> str:
    """``user`` as ``id -un`` says after logging in with ``password``, else why not."""
    try:
        client = ssh_client(address, user, password=password)
    except paramiko.BadAuthenticationType as error:
        return f"refused: only {', '.join(error.allowed_types)}"
    except paramiko.AuthenticationException:
        return "wrong password"
    try:
        status, output = run_ssh(client, "id -un")
    finally:
        client.close()
    return output.strip() if status == 0 else f"command failed ({status})"


def test_reset_password_lets_the_user_and_root_log_in_with_it(lab: E2ELab) -> None:
    case = Case("reset-password", "root-password", broken=("command failed",))
    name, address, _ = broken_instance(lab, case)
    assert password_login(address, "debian", PASSWORD) == "refused: only publickey"
    command = ("reset-password", name, "--user", "debian", "--ssh", "--password-stdin", "--yes")

    first = lab.cli(*command, stdin=f"{PASSWORD}\n")
    assert first.returncode == 0, first.stderr
    assert f"reset-password on {name}: 2 changed" in first.stdout
    assert "rewrote /etc/shadow" in first.stdout
    assert "created /etc/ssh/sshd_config.d/05-cloudrescue-password-debian.conf" in first.stdout
    assert PASSWORD not in first.stdout + first.stderr
    assert password_login(address, "debian", PASSWORD) == "debian"
    assert password_login(address, "debian", PASSWORD + "x") == "wrong password"
    assert key_login(address, "debian", lab.key) == "ok"  # no longer expired

    second = lab.cli(*command, stdin=f"{PASSWORD}\n")
    assert second.returncode == 0, second.stderr
    assert f"{name}: ok, nothing needed changing." in second.stdout

    root = lab.cli(
        *("run", name, "reset-password", "-p", "user=root", "-p", "ssh=true"),
        *("--secret-stdin", "--yes"),
        stdin=f"{PASSWORD}\n",
    )
    assert root.returncode == 0, root.stderr
    assert "created /etc/ssh/sshd_config.d/05-cloudrescue-password-root.conf" in root.stdout
    assert password_login(address, "root", PASSWORD) == "root"


def test_reset_password_dry_run_changes_no_file(lab: E2ELab) -> None:
    case = Case("reset-password", "root-password", broken=("command failed",))
    name, address, _ = broken_instance(lab, case)
    instance_id = next(i["id"] for i in lab.admin.instances() if i["name"] == name)
    before = lab.disk_files(instance_id)
    result = lab.cli(
        *("reset-password", name, "--user", "debian", "--ssh", "--password-stdin"),
        *("--yes", "--dry-run"),
        stdin=f"{PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr
    assert f"reset-password on {name}: 2 would change" in result.stdout
    assert "would: rewrote /etc/shadow" in result.stdout
    assert "+Match User debian\n+ PasswordAuthentication yes\n" in squeezed(result.stdout)
    assert PASSWORD not in result.stdout + result.stderr and "$y$" not in result.stdout
    assert_same_files(before, lab.disk_files(instance_id))
    assert password_login(address, "debian", PASSWORD) == "refused: only publickey"
