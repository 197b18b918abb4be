"""One lab for the end-to-end tests of cloudrescue's commands, brought up through the CLI.

Each test adds its own instance (``lab.add``), breaks it for real (``lab.break_``), runs
cloudrescue as a user would (``lab.cli``), and checks the result through the instance's own
sshd. cloudrescue's journal, clouds.yaml and known_hosts live in the test's temp dir.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.lab.admin_client import AdminClient
from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.ledger import Ledger
from cloudrescue.lab.lifecycle import admin
from tests.lab.labkit import system_root

CLOUDRESCUE = str(Path(sys.executable).with_name("cloudrescue"))


@dataclass
class E2ELab:
    """The lab plus the environment cloudrescue runs in."""

    state: Path
    env: dict[str, str]
    admin: AdminClient

    @property
    def key(self) -> Path:
        """Private key authorised for the default user of every fresh instance."""
        return self.state / "lab_key"

    def add(self, **body: Any) -> dict[str, Any]:
        """A fresh booted instance (unique name unless given)."""
        body.setdefault("name", f"t-{uuid.uuid4().hex[:8]}")
        return self.admin.add(body)

    def break_(self, name: str, scenario: str) -> None:
        self.admin.break_instance(name, scenario)

    def faults(self, **faults: Any) -> None:
        self.admin.call("PUT", "/faults", faults)

    def clear_faults(self) -> None:
        self.admin.call("DELETE", "/faults")

    def cli(
        self,
        *args: str,
        timeout: float = 600,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cloudrescue ARGS`` as a user would (stdin not a terminal: ``stdin`` or empty),
        in ``env`` (default: the lab's)."""
        return subprocess.run(
            [CLOUDRESCUE, *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin or "",
            check=False,
            **kwargs,
        )

    def init_pid(self, instance_id: str) -> int:
        """The pid of a running instance's init (its guest, or its rescue system): the outer
        ``unshare``, whose mount namespace holds the system's mounts at this machine's paths
        (``<instance mnt>/root``, ``.../rescue-rw``...)."""
        [pid] = [
            entry.data["pid"]
            for entry in Ledger(StateLayout(self.state).ledger).live()
            if entry.kind == "process" and entry.key == f"{instance_id}:init"
        ]
        return int(pid)

    def system_root(self, instance_id: str) -> Path:
        """The root of a running instance's system (its guest, or its rescue system) as that
        system sees it: ``/proc/<its pid 1>/root``."""
        root = system_root(self.init_pid(instance_id))
        assert root is not None, f"the system of {instance_id} has not entered its root"
        return root

    def disk_files(self, instance_id: str) -> dict[str, str]:
        """Every file on a running instance's disk: relative path -> kind or content hash, mode,
        owner. Read through its guest's own root (``system_root``), where its root and fstab
        filesystems are mounted: nothing is mounted or written to look."""
        init = Path(f"/proc/{self.init_pid(instance_id)}/cmdline").read_bytes()
        assert b"cloudrescue.lab.guest_init" in init, f"{instance_id} does not run its guest"
        top = self.system_root(instance_id)
        not_disk = {  # proc, sysfs, tmpfs and devpts mounted over the guest's tree
            top / fields[4].lstrip("/")
            for fields in (
                line.split() for line in (top.parent / "mountinfo").read_text().splitlines()
            )
            if not fields[fields.index("-") + 2].startswith("/dev/")
        }
        found: dict[str, str] = {}
        for folder, directories, names in os.walk(top):
            directories[:] = [d for d in directories if Path(folder, d) not in not_disk]
            for name in [*directories, *names]:
                path = Path(folder, name)
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    what = "-> " + os.readlink(path)
                elif stat.S_ISREG(info.st_mode):
                    with path.open("rb") as handle:
                        what = hashlib.file_digest(handle, "sha256").hexdigest()
                else:
                    what = stat.filemode(info.st_mode)[0]
                key = str(path.relative_to(top))
                found[key] = f"{what} {info.st_mode:o} {info.st_uid}:{info.st_gid}"
        return found

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CLOUDRESCUE, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ELab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    base = tmp_path_factory.mktemp("e2e")
    state = base / "lab"
    env = {
        **os.environ,
        "OS_CLIENT_CONFIG_FILE": str(base / "clouds.yaml"),
        "OS_CLOUD": "lab",
        "CLOUDRESCUE_STATE_DIR": str(base / "cloudrescue-state"),
        "HOME": str(base / "home"),
        "COLUMNS": "200",
    }
    (base / "home").mkdir()
    up = subprocess.run(
        [
            CLOUDRESCUE,
            "lab",
            "up",
            "--state-dir",
            str(state),
            "--instances",
            "0",
            "--transition-delay",
            "0.2",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    try:
        yield E2ELab(state, env, admin(state))
    finally:
        down = subprocess.run(
            [CLOUDRESCUE, "lab", "down", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert down.returncode == 0, down.stderr
