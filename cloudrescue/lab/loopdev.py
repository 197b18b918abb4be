"""Loop devices for the lab: attach (with partition nodes), find by backing file, detach.

The lab's kernel has no GPT parser and the machine has no udev: partitions are added with
``partx`` and missing or stale ``/dev`` nodes are (re)made from ``/sys``. Attaching is
serialised across threads and processes (``flock``) so concurrent labs do not race for the
same free loop device.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from cloudrescue.errors import LabError
from cloudrescue.lab.layout import cache_dir
from cloudrescue.lab.ledger import Entry, Ledger
from cloudrescue.lab.system import run

LOOP_CTL_GET_FREE = 0x4C82
_thread_lock = threading.Lock()
SYS_BLOCK = Path("/sys/block")


@dataclass(frozen=True)
class LoopDevice:
    """An attached loop device and its partition nodes (number -> /dev path)."""

    name: str
    partitions: dict[int, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"

    def partition(self, number: int) -> str:
        """``/dev`` path of partition ``number``."""
        try:
            return self.partitions[number]
        except KeyError:
            raise LabError(f"{self.path} has no partition {number}") from None


@dataclass(frozen=True)
class LoopInfo:
    """What sysfs says of an attached loop device."""

    name: str
    backing: str
    offset: int
    sizelimit: int


@contextmanager
def _attach_lock() -> Iterator[None]:
    lock_path = cache_dir() / "loop.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def device_numbers(name: str) -> tuple[int, int]:
    """``(major, minor)`` of block device ``name`` from sysfs."""
    text = (Path("/sys/class/block") / name / "dev").read_text().strip()
    major, _, minor = text.partition(":")
    return int(major), int(minor)


def ensure_node(path: str, major: int, minor: int, ledger: Ledger | None = None) -> None:
    """Make sure ``path`` is a block node for ``major:minor`` (replacing a stale one)."""
    wanted = os.makedev(major, minor)
    try:
        st = os.lstat(path)
        if stat.S_ISBLK(st.st_mode) and st.st_rdev == wanted:
            return
        os.unlink(path)
    except FileNotFoundError:
        pass
    if ledger is not None:
        ledger.record("node", path, major=major, minor=minor)
    os.mknod(path, 0o660 | stat.S_IFBLK, wanted)


def _free_loop() -> str:
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        number = fcntl.ioctl(fd, LOOP_CTL_GET_FREE)
    finally:
        os.close(fd)
    name = f"loop{number}"
    major, minor = device_numbers(name) if (SYS_BLOCK / name).exists() else (7, number)
    ensure_node(f"/dev/{name}", major, minor)
    return name


def _partition_nodes(name: str, ledger: Ledger | None) -> dict[int, str]:
    run(["partx", "-a", f"/dev/{name}"], check=False)  # no-op when the kernel found them
    found: dict[int, str] = {}
    for entry in (SYS_BLOCK / name).glob(f"{name}p*"):
        number = int((entry / "partition").read_text())
        major, minor = device_numbers(entry.name)
        ensure_node(f"/dev/{entry.name}", major, minor, ledger)
        found[number] = f"/dev/{entry.name}"
    return found


def attach(
    ledger: Ledger,
    key: str,
    backing: Path,
    *,
    read_only: bool = False,
    partitions: bool = False,
    offset: int = 0,
    size: int = 0,
) -> LoopDevice:
    """Attach ``backing`` to a free loop device (recorded in the ledger under ``key``)."""
    options = ["--read-only"] if read_only else []
    if partitions:
        options.append("--partscan")
    if offset or size:
        options += ["--offset", str(offset), "--sizelimit", str(size)]
    with _attach_lock():
        for _attempt in range(5):
            name = _free_loop()
            ledger.record("loop", key, name=name, backing=str(backing), offset=offset)
            result = run(["losetup", *options, f"/dev/{name}", str(backing)], check=False)
            if result.returncode == 0:
                break
            time.sleep(0.1)  # taken by someone not using our lock: try the next one
        else:
            raise LabError(f"cannot attach a loop device to {backing}: {result.stderr.strip()}")
    parts = _partition_nodes(name, ledger) if partitions else {}
    return LoopDevice(name, parts)


def _sysfs(path: str) -> str | None:
    """A sysfs attribute's text; None when it is not there (a loop device not attached)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 8192).decode(errors="replace").strip()
    finally:
        os.close(fd)


def _backing_files() -> dict[str, str]:
    """Every attached loop device of the machine and its backing file.

    One read per device, with no pathlib on the way: each instance's stop scans every loop
    device the machine ever made (hundreds after a few labs), and with 50 rescues at once
    the Python-level reads held the daemon's GIL for a quarter of the time.
    """
    found: dict[str, str] = {}
    for name in os.listdir(SYS_BLOCK):
        if name.startswith("loop") and (backing := _backing_file(name)) is not None:
            found[name] = backing
    return found


def _backing_file(name: str) -> str | None:
    """The file ``/dev/<name>`` maps (None when it is not attached)."""
    backing = _sysfs(f"{SYS_BLOCK}/{name}/loop/backing_file")
    return None if backing is None else backing.removesuffix(" (deleted)")


def info(name: str) -> LoopInfo | None:
    """What sysfs says of ``/dev/<name>`` (None when it is not attached)."""
    loop_dir = f"{SYS_BLOCK}/{name}/loop"
    backing = _backing_file(name)
    offset, sizelimit = _sysfs(f"{loop_dir}/offset"), _sysfs(f"{loop_dir}/sizelimit")
    if backing is None or offset is None or sizelimit is None:
        return None  # not attached, or detached meanwhile
    try:
        return LoopInfo(name, backing, int(offset), int(sizelimit))
    except ValueError:
        return None


def detach(name: str) -> None:
    """Detach ``/dev/<name>`` (its partitions go with it); quiet if already gone."""
    result = run(["losetup", "--detach", f"/dev/{name}"], check=False)
    if result.returncode != 0 and (SYS_BLOCK / name / "loop").exists():
        raise LabError(f"cannot detach /dev/{name}: {result.stderr.strip()}")


def detach_strays(device_names: Iterable[str]) -> None:
    """Detach loop devices made *on top of* the given devices (e.g. by a rescue system)."""
    names = set(device_names)
    for name, backing in _backing_files().items():
        if os.path.basename(backing) in names:
            detach(name)


def adopt(entry: Entry | None) -> LoopDevice | None:
    """The loop device a ledger entry records, if it still maps the recorded file."""
    if entry is None or "name" not in entry.data:
        return None
    found = info(entry.data["name"])
    if found is None or found.backing != entry.data["backing"]:
        return None
    if found.offset != entry.data.get("offset", 0):
        return None
    parts = {
        int((part / "partition").read_text()): f"/dev/{part.name}"
        for part in (SYS_BLOCK / found.name).glob(f"{found.name}p*")
    }
    return LoopDevice(found.name, parts)


def undo_loop(entry: Entry) -> None:
    """Ledger undo: detach the recorded loop device if it still maps the recorded file,
    after the loop devices someone stacked on it (or on its partitions)."""
    found = info(entry.data["name"])
    if found is None or found.backing != entry.data["backing"]:
        return
    if found.offset != entry.data.get("offset", 0):
        return
    stacked = [found.name, *(p.name for p in (SYS_BLOCK / found.name).glob(f"{found.name}p*"))]
    detach_strays(stacked)
    detach(found.name)


def undo_node(entry: Entry) -> None:
    """Ledger undo: remove a node we made unless it now belongs to a live device."""
    name = os.path.basename(entry.key)
    try:
        live = device_numbers(name) == (entry.data["major"], entry.data["minor"])
    except (FileNotFoundError, ValueError):
        live = False
    if not live:
        with suppress(FileNotFoundError):
            os.unlink(entry.key)
