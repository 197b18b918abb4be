"""The README's promises nothing else checks, each on the lab as a user would meet it.

``--jump`` through a bastion to an instance this machine has no route to, ``--trust-host-key``
when the rescue's console shows no fingerprints, ``console log`` / ``console url``, a user's
own playbook file, authentication from an openrc file's ``OS_*`` variables only (and
``resume`` of a run recorded that way), ``--timeout`` reaching exit 6, the user's
``known_hosts`` never opened, the rescue password never in any process's argv.

Every check of an instance goes through its own sshd, its host key pinned
(``tests/lab/labkit.py``). One instance per test, on the session's lab.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from cloudrescue.journal import Journal, JournalEntry
from cloudrescue.keys import fingerprint_of_blob
from cloudrescue.lab.api.auth import Identity
from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.model import LabConfig
from tests.lab.labkit import (
    key_login,
    lab_systems,
    pinned_host_keys,
    ssh_client,
    tcp_open,
)

from .conftest import CLOUDRESCUE, E2ELab
from .test_errors import one_error_line
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab
BEGIN_FINGERPRINTS = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def new_key(tmp_path: Path) -> Path:
    """A fresh ed25519 key pair; returns the private key path."""
    path = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def bastion(lab: E2ELab) -> dict[str, Any]:
    """The lab's bastion (made once; `POST /lab/v1/bastion`)."""
    return lab.admin.bastion()


def config_of(lab: E2ELab) -> LabConfig:
    return LabConfig.from_json(json.loads(StateLayout(lab.state).lab_json.read_text()))


def journal_of(env: dict[str, str]) -> Journal:
    return Journal(Path(env["CLOUDRESCUE_STATE_DIR"]))


def entries_of(env: dict[str, str], name: str) -> list[JournalEntry]:
    """Every journal entry of instance ``name``, newest first (restored ones too)."""
    return [e for e in journal_of(env).entries(include_restored=True) if e.server_name == name]


def wait_until(check: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


def logs_in(address: str, key: Path, via: dict[str, Any] | None = None) -> str:
    """``key_login`` of the default user, given a few seconds (ACTIVE comes before sshd is up,
    as on a real cloud)."""
    deadline = time.monotonic() + 30
    while (outcome := key_login(address, "debian", key, via=via)) != "ok":
        if time.monotonic() > deadline:
            return outcome
        time.sleep(0.5)
    return outcome


def guest_file(lab: E2ELab, instance_id: str, path: str) -> str:
    """A file of a running instance's disk, read through its guest's own mounts."""
    return (lab.system_root(instance_id) / path.lstrip("/")).read_text()


def fix(
    lab: E2ELab, name: str, key: Path, *extra: str, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return lab.cli("fix-ssh-keys", name, "--key", f"{key}.pub", "--yes", *extra, **kwargs)


class Watch:
    """While a run goes on: every distinct argv of every process of this machine (read from
    ``/proc/*/cmdline`` over and over), and the host key fingerprints of the rescue system
    the lab runs at ``address``."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.argvs: set[bytes] = set()
        self.rescue_fingerprints: set[str] = set()
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.argvs.add(cmdline.read_bytes())
                except OSError:
                    continue
            if self.address is not None:
                for system in lab_systems(self.address):
                    if system.kind == "rescue":
                        self.rescue_fingerprints |= system.fingerprints()
            self.scans += 1
            self._stop.wait(0.01)


# -- 1. --jump through a bastion -----------------------------------------------------------


def test_jump_through_a_bastion_repairs_an_instance_only_it_reaches(
    lab: E2ELab, bastion: dict[str, Any], new_key: Path
) -> None:
    [answering] = lab_systems(bastion["address"])  # the bastion's own sshd, its real key
    assert answering.kind == "bastion"
    assert answering.fingerprints() == {bastion["host_key_fingerprint"]}
    instance = lab.add(network="private")
    name, address = instance["name"], instance["address"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(bastion["private_subnet"])
    assert not tcp_open(address)  # no route from this machine
    assert key_login(address, "debian", lab.key).startswith("unreachable")
    assert key_login(address, "debian", lab.key, via=bastion) == "ok"
    lab.break_(name, "lost-key")
    assert key_login(address, "debian", lab.key, via=bastion) == "key refused"

    direct = fix(lab, name, new_key, "--ssh-timeout", "3")
    assert direct.returncode == 7, direct.stderr
    assert f"cannot reach the rescue system at root@{address}" in one_error_line(direct)
    assert status_of(lab, name) == "ACTIVE/-"

    jump = ["--jump", f"{bastion['user']}@{bastion['address']}", "--jump-key", bastion["key"]]
    other = Path(f"{lab.key}.pub").read_text().split()[1]  # a real key's fingerprint, not its
    wrong = fingerprint_of_blob(base64.b64decode(other))
    refused = fix(lab, name, new_key, *jump, "--jump-fingerprint", wrong)
    assert refused.returncode == 8, refused.stderr
    error = one_error_line(refused)
    assert "jump host" in error and bastion["host_key_fingerprint"] in error, error
    assert status_of(lab, name) == "ACTIVE/-"
    assert key_login(address, "debian", new_key, via=bastion) == "key refused"

    fixed = fix(lab, name, new_key, *jump, "--jump-fingerprint", bastion["host_key_fingerprint"])
    assert fixed.returncode == 0, fixed.stderr
    assert status_of(lab, name) == "ACTIVE/-"
    assert logs_in(address, new_key, via=bastion) == "ok"
    assert entries_of(lab.env, name)[0].state == "restored"


# -- 2. --trust-host-key -------------------------------------------------------------------


@pytest.fixture(scope="module")
def silent_console_runs(
    lab: E2ELab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A fix of an instance whose rescue prints no host key fingerprints: without, then with
    ``--trust-host-key`` (both tests below read it)."""
    key = tmp_path_factory.mktemp("trust") / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    instance = lab.add()
    name = instance["name"]
    lab.break_(name, "lost-key")
    lab.faults(rescue_host_keys_silent=True)
    try:
        refused = fix(lab, name, key, "--host-key-timeout", "3")
        after_refusal = status_of(lab, name)
        with Watch(instance["address"]) as watch:
            trusted = fix(lab, name, key, "--trust-host-key", "--host-key-timeout", "3")
    finally:
        lab.clear_faults()
    yield {
        "instance": instance,
        "key": key,
        "refused": refused,
        "after_refusal": after_refusal,
        "trusted": trusted,
        "rescue_fingerprints": watch.rescue_fingerprints,
        "console": lab.cli("console", "log", name).stdout,
    }


def test_a_console_without_fingerprints_needs_trust_host_key(
    lab: E2ELab, silent_console_runs: dict[str, Any]
) -> None:
    runs = silent_console_runs
    instance = runs["instance"]
    refused: subprocess.CompletedProcess[str] = runs["refused"]
    assert refused.returncode == 8, refused.stderr
    assert "shows no SSH host key fingerprints" in one_error_line(refused)
    assert runs["after_refusal"] == "ACTIVE/-"
    rescues = [  # what each rescue printed after its login banner, until the guest booted
        part.split("Linux version")[0] for part in runs["console"].split("(rescue system)")[1:]
    ]
    assert len(rescues) == 2
    assert all("running 'modules:final' (rescue)" in part for part in rescues)
    assert all(BEGIN_FINGERPRINTS not in part for part in rescues)

    trusted: subprocess.CompletedProcess[str] = runs["trusted"]
    assert trusted.returncode == 0, trusted.stderr
    found = re.search(
        r"host key (SHA256:\S+) trusted on first use \(--trust-host-key\)", trusted.stderr
    )
    assert found, trusted.stderr
    assert found.group(1) in runs["rescue_fingerprints"]  # the rescue's own key, nothing else
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert logs_in(instance["address"], runs["key"]) == "ok"


def test_the_journal_records_the_key_trusted_on_first_use(
    lab: E2ELab, silent_console_runs: dict[str, Any]
) -> None:
    trusted: subprocess.CompletedProcess[str] = silent_console_runs["trusted"]
    assert trusted.returncode == 0, trusted.stderr
    found = re.search(r"host key (SHA256:\S+) trusted on first use", trusted.stderr)
    assert found, trusted.stderr
    entry = entries_of(lab.env, silent_console_runs["instance"]["name"])[0]
    assert entry.state == "restored"
    assert entry.note == f"host key {found.group(1)} trusted on first use (--trust-host-key)"


# -- 3. console log and console url ----------------------------------------------------------


def test_console_log_and_url_against_the_lab(lab: E2ELab) -> None:
    instance = lab.add()
    name = instance["name"]
    whole = lab.cli("console", "log", name)
    assert whole.returncode == 0, whole.stderr
    assert "Linux version" in whole.stdout and "Mounted sysroot.mount" in whole.stdout
    assert BEGIN_FINGERPRINTS in whole.stdout and f"{name} login:" in whole.stdout
    on_disk = Path(instance["console_log"]).read_text().splitlines()
    assert whole.stdout.splitlines() == on_disk
    last = lab.cli("console", "log", name, "--lines", "4")
    assert last.returncode == 0, last.stderr
    assert last.stdout.splitlines() == on_disk[-4:]

    url = lab.cli("console", "url", name)
    assert url.returncode == 0, url.stderr
    address = url.stdout.strip()
    port = config_of(lab).api_port
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:{port}/vnc_lite\.html\?path=%3Ftoken%3D[\w-]+", address
    ), address  # nova's vnc_auto.html made one click (tests/e2e/test_console.py has the rest)
    with urllib.request.urlopen(address, timeout=10) as page:  # noqa: S310 - the lab, on 127.0.0.1
        assert page.status == 200
        body = page.read().decode()
    assert f"Console of {name}" in body and f"{name} login:" in body


# -- 4. a user's own playbook file -----------------------------------------------------------

MY_FIX = """\
name: my-fix
description: Put a greeting in the message of the day.
parameters:
  who:
    type: string
    description: Whom /etc/motd greets.
steps:
  - name: Greet
    action: ensure_line
    path: /etc/motd
    line: "cloudrescue greets {{ who }}"
    match: "^cloudrescue greets "
    create: true
"""


def test_a_users_own_playbook_file_with_a_parameter(lab: E2ELab, tmp_path: Path) -> None:
    instance = lab.add()
    name, server_id = instance["name"], instance["id"]
    (tmp_path / "my-fix.yaml").write_text(MY_FIX)
    greeting = "cloudrescue greets the lab"
    args = ["run", name, "./my-fix.yaml", "--param", "who=the lab", "--yes"]
    before = lab.disk_files(server_id)
    first = lab.cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert logs_in(instance["address"], lab.key) == "ok"
    motd = guest_file(lab, server_id, "/etc/motd")
    assert greeting in motd.splitlines()
    after = lab.disk_files(server_id)
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    assert "etc/motd" in changed
    assert all(p == "etc/motd" or p.startswith("etc/motd.cloudrescue-") for p in changed), changed

    second = lab.cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert lab.disk_files(server_id) == after  # nothing changed, not even a backup
    assert logs_in(instance["address"], lab.key) == "ok"


# -- 5. OS_* variables only (an openrc file) -------------------------------------------------

OPENRC = """\
#!/usr/bin/env bash
# As OVHcloud's Public Cloud control panel gives it (OpenStack user > openrc.sh), for the lab.
export OS_AUTH_URL={auth_url}
export OS_IDENTITY_API_VERSION=3
export OS_USER_DOMAIN_NAME=${{OS_USER_DOMAIN_NAME:-"Default"}}
export OS_PROJECT_DOMAIN_NAME=${{OS_PROJECT_DOMAIN_NAME:-"Default"}}
export OS_PROJECT_ID={project_id}
export OS_PROJECT_NAME="{project_name}"
export OS_USERNAME="{username}"
export OS_PASSWORD="{password}"
export OS_REGION_NAME="RegionOne"
if [ -z "$OS_REGION_NAME" ]; then unset OS_REGION_NAME; fi
"""


def openrc_environment(lab: E2ELab, tmp_path: Path) -> dict[str, str]:
    """The environment of a shell that sourced the lab's openrc.sh: no OS_CLOUD, no
    clouds.yaml anywhere (an empty HOME, this test's own journal)."""
    config = config_of(lab)
    credentials = json.loads(StateLayout(lab.state).credentials.read_text())
    identity = Identity(
        config.lab_id,
        credentials["username"],
        credentials["password"],
        credentials["project_name"],
    )
    openrc = tmp_path / "openrc.sh"
    openrc.write_text(
        OPENRC.format(
            auth_url=f"http://127.0.0.1:{config.api_port}/identity/v3",
            project_id=identity.project_id,
            project_name=identity.project_name,
            username=identity.username,
            password=identity.password,
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    base = {
        key: value
        for key, value in lab.env.items()
        if not key.startswith(("OS_", "XDG_")) and key != "HOME"
    }
    base |= {"HOME": str(home), "CLOUDRESCUE_STATE_DIR": str(tmp_path / "state")}
    sourced = subprocess.run(
        ["bash", "-c", f"source {openrc} && env -0"],
        env=base,
        capture_output=True,
        check=True,
    ).stdout
    env = dict(item.split("=", 1) for item in sourced.decode().split("\0") if "=" in item)
    assert "OS_CLOUD" not in env and "OS_CLIENT_CONFIG_FILE" not in env
    return env


def cloud_of(entry: JournalEntry) -> str:
    """The cloud a journal entry names, without the region it may add (``envvars@RegionOne``)."""
    return entry.cloud.split("@")[0]


def run_in(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLOUDRESCUE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def test_an_openrc_environment_alone_fixes_and_resumes(
    lab: E2ELab, tmp_path: Path, new_key: Path
) -> None:
    env = openrc_environment(lab, tmp_path)
    nowhere = tmp_path / "cwd"  # openstacksdk also looks for ./clouds.yaml
    nowhere.mkdir()
    instance = lab.add()
    name = instance["name"]
    lab.break_(name, "lost-key")
    fixed = run_in(env, nowhere, "fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes")
    assert fixed.returncode == 0, fixed.stderr
    assert logs_in(instance["address"], new_key) == "ok"
    [entry] = entries_of(env, name)
    assert (cloud_of(entry), entry.state) == ("envvars", "restored")

    lab.faults(transition_delay=3.0)
    try:
        process = subprocess.Popen(
            [CLOUDRESCUE, "fix-ssh-keys", name, "--key", f"{lab.key}.pub", "--yes"],
            env=env,
            cwd=nowhere,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(
                lambda: (
                    process.poll() is not None
                    or any(e.state == "rescued" for e in journal_of(env).entries())
                ),
                what="the run to see RESCUE",
            )
            assert process.poll() is None, process.communicate()
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.communicate()
    finally:
        lab.clear_faults()
    wait_until(lambda: status_of(lab, name) == "RESCUE/-", what="RESCUE")
    killed = entries_of(env, name)[0]
    assert (cloud_of(killed), killed.state) == ("envvars", "rescued")
    status = run_in(env, nowhere, "status")
    assert status.returncode == 0, status.stderr
    assert name in status.stdout and "resume" in status.stdout
    resumed = run_in(env, nowhere, "resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued" in resumed.stdout
    assert status_of(lab, name) == "ACTIVE/-"
    assert entries_of(env, name)[0].state == "restored"
    assert logs_in(instance["address"], new_key) == "ok"


# -- 6. --timeout reaching exit 6 ------------------------------------------------------------


def test_a_timeout_exits_6_and_leaves_nothing_unjournalled(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    own_keys = pinned_host_keys(address, ("guest",))
    assert own_keys
    lab.faults(transition_delay=6.0)
    try:
        result = fix(lab, name, new_key, "--timeout", "2")
    finally:
        lab.clear_faults()
    assert result.returncode == 6, result.stderr
    one_error_line(result)
    assert status_of(lab, name).startswith(("ACTIVE/rescuing", "RESCUE/"))
    assert [e.state for e in journal_of(lab.env).entries() if e.server_name == name]
    wait_until(lambda: status_of(lab, name) == "RESCUE/-", what="RESCUE")
    assert [e.state for e in journal_of(lab.env).entries() if e.server_name == name]

    # The rescue system answers at the instance's address now: pinning tells it apart.
    assert key_login(address, "debian", lab.key).startswith("unreachable: no lab guest runs")
    client = paramiko.SSHClient()
    for key in own_keys:
        client.get_host_keys().add(address, key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(
            address,
            username="root",
            password="x",
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()

    status = lab.cli("status")
    assert status.returncode == 0, status.stderr
    assert name in status.stdout and "cloudrescue resume" in status.stdout
    resumed = lab.cli("resume", "--yes", name)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: unrescued, now ACTIVE" in resumed.stdout
    assert status_of(lab, name) == "ACTIVE/-"
    assert not [e for e in journal_of(lab.env).entries() if e.server_name == name]
    assert logs_in(address, lab.key) == "ok"


# -- 7. the user's known_hosts is never opened -----------------------------------------------


def test_the_users_known_hosts_is_never_read_nor_written(
    lab: E2ELab, tmp_path: Path, new_key: Path
) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    lab.break_(name, "lost-key")
    home = tmp_path / "home"
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(parents=True, mode=0o700)
    fifo = dot_ssh / "known_hosts"
    os.mkfifo(fifo, 0o600)  # a reader or a writer opening it would block: the run would hang
    wrong = dot_ssh / "known_hosts2"
    line = f"{address} ssh-ed25519 {Path(f'{lab.key}.pub').read_text().split()[1]}\n"
    wrong.write_text(line)  # a wrong entry for the instance's address (the lab key, not a host key)
    past = time.time() - 3600
    os.utime(wrong, (past - 60, past))  # atime before mtime: a read would move it (relatime)
    os.utime(dot_ssh, (past, past))
    snapshot = {path: path.lstat() for path in (dot_ssh, fifo, wrong)}
    env = {**lab.env, "HOME": str(home)}
    result = subprocess.run(
        [CLOUDRESCUE, "fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert wrong.lstat().st_atime_ns == snapshot[wrong].st_atime_ns  # never read
    assert sorted(os.listdir(dot_ssh)) == ["known_hosts", "known_hosts2"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    for path, was in snapshot.items():
        now = path.lstat()
        assert (now.st_ino, now.st_mtime_ns, now.st_ctime_ns, now.st_size) == (
            was.st_ino,
            was.st_mtime_ns,
            was.st_ctime_ns,
            was.st_size,
        ), path
    assert wrong.read_text() == line
    assert logs_in(address, new_key) == "ok"


# -- 8. the rescue password never in argv ----------------------------------------------------


def test_the_rescue_password_is_in_no_argv_and_no_journal(lab: E2ELab, new_key: Path) -> None:
    instance = lab.add()
    name = instance["name"]
    with Watch() as watch:
        result = fix(lab, name, new_key)
    assert result.returncode == 0, result.stderr
    password = lab.admin.admin_pass(name)  # what the lab's nova received as adminPass
    assert password and len(password) >= 24, password
    secret = password.encode()
    seen = b"\n".join(watch.argvs)
    assert watch.scans > 50 and b"fix-ssh-keys" in seen  # the scan saw the run going on
    assert b"cloudrescue.lab.rescue_init" in seen  # ...and the rescue system it started
    assert secret not in seen
    for argv in watch.argvs:  # nor any piece of it long enough to be it
        assert not any(len(arg) >= 16 and arg in secret for arg in argv.split(b"\0")), argv
    assert password not in result.stdout and password not in result.stderr
    state = Path(lab.env["CLOUDRESCUE_STATE_DIR"])
    files = [path for path in state.rglob("*") if path.is_file()]
    assert any(path.name.startswith("journal.sqlite3") for path in files)
    for path in files:
        assert secret not in path.read_bytes(), path
    assert logs_in(instance["address"], new_key) == "ok"


# -- 9. the e2e login check pins the instance's host key --------------------------------------


def test_key_login_pins_the_instances_own_host_key(lab: E2ELab, bastion: dict[str, Any]) -> None:
    instance = lab.add()
    address = instance["address"]
    [guest] = lab_systems(address)
    assert (guest.kind, guest.instance_id) == ("guest", instance["id"])
    assert key_login(address, "debian", lab.key) == "ok"
    console = Path(instance["console_log"]).read_text()
    assert all(fingerprint in console for fingerprint in guest.fingerprints())
    client = ssh_client(address, "debian", key=lab.key, kinds=("guest",))
    try:
        transport = client.get_transport()
        assert transport is not None
        served = transport.get_remote_server_key()
        assert fingerprint_of_blob(served.asbytes()) in guest.fingerprints()
    finally:
        client.close()
    # Another system's key pinned for this address (the bastion's): refused.
    [other] = [s for s in lab_systems(bastion["address"]) if s.kind == "bastion"]
    impostor = paramiko.SSHClient()
    for key in other.host_keys():
        impostor.get_host_keys().add(address, key.get_name(), key)
    impostor.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            impostor.connect(
                address,
                username="debian",
                key_filename=str(lab.key),
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
            )
    finally:
        impostor.close()
