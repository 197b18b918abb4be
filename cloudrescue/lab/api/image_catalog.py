"""The lab's glance images: guest images per family and two rescue images, ids stable per lab."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from cloudrescue.lab.model import Family

_NAMESPACE = uuid.UUID("7c6b0a8e-3f0e-4d0c-9a52-1f3c2b9d6e41")
CREATED = "2025-01-01T00:00:00Z"
RESCUE_PROPERTIES = ("hw_rescue_device", "hw_rescue_bus")


@dataclass(frozen=True)
class Image:
    """One glance image; ``properties`` are glance's additional (top-level) properties."""

    id: str
    name: str
    size: int
    owner: str
    properties: dict[str, str] = field(default_factory=dict)
    os_hidden: bool = False

    @property
    def stable_rescue_capable(self) -> bool:
        """Both hw_rescue_* properties: what nova needs to rescue a volume-backed instance."""
        return all(key in self.properties for key in RESCUE_PROPERTIES)

    @property
    def asks_stable_rescue(self) -> bool:
        """Any hw_rescue_* property: what makes libvirt do a stable device rescue."""
        return any(key in self.properties for key in RESCUE_PROPERTIES)

    def to_glance(self) -> dict[str, Any]:
        """The image in glance v2's shape."""
        digest = hashlib.sha512(self.id.encode()).hexdigest()
        body: dict[str, Any] = {
            "status": "active",
            "name": self.name,
            "tags": [],
            "container_format": "bare",
            "created_at": CREATED,
            "disk_format": "raw",
            "updated_at": CREATED,
            "visibility": "public",
            "self": f"/v2/images/{self.id}",
            "min_disk": 0,
            "protected": False,
            "id": self.id,
            "file": f"/v2/images/{self.id}/file",
            "checksum": hashlib.md5(self.id.encode(), usedforsecurity=False).hexdigest(),
            "os_hash_algo": "sha512",
            "os_hash_value": digest,
            "os_hidden": self.os_hidden,
            "owner": self.owner,
            "size": self.size,
            "min_ram": 0,
            "schema": "/v2/schemas/image",
            "virtual_size": self.size,
        }
        body.update(self.properties)
        return body


class ImageCatalog:
    """The images of one lab."""

    def __init__(self, lab_id: str, owner: str) -> None:
        def image_id(key: str) -> str:
            return str(uuid.uuid5(_NAMESPACE, f"{lab_id}/{key}"))

        self.guests: dict[Family, Image] = {
            "debian": Image(
                image_id("guest-debian"),
                "Debian 12 (lab)",
                2 * 1024**3,
                owner,
                {"os_distro": "debian", "os_type": "linux", "hw_disk_bus": "virtio"},
            ),
            "rhel": Image(
                image_id("guest-rhel"),
                "Rocky Linux 9 (lab)",
                2 * 1024**3,
                owner,
                {"os_distro": "rocky", "os_type": "linux", "hw_disk_bus": "virtio"},
            ),
        }
        self.rescue = Image(
            image_id("rescue"),
            "cloudrescue-rescue",
            512 * 1024**2,
            owner,
            {
                "os_distro": "debian",
                "os_type": "linux",
                "hw_rescue_device": "disk",
                "hw_rescue_bus": "virtio",
            },
        )
        self.legacy_rescue = Image(
            image_id("rescue-legacy"),
            "cloudrescue-rescue-legacy",
            512 * 1024**2,
            owner,
            {"os_distro": "debian", "os_type": "linux"},
        )
        self.images: list[Image] = [*self.guests.values(), self.rescue, self.legacy_rescue]

    def get(self, image_id: str) -> Image | None:
        wanted = image_id.lower()
        return next((image for image in self.images if image.id == wanted), None)
