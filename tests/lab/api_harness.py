"""A running lab for the API tests: the real daemon and runtime, reached over real HTTP.

``shared_lab`` runs ``cloudrescue lab up --instances 2 --transition-delay 0.5
--announce-delay 1`` once per test session and ``cloudrescue lab down`` after the last module
that uses the lab. Its state dir is a pytest temporary directory, or ``$CLOUDRESCUE_TEST_LAB_DIR``
when set (to keep one run's lab apart from another's under a known path).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests

from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.model import LabConfig

CLOUD = "lab"
INSTANCES = 2
TRANSITION_DELAY = 0.5
ANNOUNCE_DELAY = 1.0  # RESCUE -> the rescue's host-key block on its console
READY_TIMEOUT = 120.0
LAB_COMMAND_TIMEOUT = 900
SAMPLES = Path(__file__).resolve().parent / "samples"  # upstream api-ref samples
STATE_DIR_ENV = "CLOUDRESCUE_TEST_LAB_DIR"  # the shared lab's state dir, when set


BEGIN_FINGERPRINTS = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
RESCUE_BANNER = "(rescue system)"  # the rescue's login banner, printed once its sshd starts
RESCUE_ANNOUNCED = "finished (rescue)"  # cloud-init's last line, after the rescue's block


def key_blocks(console: str) -> list[list[str]]:
    """The public key lines of every ``SSH HOST KEY KEYS`` block of a console log, in order."""
    return [
        [line for line in block.split("-----END")[0].splitlines() if line.strip()]
        for block in console.split(BEGIN_KEYS)[1:]
    ]


def console_host_keys(console: str) -> list[str]:
    """The public host keys of the last ``SSH HOST KEY KEYS`` block of a console log."""
    blocks = key_blocks(console)
    if not blocks:
        raise AssertionError("no host keys on the console")
    return blocks[-1]


def rescue_ssh(address: str, password: str, host_keys: list[str], command: str) -> str:
    """Run ``command`` as root on a rescue system, trusting only ``host_keys`` (from its console).

    Raises ``paramiko.BadHostKeyException`` when the system shows another key.
    """
    client = paramiko.SSHClient()
    for line in host_keys:
        kind, blob = line.split()[:2]
        key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        client.get_host_keys().add(address, kind, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address,
            username="root",
            password=password,
            look_for_keys=False,
            allow_agent=False,
            timeout=15,
            auth_timeout=15,
        )
        _, stdout, _ = client.exec_command(command, timeout=15)
        return str(stdout.read().decode())
    finally:
        client.close()


@dataclass
class ApiLab:
    """A lab whose API answers on ``endpoint``; helpers for raw HTTP calls and waiting."""

    layout: StateLayout
    config: LabConfig
    admin_token: str
    credentials: dict[str, str]
    daemon: subprocess.Popen[bytes] | None = None
    _token: str | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def clouds_yaml(self) -> Path:
        return self.layout.clouds_yaml

    def env(self) -> dict[str, str]:
        """Environment for clients: ``OS_CLIENT_CONFIG_FILE`` and ``OS_CLOUD``."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        return {**keep, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": CLOUD}

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"X-Lab-Token": self.admin_token, **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.endpoint}/lab/v1{path}", headers=headers, timeout=600, **kwargs
        )

    def password_auth(self, password: str | None = None, scoped: bool = True) -> requests.Response:
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": self.credentials["username"],
                        "domain": {"name": "Default"},
                        "password": password or self.credentials["password"],
                    }
                },
            }
        }
        if scoped:
            auth["scope"] = {
                "project": {"name": self.credentials["project_name"], "domain": {"id": "default"}}
            }
        return requests.post(
            f"{self.endpoint}/identity/v3/auth/tokens", json={"auth": auth}, timeout=30
        )

    def token(self) -> str:
        if self._token is None:
            answer = self.password_auth()
            answer.raise_for_status()
            self._token = answer.headers["X-Subject-Token"]
        return self._token

    def compute(
        self,
        method: str,
        path: str,
        *,
        version: str | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """A nova call (``path`` below ``/compute/v2.1``) with this lab's token."""
        headers: dict[str, str] = {"X-Auth-Token": token or self.token()}
        if version:
            headers["OpenStack-API-Version"] = f"compute {version}"
        headers.update(kwargs.pop("headers", {}))
        return requests.request(
            method, f"{self.endpoint}/compute/v2.1{path}", headers=headers, timeout=60, **kwargs
        )

    def server(self, ref: str, version: str = "2.100") -> dict[str, Any]:
        """A server body by id or name."""
        answer = self.compute("GET", f"/servers/{ref}", version=version)
        if answer.status_code == 404:
            listed = self.compute("GET", "/servers", params={"name": f"^{ref}$"}).json()
            answer = self.compute("GET", f"/servers/{listed['servers'][0]['id']}", version=version)
        answer.raise_for_status()
        server: dict[str, Any] = answer.json()["server"]
        return server

    def wait_for(self, ref: str, status: str, timeout: float = 300) -> dict[str, Any]:
        """Poll until the server has ``status`` and no task state."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(ref)
            if server["status"] == status and server["OS-EXT-STS:task_state"] is None:
                return server
            if server["status"] == "ERROR" or time.monotonic() > deadline:
                raise AssertionError(f"{ref} is {server['status']}, not {status}: {server}")
            time.sleep(0.2)

    def console(self, sid: str) -> str:
        """The whole console log of server ``sid`` (nova's ``os-getConsoleOutput``)."""
        answer = self.compute(
            "POST", f"/servers/{sid}/action", json={"os-getConsoleOutput": {"length": None}}
        )
        answer.raise_for_status()
        output: str = answer.json()["output"]
        return output

    def rescue_host_keys(self, sid: str, timeout: float = 60) -> list[str]:
        """The host keys the current rescue of ``sid`` announced, once it has (the block comes
        ``announce_delay`` seconds after RESCUE)."""
        deadline = time.monotonic() + timeout
        while True:
            console = self.console(sid)
            rescue = console.rsplit(RESCUE_BANNER, 1)[1] if RESCUE_BANNER in console else ""
            if RESCUE_ANNOUNCED in rescue:
                return console_host_keys(rescue)
            if time.monotonic() > deadline:
                raise AssertionError(f"the rescue of {sid} announced no host keys in time")
            time.sleep(0.2)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon is not None and self.daemon.poll() is not None:
                log = self.layout.daemon_log.read_text()[-4000:]
                raise AssertionError(f"the lab daemon exited:\n{log}")
            try:
                if self.admin("GET", "/health").json().get("ready"):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError("the lab did not become ready in time")

    def start_daemon(self) -> None:
        """Start ``python -m cloudrescue.lab.daemon`` on the state dir (output to daemon.log)."""
        with self.layout.daemon_log.open("ab") as log:
            self.daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cloudrescue.lab.daemon",
                    "--state-dir",
                    str(self.layout.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def stop_daemon(self) -> None:
        """SIGTERM the daemon (``lab up``'s, or ours after a restart) and wait until it is gone."""
        if self.daemon is not None:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(timeout=60)
        elif self.config.daemon_pid is not None:
            os.kill(self.config.daemon_pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while Path(f"/proc/{self.config.daemon_pid}").exists():
                if time.monotonic() > deadline:
                    raise AssertionError("the lab daemon did not stop")
                time.sleep(0.1)
        self.daemon = None
        self.config.daemon_pid = None
        self._token = None


def _lab_command(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloudrescue", "lab", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=LAB_COMMAND_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"cloudrescue lab {args[0]} failed:\n{result.stderr[-4000:]}")


def _env(root: Path) -> dict[str, str]:
    """``lab up`` merges its clouds.yaml entry into ``$OS_CLIENT_CONFIG_FILE``: a scratch file."""
    return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(root.parent / "user-clouds.yaml")}


def _up(root: Path) -> ApiLab:
    _lab_command(
        "up",
        "--state-dir",
        str(root),
        "--instances",
        str(INSTANCES),
        "--transition-delay",
        str(TRANSITION_DELAY),
        "--announce-delay",
        str(ANNOUNCE_DELAY),
        env=_env(root),
    )
    layout = StateLayout(root)
    config = LabConfig.from_json(json.loads(layout.lab_json.read_text()))
    credentials = json.loads(layout.credentials.read_text())
    return ApiLab(layout, config, layout.admin_token.read_text().strip(), credentials)


def _down(lab: ApiLab) -> None:
    _lab_command("down", "--state-dir", str(lab.layout.root), env=_env(lab.layout.root))
    if lab.daemon is not None:
        lab.daemon.wait(timeout=60)


_shared: ApiLab | None = None
_users = 0


def shared_lab(factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    """Body of a session fixture: one lab for every module that asks, down after the last."""
    global _shared, _users
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if _shared is None:
        given = os.environ.get(STATE_DIR_ENV)
        _shared = _up(Path(given) if given else factory.mktemp("lab") / "state")
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            lab, _shared = _shared, None
            _down(lab)
