"""Where the lab keeps its files: the state dir of one lab and the machine-wide cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/cloudrescue/lab"
DEFAULT_CACHE_DIR = "/var/cache/cloudrescue"


def default_state_dir() -> Path:
    """``$CLOUDRESCUE_LAB_DIR`` or ``/var/lib/cloudrescue/lab``."""
    return Path(os.environ.get("CLOUDRESCUE_LAB_DIR") or DEFAULT_STATE_DIR)


def cache_dir() -> Path:
    """``$CLOUDRESCUE_CACHE_DIR`` or ``/var/cache/cloudrescue``."""
    return Path(os.environ.get("CLOUDRESCUE_CACHE_DIR") or DEFAULT_CACHE_DIR)


@dataclass(frozen=True)
class InstancePaths:
    """Files of one instance under ``<state-dir>/instances/<id>/``."""

    root: Path

    @property
    def disk(self) -> Path:
        return self.root / "disk.img"

    @property
    def config_drive(self) -> Path:
        return self.root / "config-drive.img"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def layout(self) -> Path:
        """The template's disk layout (so a later daemon can adopt the instance)."""
        return self.root / "layout.json"

    @property
    def plan(self) -> Path:
        """The boot plan handed to the instance's (or rescue's) init process."""
        return self.root / "plan.json"

    @property
    def init_log(self) -> Path:
        """stdout/stderr of the init process and of sshd (debugging aid, no secrets)."""
        return self.root / "init.log"

    @property
    def mnt(self) -> Path:
        """Mount points, used only inside the instance's private mount namespaces."""
        return self.root / "mnt"


@dataclass(frozen=True)
class StateLayout:
    """The state dir of one lab (see docs/lab-design.md)."""

    root: Path

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def ovh_conf(self) -> Path:
        """python-ovh's INI file for the lab's OVH API (``lab/ovhconf.py``)."""
        return self.root / "ovh.conf"

    @property
    def lab_key(self) -> Path:
        return self.root / "lab_key"

    @property
    def lab_key_pub(self) -> Path:
        return self.root / "lab_key.pub"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def servers_json(self) -> Path:
        return self.root / "servers.json"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    def instance(self, instance_id: str) -> InstancePaths:
        """Paths of one instance."""
        return InstancePaths(self.instances / instance_id)

    @property
    def bastion(self) -> BastionPaths:
        """Files of the lab's bastion (made on demand, see docs/lab-design.md)."""
        return BastionPaths(self.root / "bastion")


@dataclass(frozen=True)
class BastionPaths:
    """Files of the bastion under ``<state-dir>/bastion/``."""

    root: Path

    @property
    def info(self) -> Path:
        """``BastionInfo`` as JSON (written once the bastion's sshd listens)."""
        return self.root / "bastion.json"

    @property
    def key(self) -> Path:
        """Private key authorised for root on the bastion (``key.pub`` beside it)."""
        return self.root / "bastion_key"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def init_log(self) -> Path:
        return self.root / "init.log"

    @property
    def mnt(self) -> Path:
        """Mount points, used only inside the bastion's private mount namespace."""
        return self.root / "mnt"
