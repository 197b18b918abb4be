"""The cloud a journal entry names, reopened (``cloudrescue resume``): the entry's ``cloud`` is
the backend's ``cloud_name`` when the rescue started, which says which provider it was and
how it was reached (``<clouds.yaml entry>[@<region>]`` or ``envvars``; ``ovh-vps:<endpoint>``
with the ovh.conf it was read with)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudrescue.cloud.base import CloudBackend
    from cloudrescue.cloud.openstack import ConnectionOptions


def open_recorded_cloud(name: str, connection: ConnectionOptions | None = None) -> CloudBackend:
    """The backend of the journal's cloud ``name`` (``connection``: OpenStack's region and
    TLS choices of this command line, the region recorded winning)."""
    from cloudrescue.cloud.ovh_vps import PROVIDER

    if name.startswith(f"{PROVIDER}:"):
        from cloudrescue.cloud.ovh_vps import open_recorded_vps

        return open_recorded_vps(name)
    from cloudrescue.cloud.openstack import open_recorded_openstack

    return open_recorded_openstack(name, connection)
