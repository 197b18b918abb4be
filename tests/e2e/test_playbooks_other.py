"""The other catalog playbooks end to end on the lab: sudo, cloud-init, the boot loader,
SELinux, fsck, logs and diagnostics.

Each runs with the real CLI on a fresh instance (broken for real where a lab break fits), is
checked on the guest through the **instance's own sshd** afterwards, and runs a second time
to see it change nothing (reset-cloud-init excepted: the boot between the runs makes a new
cloud-init state). Each dry run prints what it would do and leaves every file of the disk as
it was (hashed before and after); the read-only playbooks' real runs do too.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openstack
import pytest
from openstack.config.loader import OpenStackConfig

from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.guest_files import KERNEL_VERSION
from cloudrescue.lab.layout import StateLayout
from tests.lab.labkit import key_login, run_ssh, ssh_client

from .conftest import E2ELab
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab

USER = {"debian": "debian", "rhel": "cloud-user"}
SERIAL_CMDLINE = 'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"'


@dataclass(frozen=True)
class Guest:
    """A lab instance and how to reach it."""

    name: str
    id: str
    address: str
    user: str


def fresh(lab: E2ELab, family: str = "debian", variant: str = "ext4") -> Guest:
    """A new booted instance of ``family`` and disk ``variant`` the lab key logs in to."""
    view = lab.add(family=family, variant=variant)
    guest = Guest(view["name"], view["id"], view["address"], USER[family])
    assert key_login(guest.address, guest.user, lab.key) == "ok"
    return guest


def on_guest(lab: E2ELab, guest: Guest, command: str) -> tuple[int, str]:
    """Exit status and stdout of ``command`` run through the instance's own sshd."""
    client = ssh_client(guest.address, guest.user, key=lab.key)
    try:
        return run_ssh(client, command)
    finally:
        client.close()


def run(lab: E2ELab, guest: Guest, playbook: str, *args: str) -> str:
    """``cloudrescue run GUEST PLAYBOOK ARGS --yes``; its stdout (it must succeed)."""
    result = lab.cli("run", guest.name, playbook, *args, "--yes")
    assert result.returncode == 0, result.stderr
    assert status_of(lab, guest.name) == "ACTIVE/-"
    return result.stdout


def changed(playbook: str, guest: Guest, count: int) -> str:
    return f"{playbook} on {guest.name}: {count} changed"


def reachable(lab: E2ELab, guest: Guest) -> bool:
    return key_login(guest.address, guest.user, lab.key) == "ok"


def squeezed(text: str) -> str:
    """``text`` with each run of blanks one space (the terminal renderer expands tabs)."""
    return re.sub(r"[ \t]+", " ", text)


# -- fix-sudoers ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["debian", "rhel"])
def test_fix_sudoers_gives_sudo_back(lab: E2ELab, family: str) -> None:
    guest = fresh(lab, family)
    assert on_guest(lab, guest, "sudo -n id -u") == (0, "0\n")
    lab.break_(guest.name, "sudoers")
    assert reachable(lab, guest)
    assert on_guest(lab, guest, "sudo -n id -u")[0] != 0

    first = run(lab, guest, "fix-sudoers")
    assert changed("fix-sudoers", guest, 1) in first
    assert "mode of /etc/sudoers.d/90-cloud-init-users 0666 -> 0440" in first
    assert "moved /etc/sudoers.d/99-deploy aside to 99-deploy.cloudrescue-" in first
    assert on_guest(lab, guest, "sudo -n id -u") == (0, "0\n")

    second = run(lab, guest, "fix-sudoers")
    assert changed("fix-sudoers", guest, 0) in second
    assert f"{guest.name}: ok, nothing needed changing." in second
    assert on_guest(lab, guest, "sudo -n id -u") == (0, "0\n")


# -- reset-cloud-init -------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["debian", "rhel"])
def test_reset_cloud_init_applies_the_cloud_key_again(lab: E2ELab, family: str) -> None:
    guest = fresh(lab, family)
    lab.break_(guest.name, "lost-key")
    assert key_login(guest.address, guest.user, lab.key) == "key refused"

    first = run(lab, guest, "reset-cloud-init")
    assert changed("reset-cloud-init", guest, 1) in first
    assert "moved /var/lib/cloud/data aside to data.cloudrescue-" in first
    assert ("created /.autorelabel" in first) == (family == "rhel")
    assert reachable(lab, guest)  # the first boot authorised the key of the metadata again
    _, listing = on_guest(lab, guest, "ls /var/lib/cloud")
    [backup] = [name for name in listing.split() if name.startswith("data.cloudrescue-")]

    # Its boot made a new state: a second run sets that aside too, never the first backup.
    second = run(lab, guest, "reset-cloud-init")
    assert changed("reset-cloud-init", guest, 1) in second
    assert "moved /var/lib/cloud/data aside" in second and backup not in second
    assert reachable(lab, guest)


# -- enable-serial-console --------------------------------------------------------------------


@pytest.mark.parametrize("family", ["debian", "rhel"])
def test_enable_serial_console_regenerates_the_boot_entry(lab: E2ELab, family: str) -> None:
    guest = fresh(lab, family)
    assert on_guest(lab, guest, "test -e /boot/grub/grub.cfg")[0] != 0

    first = run(lab, guest, "enable-serial-console")
    assert changed("enable-serial-console", guest, 1) in first
    assert "rewrote /etc/default/grub" in first
    assert "regenerated /boot/grub/grub.cfg (/usr/sbin/update-grub)" in first
    assert reachable(lab, guest)
    _, grub = on_guest(lab, guest, "grep ^GRUB_CMDLINE_LINUX= /etc/default/grub")
    assert grub == SERIAL_CMDLINE + "\n"
    _, uuid = on_guest(lab, guest, "findmnt -n -o UUID /")
    status, config = on_guest(lab, guest, "sudo -n cat /boot/grub/grub.cfg")
    assert status == 0
    entries = [line.split() for line in config.splitlines() if line.strip().startswith("linux")]
    assert len(entries) == 3  # default, advanced, recovery
    for words in entries:  # the guest's root by UUID, never the rescue system's device name
        assert words[1:4] == [f"/boot/vmlinuz-{KERNEL_VERSION}", f"root=UUID={uuid.strip()}", "ro"]
        assert {"console=tty0", "console=ttyS0,115200n8"} <= set(words)

    second = run(lab, guest, "enable-serial-console")
    assert changed("enable-serial-console", guest, 0) in second
    assert on_guest(lab, guest, "sudo -n cat /boot/grub/grub.cfg") == (0, config)


def test_enable_serial_console_refuses_a_config_naming_the_rescue_disk(lab: E2ELab) -> None:
    """Without UUIDs, grub-mkconfig run from the rescue writes the rescue's device name."""
    guest = fresh(lab)
    command = "echo GRUB_DISABLE_LINUX_UUID=true | sudo -n tee -a /etc/default/grub"
    assert on_guest(lab, guest, command)[0] == 0
    before = lab.disk_files(guest.id)
    result = lab.cli("run", guest.name, "enable-serial-console", "--yes")
    assert result.returncode == 10, result.stderr
    assert "boots from root=/dev/" in result.stderr and "would not boot" in result.stderr
    assert status_of(lab, guest.name) == "ACTIVE/-"
    after = lab.disk_files(guest.id)
    restored = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    assert restored <= {"boot/grub"}, restored  # the directory update-grub made stays, empty
    assert on_guest(lab, guest, "ls -A /boot/grub") == (0, "")
    assert reachable(lab, guest)


# -- selinux-relabel --------------------------------------------------------------------------


def test_selinux_relabel_permissive_on_an_selinux_guest(lab: E2ELab) -> None:
    guest = fresh(lab, "rhel")
    first = run(lab, guest, "selinux-relabel", "--param", "permissive=true")
    assert changed("selinux-relabel", guest, 1) in first
    assert "rewrote /etc/selinux/config" in first and "created /.autorelabel" in first
    assert reachable(lab, guest)
    assert on_guest(lab, guest, "stat -c %s /.autorelabel") == (0, "0\n")
    _, config = on_guest(lab, guest, "cat /etc/selinux/config")
    assert config == "SELINUX=permissive\nSELINUXTYPE=targeted\n"

    second = run(lab, guest, "selinux-relabel", "--param", "permissive=true")
    assert changed("selinux-relabel", guest, 0) in second


def test_selinux_relabel_leaves_a_guest_without_selinux_alone(lab: E2ELab) -> None:
    guest = fresh(lab)
    before = lab.disk_files(guest.id)
    output = run(lab, guest, "selinux-relabel", "--param", "permissive=true")
    assert changed("selinux-relabel", guest, 0) in output
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


# -- fsck -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud(lab: E2ELab) -> Iterator[openstack.connection.Connection]:
    """The lab's cloud through openstacksdk (to stop and start instances)."""
    config = OpenStackConfig(config_files=[lab.env["OS_CLIENT_CONFIG_FILE"]], load_envvars=False)
    connection = openstack.connection.Connection(config=config.get_one(cloud="lab"))
    try:
        yield connection
    finally:
        connection.close()


@dataclass(frozen=True)
class Damage:
    """A wrong link count on one inode of a root filesystem (what a crash can leave), made
    with the filesystem's own debugger, and what the checker and repair say of it."""

    variant: str
    debugger: tuple[str, ...]
    found: str
    check: str
    repair: str


DAMAGES = [
    Damage(
        "ext4",
        ("debugfs", "-w", "-R", "set_inode_field /etc/hostname links_count 7"),
        "ref count is 7, should be 1",
        "e2fsck -f -n",
        "e2fsck -f -p",
    ),
    Damage(
        "xfs",
        ("xfs_db", "-x", "-c", "path /etc/hostname", "-c", "write core.nlinkv2 7"),
        "nlinks from 7 to 1",
        "xfs_repair -n",
        "xfs_repair",
    ),
]


def damage_root_filesystem(
    lab: E2ELab, cloud: openstack.connection.Connection, guest: Guest, damage: Damage
) -> None:
    """Stop the instance, apply ``damage`` to its root filesystem, start it again."""
    server = cloud.compute.find_server(guest.name, ignore_missing=False)
    cloud.compute.stop_server(server)
    cloud.compute.wait_for_server(server, status="SHUTOFF", wait=120)
    plan = BootPlan.load(StateLayout(lab.state).instance(guest.id).plan)
    assert plan.layout.root.partition is not None
    device = f"/dev/{plan.partitions[plan.layout.root.partition]}"
    subprocess.run([*damage.debugger, device], check=True, capture_output=True)
    cloud.compute.start_server(server)
    cloud.compute.wait_for_server(server, status="ACTIVE", wait=120)
    deadline = time.monotonic() + 60
    while not reachable(lab, guest):  # sshd starts a moment after ACTIVE
        assert time.monotonic() < deadline
        time.sleep(0.5)


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.variant)
def test_fsck_checks_read_only_and_repairs_when_asked(
    lab: E2ELab, cloud: openstack.connection.Connection, damage: Damage
) -> None:
    guest = fresh(lab, variant=damage.variant)
    fstype = f"({damage.variant})"
    clean = run(lab, guest, "fsck")
    assert f"{fstype} clean)" in clean and f"ran (rescue): {damage.check} /dev/" in clean
    assert changed("fsck", guest, 0) in clean

    damage_root_filesystem(lab, cloud, guest, damage)
    before = lab.disk_files(guest.id)
    for _ in range(2):  # the default only reports: the errors are still there the second time
        found = run(lab, guest, "fsck")
        assert f"{fstype} has errors)" in found and damage.found in found
        assert "errors found: run again with repair to fix them" in found
        assert changed("fsck", guest, 0) in found
    dry = lab.cli("run", guest.name, "fsck", "--param", "repair=true", "--dry-run", "--yes")
    assert dry.returncode == 0, dry.stderr
    assert f"fsck on {guest.name}: 1 would change" in dry.stdout
    assert f"would run (rescue): {damage.repair} /dev/" in dry.stdout
    assert lab.disk_files(guest.id) == before

    repaired = run(lab, guest, "fsck", "--param", "repair=true")
    assert changed("fsck", guest, 1) in repaired and f"{fstype} repaired)" in repaired
    assert f"ran (rescue): {damage.repair} /dev/" in repaired
    assert reachable(lab, guest)
    again = run(lab, guest, "fsck", "--param", "repair=true")
    assert changed("fsck", guest, 0) in again and f"{fstype} clean)" in again


@pytest.mark.parametrize(
    ("variant", "check"),
    [("btrfs", "btrfs check --readonly"), ("lvm", "e2fsck -f -n")],
)
def test_fsck_checks_other_disk_layouts(lab: E2ELab, variant: str, check: str) -> None:
    guest = fresh(lab, variant=variant)
    before = lab.disk_files(guest.id)
    output = run(lab, guest, "fsck")
    assert changed("fsck", guest, 0) in output and " clean)" in output
    assert f"ran (rescue): {check} /dev/" in output
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


# -- collect-logs -----------------------------------------------------------------------------


def test_collect_logs_brings_the_guests_logs_home(lab: E2ELab, tmp_path: Path) -> None:
    guest = fresh(lab)
    marker = f"app started {guest.id}\n"
    status, _ = on_guest(lab, guest, f"echo '{marker.strip()}' | sudo -n tee /var/log/app.log")
    assert status == 0
    before = lab.disk_files(guest.id)
    destination = tmp_path / "logs.tar.gz"

    output = run(lab, guest, "collect-logs", "--param", f"destination={destination}")
    assert changed("collect-logs", guest, 0) in output
    assert "journal files as they are" in output
    assert destination.stat().st_mode & 0o777 == 0o600
    with tarfile.open(destination) as bundle:
        summary = bundle.extractfile("cloudrescue-summary.txt")
        assert summary is not None and b"journal: not exported" in summary.read()
        inner = bundle.extractfile("var-log.tar")
        assert inner is not None
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as logs:
            names = logs.getnames()
            assert {"app.log", "dpkg.log", "journal/system.journal"} <= set(names)
            app = logs.extractfile("app.log")
            assert app is not None and app.read().decode() == marker
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


# -- read-only diagnostics --------------------------------------------------------------------


def test_network_diagnostics_shows_the_instance_address(lab: E2ELab) -> None:
    guest = fresh(lab)
    before = lab.disk_files(guest.id)
    output = run(lab, guest, "network-diagnostics", "--param", "count=2")
    assert changed("network-diagnostics", guest, 0) in output
    subnet = guest.address.rsplit(".", 1)[0]
    assert "Look at the network (no problem seen)" in output
    assert f"eth0 (UP): {guest.address}/24" in output
    assert f"route: default {subnet}.1 eth0" in output and f"route: {subnet}.0/24 eth0" in output
    assert f"ping {subnet}.1: 2/2 answered" in output and "DNS: " in output
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


def test_rescue_diagnostics_lists_the_instance_disk(lab: E2ELab) -> None:
    guest = fresh(lab, "rhel")
    before = lab.disk_files(guest.id)
    output = run(lab, guest, "rescue-diagnostics")
    assert changed("rescue-diagnostics", guest, 0) in output
    assert re.search(r"p1\s+2\.9G\s+ext4\s+cloudimg-rootfs", output), output
    assert re.search(r"p15\s+106M\s+vfat\s+UEFI", output), output
    assert "ran (rescue): dmesg --level=err,warn → exit 0" in output
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


def test_disk_benchmark_measures_and_changes_nothing(lab: E2ELab) -> None:
    guest = fresh(lab)
    before = lab.disk_files(guest.id)
    output = run(lab, guest, "disk-benchmark", "--param", "size_mb=64")
    assert changed("disk-benchmark", guest, 0) in output
    assert re.search(r"/dev/\S+p1: sequential read \d+\.\d MB/s", output), output
    assert re.search(r"/dev/\S+p1: random 4 KiB read \d+ IOPS", output), output
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)


# -- dry runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """A playbook's dry run on a fresh instance (broken first by ``scenario``)."""

    playbook: str
    shown: tuple[str, ...]
    would_change: int = 1
    family: str = "debian"
    scenario: str | None = None
    params: tuple[str, ...] = ()


DRY_RUNS = [
    DryRun(
        "fix-sudoers",
        (
            "would: mode of /etc/sudoers.d/90-cloud-init-users 0666 -> 0440",
            "would: moved /etc/sudoers.d/99-deploy aside",
        ),
        scenario="sudoers",
    ),
    DryRun("reset-cloud-init", ("would: moved /var/lib/cloud/data aside",)),
    DryRun(
        "reset-cloud-init",
        ("would: moved /var/lib/cloud/data aside", "would: created /.autorelabel"),
        family="rhel",
    ),
    DryRun(
        "enable-serial-console",
        (
            '-GRUB_CMDLINE_LINUX=""\n+' + SERIAL_CMDLINE,
            "would: regenerated /boot/grub/grub.cfg (/usr/sbin/update-grub)",
        ),
    ),
    DryRun(
        "selinux-relabel",
        ("-SELINUX=enforcing\n+SELINUX=permissive", "would: created /.autorelabel"),
        family="rhel",
        params=("permissive=true",),
    ),
    DryRun(
        "fsck",
        ("ran (rescue): e2fsck -f -n /dev/", "(ext4) clean)"),
        would_change=0,
        params=("repair=true",),
    ),
    DryRun(
        "collect-logs",
        ("files, journal files as they are)",),
        would_change=0,
        params=("destination=dry-run-logs.tar.gz",),
    ),
    DryRun(
        "network-diagnostics", ("eth0 (UP): ", "1/1 answered"), would_change=0, params=("count=1",)
    ),
    DryRun(
        "rescue-diagnostics",
        ("ran (rescue): lsblk --fs", "cloudimg-rootfs", "ran (rescue): dmesg"),
        would_change=0,
    ),
    DryRun("disk-benchmark", ("MB/s", "IOPS"), would_change=0, params=("size_mb=16",)),
]


@pytest.mark.parametrize("case", DRY_RUNS, ids=lambda case: f"{case.playbook}-{case.family}")
def test_dry_run_shows_what_it_would_do_and_changes_no_file(
    lab: E2ELab, case: DryRun, tmp_path: Path
) -> None:
    guest = fresh(lab, case.family)
    if case.scenario:
        lab.break_(guest.name, case.scenario)
    before = lab.disk_files(guest.id)
    params = [word for param in case.params for word in ("--param", param)]
    result = lab.cli("run", guest.name, case.playbook, *params, "--dry-run", "--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{case.playbook} on {guest.name}: {case.would_change} would change" in result.stdout
    assert "Dry run: nothing was changed on the disk." in result.stdout
    for text in case.shown:
        assert squeezed(text) in squeezed(result.stdout)
    assert lab.disk_files(guest.id) == before
    assert reachable(lab, guest)
