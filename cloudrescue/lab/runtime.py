"""``LabRuntime``: makes the lab's instances real (disks, namespaces, sshd) and rescues them.

The contract is in docs/lab-design.md. Methods block; the daemon calls them from worker
threads, never two at once for the same instance. Everything made is in the ledger first,
so ``teardown`` (also from a fresh process, after a crash) removes it all.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from cloudrescue.errors import ConflictError, InvalidInputError, LabError, NotFoundError
from cloudrescue.lab import instance_disks, loopdev, netns, processes, scenarios
from cloudrescue.lab.bastion_init import BastionPlan
from cloudrescue.lab.bootplan import BootPlan, DiskLayout, PlanKind
from cloudrescue.lab.consolelog import CLOUD_INIT, Console, HostKeys
from cloudrescue.lab.disk_files import REFUSED, GuestFile
from cloudrescue.lab.init_common import forged_keys
from cloudrescue.lab.instance_disks import AttachedDisks
from cloudrescue.lab.layout import InstancePaths, StateLayout
from cloudrescue.lab.ledger import Entry, Ledger, UndoHandler
from cloudrescue.lab.loopdev import LoopDevice, attach, undo_loop, undo_node
from cloudrescue.lab.model import (
    BastionInfo,
    BootOutcome,
    InstanceSpec,
    LabConfig,
    RescueRequest,
    ShutdownHostKeys,
)
from cloudrescue.lab.rootfs import cache_lock, rescue_image
from cloudrescue.lab.system import private_mount_module, run
from cloudrescue.lab.templates import template

log = logging.getLogger(__name__)

Mode = Literal["stopped", "guest", "rescue"]
SERIAL_LENGTH = 20  # virtio-blk serials are cut at 20 characters
BASTION_HOST = 2  # the bastion is .2 on the lab's bridge and on the private network
BASTION_USER = "root"
BASTION_PROCESS = "bastion:init"

UNDO: dict[str, UndoHandler] = {
    "process": processes.undo_process,
    "netns": netns.undo_netns,
    "link": netns.undo_link,
    "nftable": netns.undo_nftable,
    "route": netns.undo_route,
    "loop": undo_loop,
    "node": undo_node,
}


@dataclass
class _Instance:
    spec: InstanceSpec
    paths: InstancePaths
    layout: DiskLayout
    disks: AttachedDisks
    netns: str
    lvs: dict[str, str] = field(default_factory=dict)
    init: processes.InitProcess | None = None
    mode: Mode = "stopped"
    pending_host_keys: HostKeys | None = None  # the rescue's block, not printed yet
    pending_silent: bool = False  # the rescue's modules:final is due, with no host-key block


class LabRuntime:
    """The real instances of one lab (see docs/lab-design.md for the interface)."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.state = StateLayout(Path(config.state_dir))
        self.ledger = Ledger(self.state.ledger)
        self._instances: dict[str, _Instance] = {}
        self._lock = threading.Lock()
        self._rescue_lock = threading.Lock()
        self._console_lock = threading.Lock()
        self._rescue_disk: LoopDevice | None = None
        self._bastion_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, spec: InstanceSpec) -> _Instance:
        with self._lock:
            instance = self._instances.get(spec.id) or self._adopt(spec)
        if instance is None:
            raise NotFoundError(f"instance {spec.name} ({spec.id}) is not provisioned")
        return instance

    def _adopt(self, spec: InstanceSpec) -> _Instance | None:
        """An instance an earlier runtime (a daemon since restarted) made, from the ledger."""
        paths = self.state.instance(spec.id)
        try:
            layout = DiskLayout.from_json(json.loads(paths.layout.read_text()))
        except FileNotFoundError:
            return None
        live = {(entry.kind, entry.key): entry for entry in self.ledger.live()}
        disk = loopdev.adopt(live.get(("loop", f"{spec.id}:disk")))
        drive = loopdev.adopt(live.get(("loop", f"{spec.id}:config-drive")))
        if disk is None or drive is None:
            return None
        if self._rescue_disk is None:
            self._rescue_disk = loopdev.adopt(live.get(("loop", "rescue-image")))
        instance = _Instance(
            spec,
            paths,
            layout,
            AttachedDisks(disk, drive),
            netns.netns_name(self.config.lab_id, spec.index),
        )
        for lv in layout.lvs:
            mapped = loopdev.adopt(live.get(("loop", f"{spec.id}:lv:{lv}")))
            if mapped is not None:
                instance.lvs[lv] = mapped.name
        instance.init = processes.adopt(live.get(("process", f"{spec.id}:init")))
        if instance.init is not None:
            instance.mode = BootPlan.load(paths.plan).kind
        self._instances[spec.id] = instance
        log.info("adopted %s (%s) from the ledger", spec.name, instance.mode)
        return instance

    def _public_keys(self) -> list[str]:
        try:
            return [self.state.lab_key_pub.read_text().strip()]
        except FileNotFoundError:
            return []

    def _prefix(self, spec: InstanceSpec | None = None) -> int:
        if spec is not None and spec.network == "private":
            return self._private_network().prefixlen
        return int(self.config.subnet.rsplit("/", 1)[1])

    def _private_network(self) -> ipaddress.IPv4Network:
        bastion = self.bastion()
        if bastion is None:
            raise ConflictError(
                "this lab has no private network yet: make its bastion first "
                "(`POST /lab/v1/bastion`, `cloudrescue lab bastion`)"
            )
        return ipaddress.IPv4Network(bastion.private_subnet)

    def _plan(
        self, instance: _Instance, kind: PlanKind, request: RescueRequest | None = None
    ) -> BootPlan:
        spec = instance.spec
        partitions = {n: os.path.basename(p) for n, p in instance.disks.disk.partitions.items()}
        return BootPlan(
            kind=kind,
            instance_id=spec.id,
            hostname=spec.name,
            address=f"{spec.address}/{self._prefix(spec)}",
            mac=spec.mac,
            console=str(instance.paths.console),
            mnt=str(instance.paths.mnt),
            disk=instance.disks.disk.name,
            partitions=partitions,
            config_drive=instance.disks.config_drive.name,
            layout=instance.layout,
            default_user=spec.default_user,
            public_keys=self._public_keys(),
            lv_devices=dict(instance.lvs),
            serial=spec.volume_id[:SERIAL_LENGTH] if spec.volume_id else None,
            rescue_disk=self._rescue_disk.name if kind == "rescue" and self._rescue_disk else None,
            forge_host_keys=bool(request and request.forge_host_key_fingerprints),
            defer_host_keys=bool(request and (request.defer_host_keys or request.silent_host_keys)),
            stable_device=bool(request and request.stable_device),
            gateway=self.config.gateway if spec.network == "public" else None,
            ssh_cut=bool(kind == "rescue" and request and request.ssh_cut),
        )

    def _write_plan(self, instance: _Instance, plan: BootPlan) -> Path:
        instance.paths.mnt.mkdir(exist_ok=True)
        plan.save(instance.paths.plan)
        return instance.paths.plan

    def _map_lvs(self, instance: _Instance) -> None:
        if instance.layout.lvs and not instance.lvs:
            instance.lvs = instance_disks.map_lvs(
                self.ledger, instance.spec, instance.paths, instance.layout
            )

    def _stop(self, instance: _Instance) -> None:
        with self._console_lock:
            instance.pending_host_keys = None  # a system that is off prints nothing more
            instance.pending_silent = False
        if instance.init is not None:
            instance.init.stop()
            self.ledger.forget("process", f"{instance.spec.id}:init")
            instance.init = None
        instance_disks.release_strays(instance.disks)
        instance_disks.wait_unused([*instance.disks.names(), *instance.lvs.values()])
        instance_disks.unmap_lvs(self.ledger, instance.spec, instance.lvs)
        instance.lvs = {}
        instance.mode = "stopped"

    def _start(self, instance: _Instance, plan: BootPlan, secret: bytes | None = None) -> str:
        module = f"cloudrescue.lab.{plan.kind}_init"
        path = self._write_plan(instance, plan)
        instance.init = processes.spawn_init(
            self.ledger,
            f"{instance.spec.id}:init",
            instance.netns,
            module,
            path,
            instance.paths.init_log,
            secret=secret,
        )
        instance.mode = plan.kind
        return instance.init.outcome

    def _ensure_rescue_disk(self) -> LoopDevice:
        with self._rescue_lock:
            if self._rescue_disk is None:
                image = rescue_image(lambda message: log.info("%s", message))
                self._rescue_disk = attach(self.ledger, "rescue-image", image, read_only=True)
            return self._rescue_disk

    def _undo_instance(self, spec: InstanceSpec) -> None:
        names = {
            netns.netns_name(self.config.lab_id, spec.index),
            netns.veth_name(self.config.lab_id, spec.index),
        }
        self.ledger.undo_all(
            UNDO, only=lambda entry: entry.key.startswith(spec.id) or entry.key in names
        )

    # -- the interface ---------------------------------------------------------------------

    def provision(self, spec: InstanceSpec) -> None:
        """Make the instance's disk (template copy), config drive, loop devices and netns."""
        with self._lock:
            if spec.id in self._instances:
                raise ConflictError(f"instance {spec.name} is already provisioned")
        paths = self.state.instance(spec.id)
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.spec.write_text(json.dumps(spec.to_json(), indent=1))
        try:
            disk_template = template(spec.variant, spec.family, lambda m: log.info("%s", m))
            paths.layout.write_text(json.dumps(disk_template.layout.to_json(), indent=1))
            instance_disks.copy_template(str(disk_template.image), paths)
            instance_disks.make_config_drive(spec, paths, self._public_keys())
            private = spec.network == "private"
            if private:
                self._private_network()  # ConflictError without one
            attached = instance_disks.attach_disks(self.ledger, spec, paths)
            instance_disks.unique_xfs_uuid(attached, disk_template.layout)
            name = netns.create_netns(
                self.ledger, self.config.lab_id, spec.index, spec.mac, private=private
            )
        except BaseException:
            self._undo_instance(spec)
            shutil.rmtree(paths.root, ignore_errors=True)
            raise
        with self._lock:
            self._instances[spec.id] = _Instance(spec, paths, disk_template.layout, attached, name)

    def boot(self, spec: InstanceSpec) -> BootOutcome:
        """Boot the instance from its disk (the boot model); "running" or "emergency"."""
        instance = self._get(spec)
        if instance.mode != "stopped":
            raise ConflictError(f"instance {spec.name} is already running ({instance.mode})")
        self._map_lvs(instance)
        outcome = self._start(instance, self._plan(instance, "guest"))
        return "emergency" if outcome == "emergency" else "running"

    def shutdown(self, spec: InstanceSpec) -> None:
        """Stop every process of the instance (or of its rescue system)."""
        self._stop(self._get(spec))

    def rescue(self, spec: InstanceSpec, request: RescueRequest) -> None:
        """Stop the instance and start a rescue system at its address.

        With ``request.defer_host_keys`` the rescue's host-key block is not on the console
        yet when this returns: ``announce_host_keys`` prints it.
        """
        instance = self._get(spec)
        if instance.mode == "rescue":
            raise ConflictError(f"instance {spec.name} is already in rescue")
        self._ensure_rescue_disk()
        if request.guest_host_keys_at_shutdown and instance.mode == "guest":
            self._print_guest_host_keys(instance, request.guest_host_keys_at_shutdown)
        self._stop(instance)
        plan = self._plan(instance, "rescue", request)
        self._start(instance, plan, secret=request.admin_password.encode())
        if instance.init is not None and not instance.init.sshd:
            self._stop(instance)
            raise LabError(f"the rescue system of {spec.name} started without sshd")
        if instance.init is not None and request.silent_host_keys:
            with self._console_lock:  # its modules:final comes, with no block
                instance.pending_silent = request.defer_host_keys
        elif instance.init is not None and request.defer_host_keys:
            with self._console_lock:
                instance.pending_host_keys = instance.init.host_keys

    def announce_host_keys(self, spec: InstanceSpec) -> bool:
        """Print the rescue's deferred host-key block (cloud-init's ``modules:final``, which
        on a real cloud runs a while after nova reports RESCUE); False when there is none
        (already printed, or the rescue system is gone)."""
        try:
            instance = self._get(spec)
        except NotFoundError:
            return False
        with self._console_lock:
            keys, instance.pending_host_keys = instance.pending_host_keys, None
            silent, instance.pending_silent = instance.pending_silent, False
            if (keys is None and not silent) or instance.mode != "rescue":
                return False
            console = Console(instance.paths.console)
            try:
                console.cloud_init(f"{CLOUD_INIT} running 'modules:final' (rescue)")
                if keys is not None:
                    console.announce(keys)
                console.cloud_init(f"{CLOUD_INIT} finished (rescue)")
            finally:
                console.close()
        return keys is not None

    def _print_guest_host_keys(self, instance: _Instance, kind: ShutdownHostKeys) -> None:
        """What a hostile guest can do while it is shut down for a rescue: print a host-key
        block of keys nobody uses (``fingerprints``: cloud-init's two blocks; ``keys``: a bare
        keys block) on its console, where the rescue's own block will follow."""
        scratch = instance.paths.root / "shutdown-keys"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            keys = HostKeys.of(forged_keys(instance.spec.name, scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        with self._console_lock:
            console = Console(instance.paths.console)
            try:
                console.line("[  OK  ] Stopped target graphical.target - Graphical Interface.")
                console.announce(keys, fingerprints=kind == "fingerprints")
                console.line("[  OK  ] Reached target shutdown.target - System Shutdown.")
                console.line("reboot: Power down")
            finally:
                console.close()

    def unrescue(self, spec: InstanceSpec) -> BootOutcome:
        """Stop the rescue system and boot the instance from its (maybe repaired) disk."""
        instance = self._get(spec)
        if instance.mode != "rescue":
            raise ConflictError(f"instance {spec.name} is not in rescue")
        self._stop(instance)
        return self.boot(spec)

    def console_output(self, spec: InstanceSpec, length: int | None) -> str:
        """The console log (its last ``length`` lines when given)."""
        try:
            text = self.state.instance(spec.id).console.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if length is None:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(lines[-length:]) if length > 0 else ""

    def break_instance(self, spec: InstanceSpec, scenario: str) -> str:
        """Stop the instance, damage its disk with ``scenario``, boot it; the damage done."""
        scenarios.get(scenario)
        what = f"breaking {spec.name} ({scenario})"
        return self._edit_offline(spec, what, "cloudrescue.lab.damage", [scenario])

    def write_files(self, spec: InstanceSpec, files: list[GuestFile]) -> str:
        """Stop the instance, write ``files`` on its disk (root-anchored), boot it; what was
        written. For a guest configuration no break scenario makes."""
        GuestFile.check_all(files)  # InvalidInputError before the instance is touched
        payload = json.dumps([asdict(wanted) for wanted in files])
        what = f"writing files on {spec.name}"
        return self._edit_offline(spec, what, "cloudrescue.lab.disk_files", [], payload)

    def _edit_offline(
        self,
        spec: InstanceSpec,
        what: str,
        module: str,
        args: list[str],
        stdin: str = "",
    ) -> str:
        """Stop the instance, run ``module <plan> args`` on its disk in a mount namespace of
        its own, boot the instance again; the module's ``detail``."""
        instance = self._get(spec)
        if instance.mode == "rescue":
            raise ConflictError(f"instance {spec.name} is in rescue")
        self._stop(instance)
        self._map_lvs(instance)
        path = self._write_plan(instance, self._plan(instance, "guest"))
        result = subprocess.run(
            private_mount_module(module, str(path), *args),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        self.boot(spec)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            if module == "cloudrescue.lab.disk_files" and result.returncode == REFUSED:
                raise InvalidInputError(f"{what} refused: {lines[-1]}")
            raise LabError(f"{what} failed: {lines[-1]}")
        detail: str = json.loads(result.stdout.strip().splitlines()[-1])["detail"]
        return detail

    def cut_ssh(self, spec: InstanceSpec) -> int:
        """Kill the established SSH sessions of the instance or its rescue system."""
        instance = self._get(spec)
        return processes.cut_sessions(instance.init.pid) if instance.init else 0

    def bastion(self) -> BastionInfo | None:
        """The lab's bastion, if it was made (``make_bastion``)."""
        try:
            return BastionInfo.from_json(json.loads(self.state.bastion.info.read_text()))
        except FileNotFoundError:
            return None

    def make_bastion(self) -> BastionInfo:
        """The lab's bastion and private network, made the first time (see docs/lab-design.md):
        a private network this machine has no route to, and a bastion namespace on it and on
        the lab's bridge whose own sshd (the rescue image's) lets root in with the bastion key
        only. A bastion that fails to start leaves nothing behind."""
        with self._bastion_lock:
            known = self.bastion()
            if known is not None:
                return known
            lab_id = self.config.lab_id
            names = {netns.private_netns_name(lab_id), netns.bastion_netns_name(lab_id)}

            def made_for_it(entry: Entry) -> bool:
                return (
                    entry.kind == "route"
                    or entry.key in names
                    or entry.key == BASTION_PROCESS
                    or (entry.kind == "link" and entry.key.startswith(f"crv{lab_id}b"))
                )

            try:
                return self._start_bastion()
            except BaseException:
                self.ledger.undo_all(UNDO, only=made_for_it)
                raise

    def _start_bastion(self) -> BastionInfo:
        paths = self.state.bastion
        paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths.mnt.mkdir(exist_ok=True)
        lab_id = self.config.lab_id
        public = ipaddress.IPv4Network(self.config.subnet)
        with cache_lock("network"):
            private = netns.free_subnet()
            netns.create_private_network(self.ledger, lab_id, private)
        macs = tuple(
            "fa:16:3e:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3))
            for _ in range(2)
        )
        name = netns.create_bastion_netns(self.ledger, lab_id, (macs[0], macs[1]))
        if not paths.key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                 f"cloudrescue-lab-{lab_id}-bastion", "-f", str(paths.key)])  # fmt: skip
        plan = BastionPlan(
            rescue_disk=self._ensure_rescue_disk().name,
            console=str(paths.console),
            mnt=str(paths.mnt),
            address=f"{public.network_address + BASTION_HOST}/{public.prefixlen}",
            gateway=self.config.gateway,
            private_address=f"{private.network_address + BASTION_HOST}/{private.prefixlen}",
            authorized_key=paths.key.with_name(paths.key.name + ".pub").read_text().strip(),
        )
        plan.save(paths.plan)
        init = processes.spawn_init(
            self.ledger,
            BASTION_PROCESS,
            name,
            "cloudrescue.lab.bastion_init",
            paths.plan,
            paths.init_log,
        )
        keys = init.host_keys
        if not init.sshd or keys is None or not keys.fingerprints:
            init.stop()
            raise LabError(f"the bastion started without sshd (see {paths.init_log})")
        info = BastionInfo(
            address=plan.address.split("/")[0],
            private_address=plan.private_address.split("/")[0],
            private_subnet=str(private),
            user=BASTION_USER,
            key=str(paths.key),
            fingerprints=list(keys.fingerprints),
            host_key_fingerprint=keys.fingerprints[0].split()[1],
        )
        paths.info.write_text(json.dumps(info.to_json(), indent=1))
        log.info("bastion up at %s (private network %s)", info.address, private)
        return info

    def destroy(self, spec: InstanceSpec) -> None:
        """Stop the instance and remove everything of it."""
        with self._lock:
            instance = self._instances.pop(spec.id, None)
        if instance is not None and instance.init is not None:
            instance.init.stop()
        self._undo_instance(spec)
        shutil.rmtree(self.state.instance(spec.id).root, ignore_errors=True)

    def teardown(self) -> None:
        """Undo every ledger entry: processes, namespaces, links, loop devices, nodes."""
        with self._lock:
            instances = list(self._instances.values())
            self._instances.clear()
            self._rescue_disk = None
        for instance in instances:
            if instance.init is not None:
                instance.init.stop()
        self.ledger.undo_all(UNDO, only=_not_this_process)


def _not_this_process(entry: Entry) -> bool:
    return not (entry.kind == "process" and entry.data.get("pid") == os.getpid())
