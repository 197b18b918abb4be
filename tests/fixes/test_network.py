"""switch_to_dhcp on ifupdown, netplan, NetworkManager keyfile and sysconfig layouts."""

from __future__ import annotations

from pathlib import Path

import yaml

from cloudrescue.fixes.common import MARKER
from cloudrescue.fixes.network import primary_nic, switch_to_dhcp
from cloudrescue.guest import Guest

from .conftest import guest_fs, guest_on, mounted_guest, tree_digest, write_tree

LAB_STATIC_INTERFACES = """\
source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet static
    address 192.168.100.10/24
    gateway 192.168.100.1
    dns-nameservers 192.168.100.1
"""
NETPLAN = """\
network:
  version: 2
  ethernets:
    ens3:
      addresses: [203.0.113.5/24, "2001:db8::5/64"]
      gateway4: 203.0.113.1
      nameservers: {addresses: [203.0.113.1]}
"""
KEYFILE = """\
[connection]
id=cloud-init eth0
type=ethernet
interface-name=eth0

[ipv4]
method=manual
address1=192.168.100.10/24
gateway=192.168.100.1

[ipv6]
method=auto
"""
IFCFG = (
    "DEVICE=eth0\nBOOTPROTO=none\nONBOOT=no\nIPADDR=192.168.100.10\nPREFIX=24\n"
    "GATEWAY=192.168.100.1\n"
)
COMMON = {
    "etc/udev/rules.d/70-persistent-net.rules": 'SUBSYSTEM=="net", NAME="eth0"\n',
    "etc/cloud/cloud.cfg.d/99-disable-network-config.cfg": "network: {config: disabled}\n",
    "etc/cloud/cloud.cfg.d/90-mixed.cfg": "network:\n  config: disabled\nhostname: web\n",
    "etc/cloud/cloud.cfg.d/05-other.cfg": "datasource_list: [OpenStack]\n",
}


def check_common(root: Path) -> None:
    assert not (root / "etc/udev/rules.d/70-persistent-net.rules").exists()
    assert not (root / "etc/cloud/cloud.cfg.d/99-disable-network-config.cfg").exists()
    assert yaml.safe_load((root / "etc/cloud/cloud.cfg.d/90-mixed.cfg").read_text()) == {
        "hostname": "web"
    }
    assert (root / "etc/cloud/cloud.cfg.d/05-other.cfg").exists()


def run_twice(root: Path) -> None:
    before = tree_digest(root)
    planned = switch_to_dhcp(guest_on(root, dry_run=True))
    assert planned and tree_digest(root) == before
    guest = guest_fs(root)
    assert switch_to_dhcp(Guest(guest, mounted_guest(root)))
    assert switch_to_dhcp(Guest(guest, mounted_guest(root))) == []


def test_debian_ifupdown(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(
        root,
        {
            **COMMON,
            "etc/network/interfaces": LAB_STATIC_INTERFACES.replace("allow-hotplug eth0\n", ""),
            "etc/network/interfaces.d/eth1": "iface eth1 inet static\n  address 10.1.0.5/16\n",
        },
    )
    run_twice(root)
    text = (root / "etc/network/interfaces").read_text()
    assert "iface eth0 inet dhcp\n" in text and "iface lo inet loopback" in text
    assert f"{MARKER} static address replaced by DHCP:     address 192.168.100.10/24" in text
    assert "\n    dns-nameservers 192.168.100.1\n" in text
    assert text.endswith("auto eth0\n")
    assert "static" in (root / "etc/network/interfaces.d/eth1").read_text()
    check_common(root)


def test_ubuntu_netplan(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(root, {**COMMON, "etc/netplan/50-cloud-init.yaml": NETPLAN})
    run_twice(root)
    conf = yaml.safe_load((root / "etc/netplan/50-cloud-init.yaml").read_text())
    assert conf["network"]["ethernets"]["ens3"] == {
        "addresses": ["2001:db8::5/64"],
        "nameservers": {"addresses": ["203.0.113.1"]},
        "dhcp4": True,
    }
    check_common(root)


def test_rhel_keyfile_and_ifcfg(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(
        root,
        {
            **COMMON,
            "etc/os-release": 'ID="rocky"\n',
            "etc/selinux/config": "SELINUX=enforcing\n",
            "etc/sysconfig/network-scripts/ifcfg-eth0": IFCFG,
            "etc/sysconfig/network-scripts/ifcfg-lo": "DEVICE=lo\nIPADDR=127.0.0.1\n",
        },
    )
    write_tree(root, {"etc/NetworkManager/system-connections/eth0.nmconnection": KEYFILE}, 0o600)
    run_twice(root)
    keyfile = root / "etc/NetworkManager/system-connections/eth0.nmconnection"
    assert keyfile.read_text() == KEYFILE.replace(
        "method=manual\naddress1=192.168.100.10/24\ngateway=192.168.100.1\n", "method=auto\n"
    )
    assert keyfile.stat().st_mode & 0o777 == 0o600
    ifcfg = (root / "etc/sysconfig/network-scripts/ifcfg-eth0").read_text()
    assert ifcfg == "DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n"
    assert "IPADDR" in (root / "etc/sysconfig/network-scripts/ifcfg-lo").read_text()
    assert (root / ".autorelabel").exists()
    check_common(root)


def test_primary_nic_choice() -> None:
    assert primary_nic(["lo", "eth1", "ens3"]) == "ens3"
    assert primary_nic(["lo", "enp7s0"]) == "enp7s0"
    assert primary_nic(["lo"]) is None
