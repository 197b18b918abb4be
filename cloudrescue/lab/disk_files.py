"""Writing files onto a stopped instance's disk, in a private mount namespace (no scenario).

``python -m cloudrescue.lab.disk_files <plan.json>`` (started by the runtime under ``unshare
--mount``) reads ``[{"path", "content", "mode", "uid", "gid"}, ...]`` as JSON on stdin, mounts
the instance's filesystems like ``damage`` does (leniently), writes each file, unmounts and
prints ``{"detail": ...}``. It is how a test gives a guest a configuration no break scenario
makes (``Port 2222`` in an sshd drop-in, say).

Writes are anchored in the guest's root: every directory on the way is opened with
``O_NOFOLLOW`` relative to the previous one (a symlink anywhere on the path, even one pointing
inside the guest, is refused), missing directories are made (0755, root), and the file is
written to a temporary name and renamed over the old one, so a symlink at the final name is
replaced, never followed. ``..`` and ``.`` components are refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cloudrescue.errors import InvalidInputError
from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.fstab_mounts import mount_fstab, mount_root, plan_devices
from cloudrescue.lab.system import run

DIRECTORY_MODE = 0o755


@dataclass(frozen=True)
class GuestFile:
    """One file to write on a guest disk (``path`` absolute in the guest)."""

    path: str
    content: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    def parts(self) -> tuple[str, ...]:
        """The path's components below ``/`` (``InvalidInputError`` for a path that could
        leave the root or names no file)."""
        path = PurePosixPath(self.path)
        parts = path.parts[1:]
        if not path.is_absolute() or not parts:
            raise InvalidInputError(f"{self.path!r}: give an absolute path of a file")
        if any(part in ("..", ".") for part in self.path.split("/")):
            raise InvalidInputError(f"{self.path!r}: '..' and '.' are not allowed")
        return parts

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GuestFile:
        return cls(**data)

    @staticmethod
    def check_all(files: list[GuestFile]) -> None:
        """``InvalidInputError`` for the first path that could leave the root."""
        for wanted in files:
            wanted.parts()


def _open_directory(parent: int, name: str) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        os.mkdir(name, DIRECTORY_MODE, dir_fd=parent)
        return os.open(name, flags, dir_fd=parent)
    except OSError as error:  # ELOOP / ENOTDIR: a symlink or a file where a directory is
        reason = error.strerror or type(error).__name__
        raise InvalidInputError(f"{name}: not a directory of the guest ({reason})") from None


def write_file(root: Path, wanted: GuestFile) -> None:
    """Write ``wanted`` below ``root`` without following any symlink (see the module doc)."""
    *directories, name = wanted.parts()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for directory in directories:
            next_fd = _open_directory(fd, directory)
            os.close(fd)
            fd = next_fd
        temporary = f".{name}.lab-write"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=fd)  # a leftover of an interrupted write
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        out = os.open(temporary, flags, 0o600, dir_fd=fd)
        try:
            try:
                data = memoryview(wanted.content.encode())
                while data:
                    data = data[os.write(out, data) :]
                os.fchown(out, wanted.uid, wanted.gid)
                os.fchmod(out, wanted.mode)
                os.fsync(out)
            finally:
                os.close(out)
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=fd)
            raise
    finally:
        os.close(fd)


def apply(plan: BootPlan, files: list[GuestFile]) -> str:
    """Mount the disk of ``plan``, write ``files``, unmount; what was written."""
    root = Path(plan.mnt) / "files"
    root.mkdir(parents=True, exist_ok=True)
    mount_root(plan, root)
    try:
        mount_fstab(root, plan_devices(plan))
        for wanted in files:
            write_file(root, wanted)
    finally:
        run(["sync"])
        run(["umount", "--recursive", str(root)])
    return "wrote " + ", ".join(wanted.path for wanted in files)


REFUSED = 2  # exit status: a path the guest's tree refuses (a symlink on the way, ...)


def main(argv: list[str]) -> None:
    """Entry point: ``disk_files <plan.json>``, the files as JSON on stdin."""
    files = [GuestFile.from_json(item) for item in json.load(sys.stdin)]
    try:
        detail = apply(BootPlan.load(Path(argv[0])), files)
    except InvalidInputError as error:
        print(error.message, file=sys.stderr)
        sys.exit(REFUSED)
    print(json.dumps({"detail": detail}))


if __name__ == "__main__":
    main(sys.argv[1:])
