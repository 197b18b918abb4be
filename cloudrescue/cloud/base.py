"""The interface a cloud backend implements, and the data it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Address:
    """One IP address of an instance, as the cloud reports it."""

    ip: str
    version: int
    kind: str  # "fixed" or "floating"
    network: str


@dataclass(frozen=True)
class ServerInfo:
    """What cloudrescue needs to know of an instance."""

    id: str
    name: str
    status: str
    task_state: str | None
    addresses: tuple[Address, ...] = ()
    access_ipv4: str | None = None
    image_id: str | None = None
    volume_ids: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] | None = ()  # None: the cloud does not report tags (nova < 2.26)
    fault: str | None = None  # nova's fault of an ERROR instance: "message (code N)"

    @property
    def volume_backed(self) -> bool:
        """Booted from a volume: nova reports no image for such servers."""
        return not self.image_id and bool(self.volume_ids)


@dataclass(frozen=True)
class ImageInfo:
    """A rescue image candidate."""

    id: str
    name: str
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def supports_stable_device_rescue(self) -> bool:
        """Nova 2.87 stable-device rescue needs both ``hw_rescue_*`` image properties."""
        return bool(self.properties.get("hw_rescue_device")) and bool(
            self.properties.get("hw_rescue_bus")
        )


@dataclass(frozen=True)
class RescueStarted:
    """Answer to a rescue request. ``admin_password`` is the one the rescue accepts."""

    admin_password: str = field(repr=False)
    stable_device: bool = False


def keeps_marks(backend: object) -> bool:
    """Whether ``backend.set_marks`` leaves a mark on the instance that says whose rescue it
    is. A backend says it does not with a ``keeps_marks = False`` attribute (an OVHcloud VPS
    has no metadata: its journal entry alone says so); without the attribute it does."""
    return bool(getattr(backend, "keeps_marks", True))


class CloudBackend(Protocol):
    """Operations on one cloud account. Implementations raise ``cloudrescue.errors``."""

    @property
    def cloud_name(self) -> str:
        """Name of the cloud (clouds.yaml entry or auth URL), for the journal."""
        ...

    @property
    def announces_host_keys(self) -> bool:
        """Whether the rescue system's host keys can be read on the console log (nova's
        cloud-init prints them). False (an OVHcloud VPS): the rescue workflow reads no
        console and needs ``--trust-host-key``."""
        ...

    def find_server(self, name_or_id: str) -> ServerInfo:
        """One server by id or exact name; ``NotFoundError`` / ``AmbiguousNameError``."""
        ...

    def get_server(self, server_id: str) -> ServerInfo:
        """Fresh state of a server."""
        ...

    def list_servers(
        self,
        *,
        name_regex: str | None = None,
        tags: tuple[str, ...] = (),
        any_tags: tuple[str, ...] = (),
        not_any_tags: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
    ) -> list[ServerInfo]:
        """Every server of the project (all pages), filtered by the cloud as ``nova list``
        filters: ``name_regex`` searched in the name, all of ``tags``, one of ``any_tags``,
        none of ``not_any_tags``, a status among ``statuses``. A cloud may ignore a filter
        (nova ignores what it does not know): callers that must not widen check again."""
        ...

    def find_image(self, name_or_id: str) -> ImageInfo:
        """One image by id or exact name."""
        ...

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        """Ask the cloud to rescue ``server``."""
        ...

    def unrescue(self, server_id: str) -> None:
        """Ask the cloud to leave rescue."""
        ...

    def console_output(self, server_id: str, length: int | None = None) -> str:
        """The instance's console log (last ``length`` lines)."""
        ...

    def console_url(self, server_id: str, console_type: str = "novnc") -> str:
        """URL of the remote console."""
        ...

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        """Set metadata items on the server."""
        ...

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        """Remove metadata items (absent keys are fine)."""
        ...

