"""``lab up`` / ``down`` / ``status`` / ``add`` / ``break``: the logic behind ``cloudrescue lab``.

``up`` builds (or reuses) the cached images, allocates the lab's identity and addresses,
writes the state dir, makes the bridge, spawns the daemon detached and waits for it to be
ready, then writes the ``lab`` clouds.yaml entry. ``down`` stops the daemon and replays the
ledger, so it also cleans up after a crash or ``kill -9`` of the daemon or of ``up`` itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cloudrescue.errors import ConflictError, LabError, NotFoundError
from cloudrescue.lab import cloudsyaml, netns, ovhconf, processes
from cloudrescue.lab.admin_client import AdminClient, DaemonUnreachableError
from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.ledger import Ledger
from cloudrescue.lab.model import DEFAULT_ANNOUNCE_DELAY, Family, LabConfig, Variant
from cloudrescue.lab.rootfs import cache_lock, rescue_image
from cloudrescue.lab.system import require_root, run
from cloudrescue.lab.templates import template

DAEMON_MODULE = "cloudrescue.lab.daemon"
DAEMON_STOP_SECONDS = 15.0
READY_BASE_SECONDS = 180.0
READY_PER_INSTANCE_SECONDS = 10.0


class UpProgress(Protocol):
    """What ``up`` reports while it works (the CLI renders it)."""

    def step(self, message: str) -> None:
        """A new stage, or a detail of the current one."""

    def booted(self, done: int, total: int) -> None:
        """Instances booted so far."""


@dataclass(frozen=True)
class UpResult:
    """What ``up`` made."""

    config: LabConfig
    instances: list[dict[str, Any]]
    clouds_yaml: Path
    ovh_conf: Path  # python-ovh's configuration for the lab's OVH API


@dataclass(frozen=True)
class LabStatus:
    """A lab and its instances, and whether its daemon answered."""

    config: LabConfig
    daemon_pid: int | None
    daemon_answers: bool
    instances: list[dict[str, Any]]


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def load_config(state: StateLayout) -> LabConfig:
    """The lab's ``lab.json`` (``NotFoundError`` when there is no lab in that state dir)."""
    try:
        return LabConfig.from_json(json.loads(state.lab_json.read_text()))
    except FileNotFoundError:
        hint = "start one with `cloudrescue lab up`"
        raise NotFoundError(f"no lab in {state.root} ({hint})") from None


def _daemon_pids(state: StateLayout) -> list[int]:
    """Daemon processes serving this state dir (found by their command line)."""
    wanted = str(state.root.resolve())
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv]
        if DAEMON_MODULE in words and wanted in words:
            found.append(int(entry.name))
    return found


def _client(state: StateLayout, config: LabConfig) -> AdminClient:
    return AdminClient(config.api_port, state.admin_token.read_text().strip())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _state_lock_name(state: StateLayout) -> str:
    return "state-" + hashlib.sha256(str(state.root.resolve()).encode()).hexdigest()[:16]


def _refuse_if_present(state: StateLayout) -> None:
    if state.lab_json.exists() or state.ledger.exists():
        lab = ""
        if state.lab_json.exists():
            lab = f" (lab {json.loads(state.lab_json.read_text()).get('lab_id', '?')})"
        if _daemon_pids(state):
            raise ConflictError(f"a lab is already up in {state.root}{lab}")
        raise ConflictError(
            f"a lab in {state.root}{lab} was left behind (crashed?); "
            "run `cloudrescue lab down` first"
        )


def _build_images(variant: Variant, progress: UpProgress) -> None:
    progress.step("checking the cached images")
    template(variant, "debian", progress.step)
    rescue_image(progress.step)


def _allocate(
    state: StateLayout, ledger: Ledger, transition_delay: float, announce_delay: float
) -> LabConfig:
    """Pick the lab id, a free /24 and a free port; make the bridge (under a machine lock)."""
    with cache_lock("network"):
        subnet = netns.free_subnet()
        lab_id = secrets.token_hex(3)
        gateway = str(subnet.network_address + 1)
        config = LabConfig(
            lab_id=lab_id,
            state_dir=str(state.root.resolve()),
            api_port=_free_port(),
            bridge=netns.bridge_name(lab_id),
            subnet=str(subnet),
            gateway=gateway,
            transition_delay=transition_delay,
            announce_delay=announce_delay,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        state.lab_json.write_text(json.dumps(config.to_json(), indent=1))
        netns.create_bridge(ledger, lab_id, gateway, subnet.prefixlen)
    return config


def _write_secrets(state: StateLayout, config: LabConfig) -> dict[str, str]:
    _write_secret(state.admin_token, secrets.token_urlsafe(32) + "\n")
    credentials = {
        "username": "admin",
        "password": secrets.token_urlsafe(24),
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    _write_secret(state.credentials, json.dumps(credentials, indent=1) + "\n")
    endpoint = ovhconf.endpoint_url(config.api_port)
    ovhconf.write(state.ovh_conf, ovhconf.OvhAccount.generate(), endpoint)
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"cloudrescue-lab-{config.lab_id}",
            "-f",
            str(state.lab_key),
        ]
    )
    return credentials


def _spawn_daemon(
    state: StateLayout,
    ledger: Ledger,
    config: LabConfig,
    instances: int,
    variant: Variant,
    tags: Sequence[str],
) -> subprocess.Popen[bytes]:
    ledger.record("process", "daemon", pid=None)
    argv = [
        sys.executable,
        "-m",
        DAEMON_MODULE,
        "--state-dir",
        config.state_dir,
        "--instances",
        str(instances),
        "--variant",
        variant,
        *(f"--tag={tag}" for tag in tags),
    ]
    with open(state.daemon_log, "ab") as log, open(os.devnull, "rb") as devnull:
        daemon = subprocess.Popen(
            argv,
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
            close_fds=True,
        )
    ledger.record("process", "daemon", pid=daemon.pid, start=processes.start_time(daemon.pid))
    config.daemon_pid = daemon.pid
    state.lab_json.write_text(json.dumps(config.to_json(), indent=1))
    return daemon


def _log_tail(state: StateLayout, lines: int = 3) -> str:
    try:
        text = state.daemon_log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no daemon.log"
    return " | ".join(line.strip() for line in text[-lines:])


def _wait_ready(
    state: StateLayout,
    config: LabConfig,
    daemon: subprocess.Popen[bytes],
    instances: int,
    progress: UpProgress,
) -> list[dict[str, Any]]:
    client = _client(state, config)
    deadline = time.monotonic() + READY_BASE_SECONDS + READY_PER_INSTANCE_SECONDS * instances
    progress.step(f"booting {instances} instance(s)")
    while True:
        if daemon.poll() is not None:
            raise LabError(f"the lab daemon exited ({daemon.returncode}): {_log_tail(state)}")
        try:
            health = client.health()
            views = client.instances()
        except DaemonUnreachableError:
            health, views = {"ready": False}, []
        done = sum(view.get("status") in ("ACTIVE", "ERROR", "SHUTOFF") for view in views)
        progress.booted(done, instances)
        if health.get("ready"):
            return views
        if time.monotonic() > deadline:
            raise LabError(f"the lab was not ready in time: {_log_tail(state)}")
        time.sleep(0.3)


def up(
    state_dir: Path,
    *,
    instances: int,
    variant: Variant,
    transition_delay: float,
    progress: UpProgress,
    announce_delay: float = DEFAULT_ANNOUNCE_DELAY,
    tags: Sequence[str] = (),
) -> UpResult:
    """Start a lab in ``state_dir`` (see the module docstring); ``tags`` are the instances'."""
    require_root("`cloudrescue lab up`")
    state = StateLayout(state_dir)
    with cache_lock(_state_lock_name(state)):
        _refuse_if_present(state)
        state.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        ledger = Ledger(state.ledger)
        try:
            _build_images(variant, progress)
            progress.step("allocating the lab network")
            config = _allocate(state, ledger, transition_delay, announce_delay)
            credentials = _write_secrets(state, config)
            progress.step(f"starting the lab daemon on 127.0.0.1:{config.api_port}")
            daemon = _spawn_daemon(state, ledger, config, instances, variant, tags)
            views = _wait_ready(state, config, daemon, instances, progress)
            cloud = cloudsyaml.entry(config, credentials)
            cloudsyaml.write_state_file(state.clouds_yaml, config.cloud_name, cloud)
            path, uid, gid = cloudsyaml.user_file()
            config.extra["clouds_yaml"] = str(path)
            state.lab_json.write_text(json.dumps(config.to_json(), indent=1))
            cloudsyaml.merge(path, config.cloud_name, cloud, (uid, gid))
        except BaseException:
            _down_locked(state)
            raise
    return UpResult(config, views, path, state.ovh_conf)


def _stop_daemon(state: StateLayout) -> None:
    """SIGTERM the daemon (it finishes running jobs), SIGKILL it if it lingers."""
    pids = set(_daemon_pids(state))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DAEMON_STOP_SECONDS
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if processes.alive(pid)}
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while pids and time.monotonic() < deadline + DAEMON_STOP_SECONDS:
        pids = {pid for pid in pids if processes.alive(pid)}
        time.sleep(0.05)


def _down_locked(state: StateLayout) -> None:
    from cloudrescue.lab.runtime import LabRuntime

    config: LabConfig | None
    try:
        config = load_config(state)
    except (NotFoundError, json.JSONDecodeError, TypeError):
        config = None
    _stop_daemon(state)
    placeholder = LabConfig("", str(state.root), 0, "", "", "")
    LabRuntime(config or placeholder).teardown()
    if config is not None and config.extra.get("clouds_yaml"):
        cloudsyaml.remove(
            Path(config.extra["clouds_yaml"]), config.cloud_name, cloudsyaml.auth_url(config)
        )
    shutil.rmtree(state.root)


def down(state_dir: Path) -> None:
    """Stop the lab in ``state_dir`` and remove everything it made (crashed or not)."""
    require_root("`cloudrescue lab down`")
    state = StateLayout(state_dir)
    with cache_lock(_state_lock_name(state)):
        if not state.root.is_dir() or not (state.lab_json.exists() or state.ledger.exists()):
            raise ConflictError(f"no lab is up in {state_dir} (already down?)")
        _down_locked(state)


def status(state_dir: Path) -> LabStatus:
    """The lab and its instances: from the daemon when it answers, else from the state dir."""
    require_root("`cloudrescue lab status`")
    state = StateLayout(state_dir)
    config = load_config(state)
    pids = _daemon_pids(state)
    try:
        views = _client(state, config).instances()
        return LabStatus(config, pids[0] if pids else None, True, views)
    except (DaemonUnreachableError, FileNotFoundError):
        pass
    views = []
    for spec_file in sorted(state.instances.glob("*/spec.json")):
        spec = json.loads(spec_file.read_text())
        family: Family = spec.get("family", "debian")
        user = "debian" if family == "debian" else "cloud-user"
        views.append({**spec, "status": "unknown", "user": user})
    views.sort(key=lambda view: view.get("index", 0))
    return LabStatus(config, pids[0] if pids else None, False, views)


def admin(state_dir: Path) -> AdminClient:
    """A client of the running lab's admin API."""
    require_root("the lab's admin API")
    state = StateLayout(state_dir)
    return _client(state, load_config(state))


def find_instance(state_dir: Path, ref: str) -> dict[str, Any]:
    """The view of instance ``ref`` (name or id)."""
    for view in status(state_dir).instances:
        if ref in (view.get("id"), view.get("name")):
            return view
    raise NotFoundError(f"no instance named or with id {ref!r} in the lab")


def ssh_argv(state_dir: Path, ref: str, command: list[str]) -> list[str]:
    """``ssh`` to the default user of instance ``ref`` with ``lab_key`` (a demo convenience);
    through the bastion for an instance on the private network."""
    view = find_instance(state_dir, ref)
    state = StateLayout(state_dir)
    loose = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    loose += ["-o", "LogLevel=ERROR"]
    jump: list[str] = []
    if view.get("network") == "private":
        try:
            bastion = json.loads(state.bastion.info.read_text())
        except FileNotFoundError:
            raise NotFoundError(
                f"{ref} is on the private network and the lab has no bastion"
            ) from None
        proxy = ["ssh", "-i", bastion["key"], *loose, "-W", "%h:%p"]
        jump = [
            "-o",
            "ProxyCommand=" + " ".join([*proxy, f"{bastion['user']}@{bastion['address']}"]),
        ]
    return [
        "ssh",
        "-i",
        str(state.lab_key),
        *loose,
        *jump,
        f"{view['user']}@{view['address']}",
        *command,
    ]
