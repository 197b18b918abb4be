"""The lab's pure logic: network config interpreters, the ledger, fstab, scenarios, clouds.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cloudrescue.errors import InvalidInputError, LabError
from cloudrescue.lab import cloudsyaml, netconfig
from cloudrescue.lab.fstab_mounts import FstabEntry, read_fstab
from cloudrescue.lab.ledger import Entry, Ledger
from cloudrescue.lab.model import LabConfig
from cloudrescue.lab.scenarios import SCENARIOS, get

CLOUD = "10.213.9.10/24"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_ifupdown_dhcp_gets_the_cloud_address(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"etc/network/interfaces": "auto eth0\niface eth0 inet dhcp\n"})
    assert netconfig.interpret(root, CLOUD).addresses == [CLOUD]


def test_ifupdown_static_and_sourced_files(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/network/interfaces": "source /etc/network/interfaces.d/*\nauto lo\n",
            "etc/network/interfaces.d/50-eth0": (
                "allow-hotplug eth0\niface eth0 inet static\n  address 192.168.1.5\n"
                "  netmask 255.255.0.0\n"
            ),
        },
    )
    assert netconfig.interpret(root, CLOUD).addresses == ["192.168.1.5/16"]


def test_ifupdown_without_auto_stays_down(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"etc/network/interfaces": "iface eth0 inet dhcp\n"})
    assert netconfig.interpret(root, CLOUD).addresses == []


def test_netplan_wins_over_ifupdown(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/network/interfaces": "auto eth0\niface eth0 inet dhcp\n",
            "etc/netplan/50-cloud-init.yaml": yaml.safe_dump(
                {"network": {"version": 2, "ethernets": {"eth0": {"addresses": ["10.0.0.7/8"]}}}}
            ),
        },
    )
    result = netconfig.interpret(root, CLOUD)
    assert (result.source, result.addresses) == ("netplan", ["10.0.0.7/8"])


def test_rhel_keyfile_wins_over_ifcfg(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/os-release": 'ID="rocky"\nID_LIKE="rhel centos fedora"\n',
            "etc/sysconfig/network-scripts/ifcfg-eth0": "BOOTPROTO=dhcp\nONBOOT=yes\n",
            "etc/NetworkManager/system-connections/eth0.nmconnection": (
                "[connection]\ninterface-name=eth0\n[ipv4]\nmethod=manual\naddress1=172.16.0.9/12,172.16.0.1\n"
            ),
        },
    )
    result = netconfig.interpret(root, CLOUD)
    assert (result.source, result.addresses) == ("NetworkManager", ["172.16.0.9/12"])


def test_rhel_ifcfg_static(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/os-release": "ID=rocky\n",
            "etc/sysconfig/network-scripts/ifcfg-eth0": (
                "BOOTPROTO=none\nIPADDR=10.1.2.3\nPREFIX=24\n"
            ),
        },
    )
    assert netconfig.interpret(root, CLOUD).addresses == ["10.1.2.3/24"]


def test_ledger_replays_live_entries_and_undoes_newest_first(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("thing", "a", n=1)
    ledger.record("thing", "b")
    ledger.record("thing", "a", pid=7)
    ledger.record("thing", "c")
    ledger.forget("thing", "c")
    with open(ledger.path, "a") as handle:
        handle.write('{"op": "add", "kind": "thing", "ke')  # a line cut short by a crash
    assert ledger.live() == [Entry("thing", "b", {}), Entry("thing", "a", {"n": 1, "pid": 7})]
    undone: list[str] = []
    ledger.undo_all({"thing": lambda entry: undone.append(entry.key)})
    assert undone == ["a", "b"]
    assert ledger.live() == []


def test_ledger_keeps_what_could_not_be_undone(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("thing", "stuck")
    ledger.record("other", "fine")

    def refuse(entry: Entry) -> None:
        raise LabError("busy")

    with pytest.raises(LabError, match="stuck: busy"):
        ledger.undo_all({"thing": refuse, "other": lambda entry: None})
    assert [entry.key for entry in ledger.live()] == ["stuck"]


def test_fstab_parsing_and_options(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/fstab": (
                "# comment\nLABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n"
                "UUID=1234-ABCD /boot/efi vfat umask=0077,nofail,x-systemd.automount 0 1\n"
                "/dev/sdb1 /data xfs\n"
            )
        },
    )
    entries = read_fstab(root)
    assert [e.target for e in entries] == ["/", "/boot/efi", "/data"]
    assert entries[1].nofail and entries[1].mount_options() == "umask=0077"
    assert entries[2] == FstabEntry("/dev/sdb1", "/data", "xfs", ("defaults",))


def test_scenario_registry() -> None:
    assert set(SCENARIOS) == {
        "lost-key",
        "ssh-symlink",
        "bad-perms",
        "authorized-keys-file",
        "sshd-config",
        "firewall",
        "fstab",
        "root-password",
        "disk-full",
        "network",
        "sudoers",
        "hostile",
    }
    assert all(s.description and "\n" not in s.description for s in SCENARIOS.values())
    with pytest.raises(InvalidInputError, match="known: lost-key"):
        get("nope")


def test_clouds_yaml_merge_keeps_other_entries_and_remove_only_ours(tmp_path: Path) -> None:
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"prod": {"auth": {"auth_url": "https://x"}}}}))
    config = LabConfig("abc123", str(tmp_path), 4321, "crlabc123", "10.213.5.0/24", "10.213.5.1")
    creds = {"username": "admin", "password": "pw", "project_name": "admin"}
    cloudsyaml.merge(path, "lab", cloudsyaml.entry(config, creds), (0, 0))
    data = yaml.safe_load(path.read_text())
    assert set(data["clouds"]) == {"prod", "lab"}
    assert data["clouds"]["lab"]["auth"]["auth_url"] == "http://127.0.0.1:4321/identity/v3"
    assert data["clouds"]["lab"]["region_name"] == "RegionOne"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not cloudsyaml.remove(path, "lab", "http://127.0.0.1:9/identity/v3")
    assert cloudsyaml.remove(path, "lab", cloudsyaml.auth_url(config))
    assert set(yaml.safe_load(path.read_text())["clouds"]) == {"prod"}
    assert json.dumps(data)  # plain data, no YAML tags
