"""The lab's bastion and private network (`cloudrescue lab bastion`, `lab add --private`).

A lab of its own: the private network is reachable only through the bastion (checked with
OpenSSH's own client, ``ssh -J``, each host key pinned), the bastion takes its key and no
password, and `lab down` removes all of it, the host's ``unreachable`` route included.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_root
from .labkit import key_login, lab_systems, leftovers, recorded_loops, tcp_open

pytestmark = pytest.mark.lab
CLI = str(Path(sys.executable).with_name("cloudrescue"))


def test_private_instances_are_reached_through_the_bastion_only(tmp_path: Path) -> None:
    require_root()
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CLOUDRESCUE_"))}
    env |= {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")}

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        argv = [CLI, "lab", command, "--state-dir", str(state), *rest]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)

    up = lab("up", "--instances", "0", "--transition-delay", "0")
    assert up.returncode == 0, up.stderr
    lab_id = json.loads((state / "lab.json").read_text())["lab_id"]
    try:
        refused = lab("add", "--private")
        assert refused.returncode == 4 and "no private network" in refused.stderr
        made = lab("bastion", "-f", "json")
        assert made.returncode == 0, made.stderr
        bastion = json.loads(made.stdout)
        assert json.loads(lab("bastion", "-f", "json").stdout) == bastion  # made once
        added = lab("add", "--private", "--name", "db-1", "-f", "json")
        assert added.returncode == 0, added.stderr
        view = json.loads(added.stdout)
        private = ipaddress.ip_network(bastion["private_subnet"])
        assert view["network"] == "private" and ipaddress.ip_address(view["address"]) in private
        assert str(private.network_address + 2) == bastion["private_address"]

        routes = subprocess.run(
            ["ip", "-4", "route", "show", "type", "unreachable", str(private)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert routes.strip(), "no unreachable route for the private network"
        assert not tcp_open(view["address"])
        assert key_login(view["address"], "debian", state / "lab_key", via=bastion) == "ok"

        known = tmp_path / "known_hosts"  # both host keys pinned, as the lab's systems hold them
        [guest] = lab_systems(view["address"])
        [jump] = lab_systems(bastion["address"])
        lines = [
            f"{address} {key.get_name()} {key.get_base64()}"
            for address, system in ((view["address"], guest), (bastion["address"], jump))
            for key in system.host_keys()
        ]
        known.write_text("\n".join(lines) + "\n")
        options = [
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-F",
            "/dev/null",
        ]
        proxy = " ".join(
            [
                "ssh",
                *options,
                "-i",
                bastion["key"],
                "-W",
                "%h:%p",
                f"{bastion['user']}@{bastion['address']}",
            ]
        )
        through = subprocess.run(
            [
                "ssh",
                *options,
                "-i",
                str(state / "lab_key"),
                "-o",
                f"ProxyCommand={proxy}",
                f"debian@{view['address']}",
                "hostname",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (through.returncode, through.stdout.strip()) == (0, "db-1"), through.stderr
        demo = lab("ssh", "db-1", "--", "hostname")  # `lab ssh` jumps through it too
        assert (demo.returncode, demo.stdout.strip()) == (0, "db-1"), demo.stderr
        no_key = subprocess.run(
            [
                "ssh",
                *options,
                "-o",
                "PubkeyAuthentication=no",
                f"root@{bastion['address']}",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert no_key.returncode == 255 and "Permission denied" in no_key.stderr
    finally:
        loops = recorded_loops(state)
        down = lab("down")
        assert down.returncode == 0, down.stderr
    assert leftovers(state, lab_id, loops) == []
    left = subprocess.run(
        ["ip", "-4", "route", "show", "type", "unreachable", str(private)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert left.strip() == ""
