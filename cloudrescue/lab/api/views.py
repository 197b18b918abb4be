"""Server and flavor bodies in nova's shapes, with fields gated by microversion as nova does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.nova_common import Nova
from cloudrescue.lab.api.store import ServerRecord

NETWORK = "lab-net"
PRIVATE_NETWORK = "lab-private"  # the private network behind the lab's bastion
AVAILABILITY_ZONE = "nova"
_PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


FLAVORS = (Flavor("1", "lab.small", 1, 512, 4), Flavor("2", "lab.medium", 2, 1024, 8))


def find_flavor(flavor_id: str) -> Flavor | None:
    return next((flavor for flavor in FLAVORS if flavor.id == flavor_id), None)


def hostname(name: str) -> str:
    """A DNS label from a server name, like nova's ``sanitize_hostname``."""
    label = re.sub(r"[ _]", "-", name.lower())
    label = re.sub(r"[^\w.-]+", "", label, flags=re.ASCII)
    return label.strip(".-")[:63] or "server"


def _host_id(project_id: str, host: str) -> str:
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def _image(nova: Nova, record: ServerRecord) -> dict[str, Any] | str:
    if record.spec.volume_backed:
        return ""
    image: dict[str, Any] = {
        "id": record.image_id,
        "links": nova.bookmark("images", record.image_id),
    }
    if nova.at_least("2.98"):
        known = nova.lab.images.get(record.image_id)
        image["properties"] = dict(known.properties) if known else {}
    return image


def _flavor(nova: Nova, record: ServerRecord) -> dict[str, Any]:
    flavor = find_flavor(record.flavor_id) or FLAVORS[0]
    if not nova.at_least("2.47"):
        return {"id": flavor.id, "links": nova.bookmark("flavors", flavor.id)}
    return {
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": 0,
        "swap": 0,
        "original_name": flavor.name,
        "extra_specs": {},
    }


def _addresses(record: ServerRecord) -> dict[str, list[dict[str, Any]]]:
    if record.vm_state == st.BUILDING:
        return {}
    return {
        (PRIVATE_NETWORK if record.spec.network == "private" else NETWORK): [
            {
                "addr": record.spec.address,
                "OS-EXT-IPS-MAC:mac_addr": record.spec.mac,
                "OS-EXT-IPS:type": "fixed",
                "version": 4,
            }
        ]
    }


def server_basic(nova: Nova, record: ServerRecord) -> dict[str, Any]:
    """An entry of ``GET /servers``."""
    return {"id": record.id, "links": nova.links("servers", record.id), "name": record.spec.name}


def server_detail(nova: Nova, record: ServerRecord, *, show: bool = False) -> dict[str, Any]:
    """The body of ``GET /servers/{id}`` (``show``) or an entry of ``GET /servers/detail``."""
    ident = nova.lab.identity
    status = record.status
    server: dict[str, Any] = {
        "accessIPv4": "",
        "accessIPv6": "",
        "addresses": _addresses(record),
        "created": record.created,
        "flavor": _flavor(nova, record),
        "hostId": _host_id(ident.project_id, nova.lab.host),
        "id": record.id,
        "image": _image(nova, record),
        "links": nova.links("servers", record.id),
        "metadata": dict(record.metadata),
        "name": record.spec.name,
        "status": status,
        "tenant_id": ident.project_id,
        "user_id": ident.user_id,
        "updated": record.updated,
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": AVAILABILITY_ZONE,
        "config_drive": "True",
        "key_name": None,
        "OS-SRV-USG:launched_at": record.launched_at,
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-STS:task_state": record.task_state,
        "OS-EXT-STS:vm_state": record.vm_state,
        "OS-EXT-STS:power_state": record.power_state,
        "os-extended-volumes:volumes_attached": _volumes(nova, record),
    }
    if status == "RESCUE":
        nova.lab.machine.rescue_seen(record)
    if status in ("ERROR", "DELETED") and record.fault:
        server["fault"] = dict(record.fault)
    if status in _PROGRESS_STATUSES:
        server["progress"] = 0
    if nova.at_least("2.9"):
        server["locked"] = False
    if nova.at_least("2.19"):
        server["description"] = None
    if nova.at_least("2.26"):
        server["tags"] = list(record.tags)
    if nova.at_least("2.63"):
        server["trusted_image_certificates"] = None
    if show and nova.at_least("2.71"):
        server["server_groups"] = []
    if nova.at_least("2.73"):
        server["locked_reason"] = None
    if nova.at_least("2.90"):
        server["OS-EXT-SRV-ATTR:hostname"] = hostname(record.spec.name)
    if nova.at_least("2.96"):
        server["pinned_availability_zone"] = None
    if nova.at_least("2.100"):
        server["scheduler_hints"] = {}
    return server


def _volumes(nova: Nova, record: ServerRecord) -> list[dict[str, Any]]:
    if record.spec.volume_id is None:
        return []
    volume: dict[str, Any] = {"id": record.spec.volume_id}
    if nova.at_least("2.3"):
        volume["delete_on_termination"] = False
    return [volume]


def flavor_view(nova: Nova, flavor: Flavor, *, detail: bool) -> dict[str, Any]:
    """A flavor as ``GET /flavors`` (brief) or ``/flavors/detail`` and ``/flavors/{id}`` show."""
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": nova.links("flavors", flavor.id),
    }
    if detail:
        body.update(
            {
                "ram": flavor.ram,
                "disk": flavor.disk,
                "swap": 0 if nova.at_least("2.75") else "",
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "OS-FLV-DISABLED:disabled": False,
                "vcpus": flavor.vcpus,
                "os-flavor-access:is_public": True,
                "rxtx_factor": 1.0,
            }
        )
        if nova.at_least("2.61"):
            body["extra_specs"] = {}
    if nova.at_least("2.55"):
        body["description"] = None
    return body
