"""Fixtures of the lab runtime tests: one in-process ``LabRuntime`` shared by the session.

``runtime_lab`` makes a bridge and boots a set of instances (four at a time): one per break
scenario, one to rescue, one per disk variant. It tears everything down at the end, even when
tests failed, and checks that nothing of the lab is left on the machine.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloudrescue.lab import netns
from cloudrescue.lab.model import Family, InstanceSpec, LabConfig, Variant
from cloudrescue.lab.rootfs import cache_lock
from cloudrescue.lab.runtime import LabRuntime
from cloudrescue.lab.scenarios import SCENARIOS

from .labkit import leftovers, recorded_loops

BOOT_PARALLELISM = 4


def require_root() -> None:
    """Skip unless running as root (the lab needs root)."""
    if os.geteuid() != 0:
        pytest.skip("the lab tests need root")


@dataclass
class RuntimeLab:
    """A ``LabRuntime`` with booted instances, by role."""

    state: Path
    runtime: LabRuntime
    specs: dict[str, InstanceSpec] = field(default_factory=dict)

    @property
    def key(self) -> Path:
        return self.state / "lab_key"


def _specs(subnet: ipaddress.IPv4Network) -> dict[str, InstanceSpec]:
    roles: list[tuple[str, Variant, Family, bool]] = [
        (f"break-{name}", "ext4", "debian", False) for name in SCENARIOS
    ]
    roles += [
        ("rescue", "ext4", "debian", True),
        ("forge", "ext4", "debian", False),
        ("xfs", "xfs", "debian", False),
        ("btrfs", "btrfs", "debian", False),
        ("lvm", "lvm", "debian", False),
        ("rhel", "ext4", "rhel", False),
    ]
    specs: dict[str, InstanceSpec] = {}
    for index, (role, variant, family, volume) in enumerate(roles, start=1):
        specs[role] = InstanceSpec(
            id=str(uuid.uuid4()),
            name=f"t-{role}",
            index=index,
            address=str(subnet.network_address + 9 + index),
            mac="fa:16:3e:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3)),
            variant=variant,
            family=family,
            volume_id=str(uuid.uuid4()) if volume else None,
        )
    return specs


@pytest.fixture(scope="session")
def runtime_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeLab]:
    """The shared in-process lab (see the module docstring)."""
    require_root()
    state = tmp_path_factory.mktemp("runtime-lab")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(state / "lab_key")], check=True
    )
    lab_id = secrets.token_hex(3)
    with cache_lock("network"):
        subnet = netns.free_subnet()
        config = LabConfig(
            lab_id,
            str(state),
            0,
            netns.bridge_name(lab_id),
            str(subnet),
            str(subnet.network_address + 1),
        )
        runtime = LabRuntime(config)
        netns.create_bridge(runtime.ledger, lab_id, config.gateway, subnet.prefixlen)
    lab = RuntimeLab(state, runtime, _specs(subnet))
    try:

        def start(spec: InstanceSpec) -> None:
            runtime.provision(spec)
            runtime.boot(spec)

        with ThreadPoolExecutor(BOOT_PARALLELISM) as pool:
            for future in [pool.submit(start, spec) for spec in lab.specs.values()]:
                future.result()
        yield lab
    finally:
        loops = recorded_loops(state)
        runtime.teardown()
        left = leftovers(state, lab_id, loops)
        assert not left, f"the lab left things behind: {left}"
