"""Everything the API serves from: identity, tokens, images, server records, state machine."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import Request

from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.auth import Identity, TokenStore
from cloudrescue.lab.api.consoles import ConsoleTokens
from cloudrescue.lab.api.error_bodies import AdminError
from cloudrescue.lab.api.faults import FaultState
from cloudrescue.lab.api.image_catalog import ImageCatalog
from cloudrescue.lab.api.machine import BastionRuntime, Machine, Runtime
from cloudrescue.lab.api.store import ServerRecord, ServerStore
from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.model import (
    BastionInfo,
    BootOutcome,
    Family,
    InstanceSpec,
    LabConfig,
    Network,
    Variant,
)
from cloudrescue.lab.ovhconf import OvhAccount

log = logging.getLogger(__name__)

FIRST_HOST = 10
FLAVOR_ID = "1"


def _mac() -> str:
    return "fa:16:3e:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3))


class LabService:
    """The state behind every router; one per daemon."""

    def __init__(
        self,
        config: LabConfig,
        runtime: Runtime,
        identity: Identity,
        admin_token: str,
        *,
        initial_instances: int = 2,
        initial_tags: Sequence[str] = (),
        variant: Variant = "ext4",
        ovh_account: OvhAccount | None = None,
    ) -> None:
        from cloudrescue.lab.api.ovh import OvhState

        self.config = config
        self.layout = StateLayout(Path(config.state_dir))
        self.identity = identity
        self.admin_token = admin_token
        self.tokens = TokenStore()
        self.images = ImageCatalog(config.lab_id, identity.project_id)
        self.store = ServerStore(self.layout.servers_json)
        self.faults = FaultState()
        self.consoles = ConsoleTokens()
        self.machine = Machine(
            runtime, self.store, self.transition_delay, announce_delay=self.announce_delay
        )
        self.initial_instances = initial_instances
        self.initial_tags = tuple(initial_tags)  # the tags of the first instances (lab up --tag)
        self.variant: Variant = variant
        self.ready = False
        self.host = f"lab-{config.lab_id}"
        self._allocating = threading.Lock()
        self._background: set[asyncio.Task[None]] = set()
        # The adminPass each instance's last rescue request carried, for tests that check
        # where it went (``GET /lab/v1/instances/{ref}/admin-pass``); in memory only.
        self.admin_passes: dict[str, str | None] = {}
        # The OVH API's account, netboot modes, tasks and service e-mails (``/ovh/1.0``).
        self.ovh = OvhState(ovh_account or OvhAccount.generate())

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``: where the catalog points."""
        return f"http://127.0.0.1:{self.config.api_port}"

    def transition_delay(self) -> float:
        override = self.faults.transition_delay
        return self.config.transition_delay if override is None else override

    def announce_delay(self) -> float:
        """Seconds from RESCUE to the rescue's host-key block (``lab up --announce-delay``,
        or the ``announce_delay`` fault)."""
        override = self.faults.announce_delay
        return self.config.announce_delay if override is None else override

    async def start(self) -> None:
        """Reload ``servers.json``, or provision the first instances when there is none."""
        if self.store.exists():
            self.store.load()
            self._recover()
            self.ready = True
            log.info("reloaded %d server records", len(self.store.all()))
            return
        self.store.save()
        records = [
            self.new_record(tags=self.initial_tags) for _ in range(self.initial_instances)
        ]
        log.info("provisioning %d instances", len(records))
        futures = [asyncio.wrap_future(self.machine.provision(r)) for r in records]
        task = asyncio.create_task(self._until_provisioned(futures))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _until_provisioned(self, futures: list[asyncio.Future[BootOutcome]]) -> None:
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = sum(isinstance(result, BaseException) for result in results)
        if failed:
            log.error("%d of %d instances failed to boot", failed, len(results))
        self.ready = True
        log.info("lab ready")

    async def stop(self) -> None:
        await asyncio.to_thread(self.machine.stop)

    def _recover(self) -> None:
        """Records left mid-operation by a crashed daemon go to ERROR, as nova does."""
        for record in self.store.all():
            if record.task_state is None and record.vm_state != st.BUILDING:
                continue
            with self.store.edit(record.id) as stale:
                stale.set_fault(f"interrupted: the lab daemon stopped while {stale.task_state}")
                stale.vm_state = st.ERROR
                stale.task_state = None

    def _bastion_runtime(self) -> BastionRuntime:
        runtime = self.machine.runtime
        if not isinstance(runtime, BastionRuntime):
            raise AdminError(501, "this lab's runtime has no bastion")
        return runtime

    def bastion(self) -> BastionInfo | None:
        """The lab's bastion, when it was made."""
        return self._bastion_runtime().bastion()

    def make_bastion(self) -> BastionInfo:
        """The lab's bastion and private network (made the first time; blocking)."""
        return self._bastion_runtime().make_bastion()

    def new_record(
        self,
        name: str | None = None,
        variant: Variant | None = None,
        family: Family = "debian",
        volume_backed: bool = False,
        network_name: Network = "public",
        *,
        tags: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ServerRecord:
        """Allocate index, address, MAC and id for a new instance and record it (BUILD), with
        the ``tags`` and ``metadata`` nova's create request can carry (once each tag).

        A ``private`` instance gets its address on the private network behind the bastion.
        """
        network = ipaddress.ip_network(self.config.subnet, strict=False)
        if network_name == "private":
            bastion = self.bastion()
            if bastion is None:
                raise AdminError(409, "this lab has no private network yet: make its bastion first")
            network = ipaddress.ip_network(bastion.private_subnet, strict=False)
        with self._allocating:
            existing = self.store.all()
            used = {r.spec.index for r in existing}
            index = next(i for i in range(1, len(used) + 2) if i not in used)
            if FIRST_HOST - 1 + index >= network.num_addresses - 1:
                raise AdminError(409, f"the lab subnet {network} has no free address")
            spec = InstanceSpec(
                id=str(uuid.uuid4()),
                name=name or f"lab-{index}",
                index=index,
                address=str(network.network_address + FIRST_HOST - 1 + index),
                mac=_mac(),
                variant=variant or self.variant,
                family=family,
                volume_id=str(uuid.uuid4()) if volume_backed else None,
                network=network_name,
            )
            record = ServerRecord(
                spec=spec,
                image_id=self.images.guests[family].id,
                flavor_id=FLAVOR_ID,
                metadata=dict(metadata or {}),
                tags=list(dict.fromkeys(tags)),
            )
            self.store.add(record)
        return record


def lab_of(request: Request) -> LabService:
    """The service of the app serving ``request``."""
    service: LabService = request.app.state.lab
    return service
