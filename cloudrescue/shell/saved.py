"""What a later ``cloudrescue shell`` (or ``unrescue``) needs to take over a shell left running.

A shell kept in rescue (``Ctrl-] k``, a lost connection, a closed terminal) goes on in tmux on
the rescue system with the instance's disk mounted. Its record, in the state directory
(``shells/RUN.json`` and the login key ``shells/RUN.key``, both mode 0600, the directory
0700), says how to log in again (a key made for this run and authorised for root on the
rescue only, the host key fingerprint verified the first time), the stage and mountpoint, what
to undo to unmount the disk (the disk session's undo steps) and the listing taken on entry.
The record goes when the rescue ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudrescue.disks.teardown import UndoStep
from cloudrescue.errors import InvalidInputError
from cloudrescue.keys import PublicKey, parse_public_key
from cloudrescue.shell.changes import Entry, Listing

if TYPE_CHECKING:
    import paramiko

SHELLS = "shells"


@dataclass(frozen=True)
class SavedShell:
    """A shell left running on an instance's rescue system."""

    run_id: str
    server_id: str
    address: str
    fingerprint: str
    stage: str
    root: str
    chroot: bool
    undo: tuple[UndoStep, ...]
    before: Listing


def _directory(state_dir: Path) -> Path:
    path = state_dir / SHELLS
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def new_login_key(state_dir: Path, run_id: str) -> PublicKey:
    """Make the run's login key (ECDSA P-256, kept 0600) and return its public half."""
    import paramiko

    key = paramiko.ECDSAKey.generate(bits=256)
    text = io.StringIO()
    key.write_private_key(text)
    _write_private(_directory(state_dir) / f"{run_id}.key", text.getvalue().encode())
    return parse_public_key(f"{key.get_name()} {key.get_base64()} cloudrescue-shell-{run_id}")


def login_key(state_dir: Path, run_id: str) -> paramiko.PKey:
    """The run's login key, for logging in to its rescue again."""
    import paramiko

    path = _directory(state_dir) / f"{run_id}.key"
    try:
        return paramiko.ECDSAKey.from_private_key_file(str(path))
    except (OSError, paramiko.SSHException) as error:
        raise InvalidInputError(f"the login key of shell {run_id} is unreadable: {error}") from None


def save(state_dir: Path, shell: SavedShell) -> None:
    """Record ``shell`` (atomically, mode 0600)."""
    body: dict[str, Any] = dataclasses.asdict(shell)
    body["before"] = {
        "complete": shell.before.complete,
        "entries": {
            path: dataclasses.asdict(entry) for path, entry in shell.before.entries.items()
        },
    }
    data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogateescape")
    _write_private(_directory(state_dir) / f"{shell.run_id}.json", data)


def load(state_dir: Path, run_id: str) -> SavedShell | None:
    """The saved shell of ``run_id`` (``None`` when there is none or it is unreadable)."""
    path = state_dir / SHELLS / f"{run_id}.json"
    try:
        body = json.loads(path.read_bytes().decode("utf-8", "surrogateescape"))
        before = body["before"]
        return SavedShell(
            run_id=str(body["run_id"]),
            server_id=str(body["server_id"]),
            address=str(body["address"]),
            fingerprint=str(body["fingerprint"]),
            stage=str(body["stage"]),
            root=str(body["root"]),
            chroot=bool(body["chroot"]),
            undo=tuple(
                UndoStep(
                    kind=step["kind"],
                    target=step["target"],
                    argv=tuple(step["argv"]),
                    env=tuple((str(k), str(v)) for k, v in step["env"]),
                    recursive=bool(step["recursive"]),
                    failure_hint=str(step["failure_hint"]),
                )
                for step in body["undo"]
            ),
            before=Listing(
                {path: Entry(**entry) for path, entry in before["entries"].items()},
                complete=bool(before["complete"]),
            ),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(state_dir: Path, run_id: str) -> None:
    """Remove the record and the login key of ``run_id`` (when they exist)."""
    for suffix in ("json", "key"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / SHELLS / f"{run_id}.{suffix}").unlink()
