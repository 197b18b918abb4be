"""Data shared by the lab's API daemon, its runtime and its CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Variant = Literal["ext4", "xfs", "lvm", "btrfs"]
Family = Literal["debian", "rhel"]
BootOutcome = Literal["running", "emergency"]
ShutdownHostKeys = Literal["fingerprints", "keys"]
Network = Literal["public", "private"]  # the lab's bridge, or the private one behind the bastion

VARIANTS: tuple[Variant, ...] = ("ext4", "xfs", "lvm", "btrfs")
FAMILIES: tuple[Family, ...] = ("debian", "rhel")

DEFAULT_USER: dict[Family, str] = {"debian": "debian", "rhel": "cloud-user"}


@dataclass(frozen=True)
class InstanceSpec:
    """What the lab knows of an instance that never changes while it exists."""

    id: str
    name: str
    index: int
    address: str
    mac: str
    variant: Variant = "ext4"
    family: Family = "debian"
    volume_id: str | None = None
    network: Network = "public"

    @property
    def volume_backed(self) -> bool:
        return self.volume_id is not None

    @property
    def default_user(self) -> str:
        return DEFAULT_USER[self.family]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceSpec:
        return cls(**data)


@dataclass(frozen=True)
class RescueRequest:
    """How the runtime should start a rescue system for an instance."""

    admin_password: str
    image_id: str
    stable_device: bool = False
    forge_host_key_fingerprints: bool = False
    defer_host_keys: bool = False  # printed later, by ``LabRuntime.announce_host_keys``
    guest_host_keys_at_shutdown: ShutdownHostKeys | None = None
    silent_host_keys: bool = False  # the rescue's cloud-init prints no host-key block at all
    ssh_cut: bool = False  # the rescue's port 22 resets every connection (the ssh_cut fault)


# Seconds from RESCUE to the rescue's host-key block: real clouds take 10 s or more (nova shows
# RESCUE once the rescue VM is powered on; cloud-init's modules:final comes after its boot).
# The lab's default stays short for the tests, but twice cloudrescue's 1 s status poll, so a
# client that reads the console once it sees RESCUE still finds the block printed after it.
DEFAULT_ANNOUNCE_DELAY = 2.0


@dataclass
class LabConfig:
    """Contents of ``<state-dir>/lab.json``: the lab's identity and addresses."""

    lab_id: str
    state_dir: str
    api_port: int
    bridge: str
    subnet: str
    gateway: str
    cloud_name: str = "lab"
    transition_delay: float = 1.0
    announce_delay: float = DEFAULT_ANNOUNCE_DELAY  # RESCUE seen -> the rescue's host-key block
    created: str = ""
    daemon_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabConfig:
        return cls(**data)


@dataclass(frozen=True)
class BastionInfo:
    """The lab's bastion (``<state-dir>/bastion/bastion.json``): an SSH jump host with one leg
    on the lab's bridge (``address``, reachable from this machine) and one on the private
    network (``private_address`` in ``private_subnet``), which this machine has no route to.
    """

    address: str
    private_address: str
    private_subnet: str
    user: str
    key: str  # private key authorised for ``user`` on the bastion
    fingerprints: list[str]  # ``ssh-keygen -l`` lines of its host keys
    host_key_fingerprint: str  # SHA256:... of its (only) host key, for --jump-fingerprint

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BastionInfo:
        return cls(**data)
