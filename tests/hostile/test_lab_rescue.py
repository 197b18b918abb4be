"""The hostile corpus on a real lab instance: "hash the rescue overlay".

The lab's rescue system is an overlay of the read-only shared rescue image with a tmpfs upper
layer (``cloudrescue/lab/rescue_init.py``): everything the rescue system's files go through
lands in that upper layer. The rescue system itself entered its root with ``pivot_root`` and
cannot see the layers; this machine reaches them through the mount namespace its init mounted
them in, the outer ``unshare``'s (``/proc/<init>/root/<instance mnt>/rescue-rw/upper``).
One instance is broken with the ``hostile`` scenario (links into the rescue's own paths, a
planted ``sshd`` that tries to write the rescue's files), then shipped playbooks run through
the real CLI. For each run the upper layer is hashed once the rescue is up (before cloudrescue
logs in: its host keys are announced later) and again once cloudrescue is done with it (the
unrescue request is held a few seconds by a lab fault): identical. A control playbook that
does write on the rescue shows the check sees such a write.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.lab import lifecycle
from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.lifecycle import admin
from cloudrescue.lab.scenarios import PLANTED_TRACE, RESCUE_ONLY
from tests.e2e.conftest import E2ELab
from tests.lab.labkit import key_login

pytestmark = pytest.mark.lab

CLOUDRESCUE = str(Path(sys.executable).with_name("cloudrescue"))
BEFORE_STAGE = "reading the rescue's host key fingerprints"  # RESCUE reached, not logged in
AFTER_STAGE = "leaving rescue: unrescuing"  # cloudrescue is done with the rescue system
HOLD = 3.0  # seconds the unrescue request is held while the rescue is hashed again


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ELab]:
    """A lab of its own (its own state dir and network), no instance yet."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    base = tmp_path_factory.mktemp("hostile-lab")
    state = base / "lab"
    env = {
        **os.environ,
        "OS_CLIENT_CONFIG_FILE": str(base / "clouds.yaml"),
        "OS_CLOUD": "lab",
        "CLOUDRESCUE_STATE_DIR": str(base / "cloudrescue-state"),
        "HOME": str(base / "home"),
        "COLUMNS": "200",
    }
    (base / "home").mkdir()
    up = [CLOUDRESCUE, "lab", "up", "--state-dir", str(state), "--instances", "0",
          "--transition-delay", "0.2", "--announce-delay", "1.0"]  # fmt: skip
    started = subprocess.run(up, env=env, capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    try:
        yield E2ELab(state, env, admin(state))
    finally:
        down = [CLOUDRESCUE, "lab", "down", "--state-dir", str(state)]
        stopped = subprocess.run(down, env=env, capture_output=True, text=True, check=False)
        if stopped.returncode != 0:
            lifecycle.down(state)  # nothing of this lab may outlive the test, CLI or not
        assert stopped.returncode == 0, stopped.stderr


Entry = tuple[str, int, int, int, str]


def _entry(path: Path) -> Entry:
    info = path.lstat()
    mode = info.st_mode
    if stat.S_ISREG(mode):
        with path.open("rb") as handle:
            what = hashlib.file_digest(handle, "sha256").hexdigest()
    elif stat.S_ISLNK(mode):
        what = "-> " + os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # whiteouts: 0:0
        what = f"device {os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    else:
        what = stat.filemode(mode)[0]
    return what, stat.S_IMODE(mode), info.st_uid, info.st_gid, ""


class RescueOverlay:
    """The running rescue system's overlay layers, seen from this machine (its init's mount
    namespace), and its root as the rescue system sees it."""

    def __init__(self, lab: E2ELab, instance_id: str) -> None:
        mnt = str(StateLayout(lab.state).instance(instance_id).mnt).lstrip("/")
        layers = Path(f"/proc/{lab.init_pid(instance_id)}/root") / mnt
        self.upper = layers / "rescue-rw" / "upper"
        self.lower = layers / "rescue-ro"
        self.merged = lab.system_root(instance_id)

    def has_dir_of(self, path: str) -> bool:
        """Whether the rescue system has the directory ``path`` would be written in."""
        return (self.merged / path.lstrip("/")).parent.is_dir()

    def snapshot(self) -> dict[str, Entry]:
        """Every entry of the upper layer (a directory only when the image lacks it: the
        others are copied up by any change inside them), with its content hash."""
        found: dict[str, Entry] = {}
        top = str(self.upper)
        for folder, directories, names in os.walk(top):
            for name in [*directories, *names]:
                relative = f"{folder[len(top) :]}/{name}"
                path = Path(folder, name)
                if name in directories and os.path.lexists(self.lower / relative.lstrip("/")):
                    continue
                found[relative] = _entry(path)
        return found


def _differences(before: dict[str, Entry], after: dict[str, Entry]) -> dict[str, object]:
    return {
        path: (before.get(path), after.get(path))
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    }


@dataclass
class Watched:
    """A CLI run on the hostile instance, with its rescue's overlay hashed around it."""

    status: int
    stdout: str
    stderr: str
    changed: dict[str, object]  # upper-layer entries that differ (empty: untouched)
    targets_there: bool  # the planted sshd's targets' directories exist on the rescue


def run_watched(lab: E2ELab, instance_id: str, *args: str, stdin: str = "") -> Watched:
    """``cloudrescue ARGS`` with the rescue overlay hashed when the rescue is up (before the
    login) and when cloudrescue is done with it (the unrescue request held meanwhile)."""
    process = subprocess.Popen(
        [CLOUDRESCUE, *args],
        env=lab.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(stdin)
    process.stdin.close()
    snapshots: dict[str, dict[str, Entry]] = {}
    there: list[bool] = []
    lines: list[str] = []
    problems: list[BaseException] = []

    def on(line: str) -> None:
        stage = line.lstrip("→ ").strip()
        if stage.startswith("syncing and unmounting the disk"):
            hold = {"seconds": HOLD, "count": 1, "method": "POST", "action": "unrescue"}
            lab.faults(api_stall=hold)
        for key, wanted in (("before", BEFORE_STAGE), ("after", AFTER_STAGE)):
            if stage.startswith(wanted) and key not in snapshots:
                overlay = RescueOverlay(lab, instance_id)
                snapshots[key] = overlay.snapshot()
                there.append(all(overlay.has_dir_of(path) for path in RESCUE_ONLY))

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            try:
                on(line)
            except Exception as error:
                problems.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert process.stdout is not None
    stdout = process.stdout.read()
    process.wait(timeout=120)
    reader.join(timeout=30)
    lab.clear_faults()
    assert not problems, problems
    assert set(snapshots) == {"before", "after"}, "".join(lines)
    return Watched(
        process.returncode,
        stdout,
        "".join(lines),
        _differences(snapshots["before"], snapshots["after"]),
        all(there),
    )


@pytest.fixture(scope="module")
def hostile_instance(lab: E2ELab) -> dict[str, Any]:
    instance = lab.add(name="hostile-1")
    lab.break_("hostile-1", "hostile")
    return instance


def test_the_hostile_disk_boots_refuses_the_old_key_and_has_none_of_the_targets(
    lab: E2ELab, hostile_instance: dict[str, Any]
) -> None:
    assert key_login(hostile_instance["address"], "debian", lab.key) == "key refused"
    files = lab.disk_files(hostile_instance["id"])
    assert files["home/debian/.ssh/authorized_keys"].startswith("-> /etc/shadow ")
    assert files["usr/sbin/sshd.real"].split()[0] != files["usr/sbin/sshd"].split()[0]
    # an escape of the planted sshd can only land on the rescue: the guest has no /etc/lvm
    assert RESCUE_ONLY[0].startswith("/etc/lvm/") and "etc/lvm" not in files
    assert not [target for target in RESCUE_ONLY if target.lstrip("/") in files]


PASSWORD = "Hostile-lab-2026\n"
RUNS = {
    "fix-ssh-keys": ("fix-ssh-keys", "{name}", "--key", "{key}"),
    "fix-sshd-config": ("run", "{name}", "fix-sshd-config"),  # sshd -t: the planted sshd
    "reset-password": ("reset-password", "{name}", "--ssh", "--password-stdin"),  # sshd -T
}
PLANTED_RAN: dict[str, bool] = {}  # playbook -> whether the planted sshd ran (in the sandbox)


@pytest.mark.parametrize("playbook", list(RUNS))
def test_repairing_a_hostile_disk_leaves_the_rescue_system_untouched(
    lab: E2ELab, hostile_instance: dict[str, Any], tmp_path: Path, playbook: str
) -> None:
    key = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    name, instance_id = hostile_instance["name"], hostile_instance["id"]
    args = [arg.format(name=name, key=f"{key}.pub") for arg in RUNS[playbook]]
    traced = _trace(lab, instance_id)
    started = time.monotonic()
    run = run_watched(lab, instance_id, *args, "--yes", stdin=PASSWORD)
    assert run.status == 0, run.stderr
    assert run.targets_there, "the planted sshd's targets are not on this rescue: no proof"
    assert run.changed == {}, f"the rescue system's files changed:\n{run.changed}\n{run.stderr}"
    for escaped in ("ESCAPED", "CHROOT-ESCAPE", "MOUNTED"):
        assert escaped not in run.stdout + run.stderr
    assert time.monotonic() - started < 60
    PLANTED_RAN[playbook] = _trace(lab, instance_id) != traced
    if playbook == "fix-ssh-keys":
        assert key_login(hostile_instance["address"], "debian", key) == "ok"
        files = lab.disk_files(instance_id)
        assert not files["home/debian/.ssh/authorized_keys"].startswith("->")


def _trace(lab: E2ELab, instance_id: str) -> str | None:
    """What the planted sshd wrote in the guest when it ran in a sandbox (None: never)."""
    return lab.disk_files(instance_id).get(PLANTED_TRACE.lstrip("/"))


def test_the_planted_sshd_is_run_and_contained_on_the_lab_rescue(
    lab: E2ELab, hostile_instance: dict[str, Any]
) -> None:
    """The lab's rescue enters its root with pivot_root (not chroot), so its sessions may make
    a user namespace: the sandbox starts there, the planted sshd runs in it (``sshd -t`` and
    ``sshd -T``: its trace lands in the guest) and the rescue's overlay stays untouched."""
    for playbook in ("fix-sshd-config", "reset-password"):
        if playbook not in PLANTED_RAN:  # run alone: run it here
            before = _trace(lab, hostile_instance["id"])
            args = [a.format(name=hostile_instance["name"]) for a in RUNS[playbook]]
            run = run_watched(lab, hostile_instance["id"], *args, "--yes", stdin=PASSWORD)
            assert run.status == 0 and run.changed == {}, run.stderr
            PLANTED_RAN[playbook] = _trace(lab, hostile_instance["id"]) != before
    assert PLANTED_RAN["fix-sshd-config"] and PLANTED_RAN["reset-password"]


CONTROL = """\
name: write-on-the-rescue
description: Control of the overlay check - writes one of the rescue system's own files.
mount: none
steps:
  - name: Write on the rescue
    action: run_rescue
    argv: [sh, -c, "echo owned >> {target}"]
"""


def test_control_a_write_on_the_rescue_shows_in_its_overlay(
    lab: E2ELab, hostile_instance: dict[str, Any], tmp_path: Path
) -> None:
    """The check is not blind: a playbook that does write on the rescue system (what an
    escape would do) is caught, and only that write."""
    playbook = tmp_path / "write-on-the-rescue.yaml"
    playbook.write_text(CONTROL.format(target=RESCUE_ONLY[0]))
    run = run_watched(lab, hostile_instance["id"], "run", hostile_instance["name"], str(playbook),
                      "--yes")  # fmt: skip
    assert run.status == 0, run.stderr
    assert list(run.changed) == [RESCUE_ONLY[0]], run.changed
