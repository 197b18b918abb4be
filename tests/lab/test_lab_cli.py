"""``cloudrescue lab up/status/add/break/ssh/down`` through the real CLI and the real daemon."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cloudrescue.errors import ExitStatus

from .conftest import require_root
from .labkit import key_login, leftovers, recorded_loops

pytestmark = pytest.mark.lab

CLI = str(Path(sys.executable).with_name("cloudrescue"))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@dataclass(frozen=True)
class CliLab:
    """A lab started with ``cloudrescue lab up`` in its own state dir and clouds.yaml."""

    state: Path
    clouds_yaml: Path
    up: subprocess.CompletedProcess[str]

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CLOUDRESCUE_"))}
        return {**keep, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}

    def lab(self, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        argv = [*(prefix or []), CLI, "lab", command, "--state-dir", str(self.state), *rest]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=600)

    def config(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.state / "lab.json").read_text())
        return data


def _start(tmp: Path, instances: int, *extra: str) -> CliLab:
    clouds = tmp / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "https://x"}}}}))
    lab = CliLab(tmp / "state", clouds, subprocess.CompletedProcess([], 0))
    up = lab.lab("up", "--instances", str(instances), "--transition-delay", "0", *extra)
    return CliLab(lab.state, clouds, up)


def _down_and_check(lab: CliLab) -> None:
    lab_id = str(lab.config()["lab_id"]) if (lab.state / "lab.json").exists() else None
    loops = recorded_loops(lab.state)
    if lab.state.exists():
        result = lab.lab("down")
        assert result.returncode == 0, result.stderr
    if lab_id:
        assert leftovers(lab.state, lab_id, loops) == []
    assert not lab.state.exists()
    assert set(yaml.safe_load(lab.clouds_yaml.read_text())["clouds"]) == {"other"}


def _one_line_error(
    result: subprocess.CompletedProcess[str], status: ExitStatus, text: str
) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloudrescue: error: ") and text in lines[0]


@pytest.fixture(scope="module")
def cli_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliLab]:
    """A two-instance lab from ``cloudrescue lab up`` (both tagged ``up``), brought down after
    the module."""
    require_root()
    lab = _start(tmp_path_factory.mktemp("cli-lab"), 2, "--tag", "up")
    try:
        assert lab.up.returncode == 0, lab.up.stderr
        yield lab
    finally:
        _down_and_check(lab)


def test_up_writes_the_state_dir_and_clouds_yaml(cli_lab: CliLab) -> None:
    assert cli_lab.up.stdout.splitlines() == [
        "export OS_CLOUD=lab",
        f"export CLOUDRESCUE_OVH_CONFIG={cli_lab.state / 'ovh.conf'}",
    ]
    for name in ("admin-token", "credentials.json", "clouds.yaml", "lab_key", "ovh.conf"):
        assert (cli_lab.state / name).stat().st_mode & 0o777 == 0o600, name
    clouds = yaml.safe_load(cli_lab.clouds_yaml.read_text())["clouds"]
    port = cli_lab.config()["api_port"]
    assert set(clouds) == {"other", "lab"}
    assert clouds["lab"]["auth"]["auth_url"] == f"http://127.0.0.1:{port}/identity/v3"
    password = json.loads((cli_lab.state / "credentials.json").read_text())["password"]
    assert password not in cli_lab.up.stdout + cli_lab.up.stderr


def test_status_lists_the_instances(cli_lab: CliLab) -> None:
    result = cli_lab.lab("status")
    assert result.returncode == 0, result.stderr
    assert "lab-1" in result.stdout and "lab-2" in result.stdout and "ACTIVE" in result.stdout


def test_up_twice_is_refused(cli_lab: CliLab) -> None:
    _one_line_error(cli_lab.lab("up"), ExitStatus.CONFLICT, "already up")


def test_non_root_is_refused(cli_lab: CliLab, tmp_path: Path) -> None:
    other = CliLab(tmp_path / "state", tmp_path / "clouds.yaml", cli_lab.up)
    _one_line_error(other.lab("up", prefix=NOBODY), ExitStatus.PERMISSION, "needs root")
    _one_line_error(cli_lab.lab("down", prefix=NOBODY), ExitStatus.PERMISSION, "needs root")
    assert not other.state.exists()
    help_text = subprocess.run(
        [*NOBODY, CLI, "lab", "up", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "needs root" in help_text


def test_ssh_add_and_break(cli_lab: CliLab) -> None:
    result = cli_lab.lab("ssh", "lab-1", "--", "hostname")
    assert (result.returncode, result.stdout.strip()) == (0, "lab-1")
    added = cli_lab.lab("add", "--name", "extra", "--family", "rhel", "--volume-backed")
    assert added.returncode == 0, added.stderr
    result = cli_lab.lab("ssh", "extra", "--", "id", "-un")
    assert (result.returncode, result.stdout.strip()) == (0, "cloud-user")
    _one_line_error(cli_lab.lab("break", "extra", "nope"), ExitStatus.USAGE, "unknown scenario")
    broken = cli_lab.lab("break", "extra", "lost-key")
    assert broken.returncode == 0, broken.stderr
    assert "nobody has" in broken.stdout
    views = json.loads(cli_lab.lab("status", "-f", "json").stdout)["instances"]
    address = next(view["address"] for view in views if view["name"] == "extra")
    assert key_login(address, "cloud-user", cli_lab.state / "lab_key") == "key refused"


def test_up_and_add_tag_instances(cli_lab: CliLab) -> None:
    views = json.loads(cli_lab.lab("status", "-f", "json").stdout)["instances"]
    assert {view["name"]: view["tags"] for view in views if view["name"].startswith("lab-")} == {
        "lab-1": ["up"],
        "lab-2": ["up"],
    }
    added = cli_lab.lab(
        "add", "--name", "tagged", "--tag", "a", "--tag", "b", "--metadata", "role=db", "-f", "json"
    )
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert (view["tags"], view["metadata"]) == (["a", "b"], {"role": "db"})
    _one_line_error(cli_lab.lab("add", "--metadata", "bad/key=1"), ExitStatus.USAGE, "metadata")


def test_faults_can_be_set_and_cleared(cli_lab: CliLab) -> None:
    result = cli_lab.lab("faults", "--set", '{"transition_delay": 0.25}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transition_delay"] == 0.25
    result = cli_lab.lab("faults", "--clear")
    assert result.returncode == 0 and json.loads(result.stdout).get("transition_delay") is None
    _one_line_error(cli_lab.lab("faults", "--set", "{oops"), ExitStatus.USAGE, "not JSON")


def test_openstack_client_uses_the_lab_entry(cli_lab: CliLab) -> None:
    names = _openstack(cli_lab, "server", "list", "-f", "value", "-c", "Name")
    assert {"lab-1", "lab-2"} <= set(names.split())


def _openstack(lab: CliLab, *args: str) -> str:
    openstack = str(Path(sys.executable).with_name("openstack"))
    result = subprocess.run(
        [openstack, "--os-cloud", "lab", *args],
        capture_output=True,
        text=True,
        env=lab.env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_down_after_the_daemon_was_killed_during_a_rescue(tmp_path: Path) -> None:
    require_root()
    lab = _start(tmp_path, 1)
    try:
        assert lab.up.returncode == 0, lab.up.stderr
        _openstack(lab, "server", "rescue", "lab-1", "--password", secrets.token_urlsafe(12))
        deadline = time.monotonic() + 60
        show = ("server", "show", "lab-1", "-f", "value", "-c", "status")
        while _openstack(lab, *show).strip() != "RESCUE":
            assert time.monotonic() < deadline, "the instance never reached RESCUE"
            time.sleep(0.2)
        os.kill(int(str(lab.config()["daemon_pid"])), signal.SIGKILL)
        status = lab.lab("status")
        assert status.returncode == 0 and "daemon not running" in status.stdout
    finally:
        _down_and_check(lab)
    _one_line_error(lab.lab("down"), ExitStatus.CONFLICT, "no lab is up")


def test_down_after_up_was_killed_halfway(tmp_path: Path) -> None:
    require_root()
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {}}}))
    lab = CliLab(tmp_path / "state", clouds, subprocess.CompletedProcess([], 0))
    up = subprocess.Popen(
        [CLI, "lab", "up", "--instances", "3", "--state-dir", str(lab.state)],
        env=lab.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            instances = list((lab.state / "instances").glob("*/console.log"))
            if instances:
                break
            time.sleep(0.05)
        assert instances, "lab up never got to booting instances"
    finally:
        up.kill()
        up.wait()
    lab_id = str(lab.config()["lab_id"])
    loops = recorded_loops(lab.state)
    result = lab.lab("down")
    assert result.returncode == 0, result.stderr
    assert leftovers(lab.state, lab_id, loops) == []
    assert not lab.state.exists()


def test_fifty_instances_boot_and_answer(tmp_path: Path) -> None:
    """The scale the issue asks for: 50 instances on a 2-core machine, each on its own sshd."""
    require_root()
    lab = _start(tmp_path, 50)
    try:
        assert lab.up.returncode == 0, lab.up.stderr
        status = lab.lab("status", "-f", "json")
        assert status.returncode == 0, status.stderr
        instances = json.loads(status.stdout)["instances"]
        assert len(instances) == 50
        assert {view["status"] for view in instances} == {"ACTIVE"}
        assert len({view["address"] for view in instances}) == 50
        with ThreadPoolExecutor(max_workers=10) as pool:
            logins = list(
                pool.map(
                    lambda view: key_login(view["address"], view["user"], lab.state / "lab_key"),
                    instances,
                )
            )
        assert logins == ["ok"] * 50
    finally:
        _down_and_check(lab)
