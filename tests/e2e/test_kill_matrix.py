"""kill -9 at 20 points of a fix-ssh-keys run, then `cloudrescue resume NAME`.

Every time: the instance ends ACTIVE and answers on its own sshd, its ``authorized_keys`` is
the old file or the new one (never partial), nothing of the rescue is left mounted or
attached on this machine, and a second fix-ssh-keys leaves the key exactly once.

The points are found from the outside, as a user would see them: the run's progress lines
(``→ stage``) and a delay after each; the lab's slower transitions (``transition_delay``)
widen the windows. Cases run three at a time, one instance each.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudrescue.lab.layout import StateLayout
from tests.lab.labkit import key_login

from .conftest import E2ELab
from .test_fix_ssh_keys import status_of

pytestmark = [pytest.mark.lab, pytest.mark.slow]
TRANSITION = 0.8
KEYS = "home/debian/.ssh/authorized_keys"


@dataclass(frozen=True)
class KillPoint:
    stage: str  # the start of a progress line
    delay: float  # seconds after it

    @property
    def name(self) -> str:
        return f"{self.stage.split()[0]}-{self.stage.split()[-1]}+{self.delay}"


POINTS = [
    *(KillPoint("asking the cloud to rescue", d) for d in (0.0, 0.1, 0.4, 0.7)),
    *(KillPoint("reading the rescue's host key", d) for d in (0.0, 0.4)),
    *(KillPoint("logging in to the rescue system", d) for d in (0.0, 0.2)),
    *(KillPoint("finding and mounting the instance's disk", d) for d in (0.0, 0.1, 0.3)),
    *(KillPoint("applying the fix", d) for d in (0.0, 0.02, 0.06, 0.15)),
    *(KillPoint("syncing and unmounting the disk", d) for d in (0.0, 0.05, 0.2)),
    *(KillPoint("leaving rescue: unrescuing", d) for d in (0.0, 0.5)),
]
assert len(POINTS) == 20


def killed_at(lab: E2ELab, name: str, key: Path, point: KillPoint) -> str:
    """Run fix-ssh-keys, SIGKILL it at ``point``; the progress lines it printed."""
    process = lab.popen("fix-ssh-keys", name, "--key", str(key), "--yes")
    assert process.stderr is not None
    seen: list[str] = []
    reached = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line.rstrip())
            if line.lstrip("→ ").startswith(point.stage):
                reached.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if reached.wait(timeout=120):
        time.sleep(point.delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    reader.join(timeout=10)
    assert any(point.stage in line for line in seen), "\n".join(seen)
    return "\n".join(seen)


def guest_keys(lab: E2ELab, instance_id: str) -> str:
    """The instance's authorized_keys, read through its running guest's own mounts."""
    files = lab.disk_files(instance_id)
    assert KEYS in files, sorted(files)[:20]
    return (lab.system_root(instance_id) / KEYS).read_text()


def logs_in(address: str, key: Path) -> bool:
    """The instance's own sshd lets the key in (ACTIVE comes before sshd is up, as on a real
    cloud: a loaded machine gets a few seconds)."""
    deadline = time.monotonic() + 30
    while (outcome := key_login(address, "debian", key)) != "ok":
        if time.monotonic() > deadline:
            print(f"{address}: {outcome}")
            return False
        time.sleep(0.5)
    return True


def nothing_attached(lab: E2ELab, instance_id: str) -> list[str]:
    """Mounts of this machine that reach into the instance's state (the rescue's are gone)."""
    where = str(StateLayout(lab.state).instance(instance_id).root)
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if where in line]


def one_case(lab: E2ELab, point: KillPoint, new_key: Path) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    old = guest_keys(lab, instance["id"])
    new_line = Path(f"{new_key}.pub").read_text().strip()
    progress = killed_at(lab, name, Path(f"{new_key}.pub"), point)
    resumed = lab.cli("resume", name, "--yes")
    assert resumed.returncode == 0, (point, progress, resumed.stderr)
    deadline = time.monotonic() + 120
    while status_of(lab, name) != "ACTIVE/-":
        assert time.monotonic() < deadline, (point, status_of(lab, name))
        time.sleep(0.2)
    assert logs_in(address, lab.key), (point, progress)
    now = guest_keys(lab, instance["id"])
    assert now in (old, old.rstrip("\n") + "\n" + new_line + "\n"), (point, now)
    assert nothing_attached(lab, instance["id"]) == [], point
    again = lab.cli("fix-ssh-keys", name, "--key", f"{new_key}.pub", "--yes")
    assert again.returncode == 0, (point, again.stderr)
    assert guest_keys(lab, instance["id"]).count(new_line.split()[1]) == 1, point
    assert logs_in(address, new_key), point
    lab.admin.call("DELETE", f"/instances/{instance['id']}")


def test_kill_9_anywhere_then_resume(lab: E2ELab, tmp_path: Path) -> None:
    new_key = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(new_key)], check=True)
    lab.faults(transition_delay=TRANSITION)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            outcomes = {
                point.name: pool.submit(one_case, lab, point, new_key) for point in POINTS
            }
            failures = []
            for label, future in outcomes.items():
                try:
                    future.result()
                except Exception as error:  # every point is reported, not only the first
                    failures.append(f"{label}: {error!r}")
    finally:
        lab.clear_faults()
    assert failures == [], "\n".join(failures)
