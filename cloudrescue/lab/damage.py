"""Applying a break scenario to a stopped instance's disk, in a private mount namespace.

``python -m cloudrescue.lab.damage <plan.json> <scenario>`` (started by the runtime under
``unshare --mount``) mounts the instance's filesystems like a boot would (leniently: a broken
fstab must not stop a second break), applies the scenario, unmounts and prints
``{"detail": ...}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cloudrescue.lab import scenarios
from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.fstab_mounts import mount_fstab, mount_root, plan_devices
from cloudrescue.lab.mounting import mount
from cloudrescue.lab.system import run


def apply(plan: BootPlan, name: str) -> str:
    """Mount the disk of ``plan``, apply scenario ``name``, unmount; its description."""
    scenario = scenarios.get(name)
    base = Path(plan.mnt)
    root, scratch = base / "damage", base / "scratch"
    for directory in (root, scratch):
        directory.mkdir(parents=True, exist_ok=True)
    mount("tmpfs", scratch, "tmpfs", "mode=0700,size=1m")
    mount_root(plan, root)
    try:
        mount_fstab(root, plan_devices(plan))
        target = scenarios.Target(root, plan.default_user, plan.layout.family, scratch)
        return scenario.apply(target)
    finally:
        run(["sync"])
        run(["umount", "--recursive", str(root)])
        run(["umount", str(scratch)])


def main(argv: list[str]) -> None:
    """Entry point: ``damage <plan.json> <scenario>``."""
    detail = apply(BootPlan.load(Path(argv[0])), argv[1])
    print(json.dumps({"detail": detail}))


if __name__ == "__main__":
    main(sys.argv[1:])
