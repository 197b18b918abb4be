"""Running host commands for the lab (argv lists only) and checking for root."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from cloudrescue.errors import LabError, PermissionRequiredError

LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}


def run(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; raise ``LabError`` with the command's last error line when it fails."""
    completed = subprocess.run(
        list(argv),
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env={**os.environ, **env} if env else None,
        timeout=timeout,
        check=False,
    )
    result = subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        detail = next((line for line in lines if "error" in line.lower()), lines[-1])
        raise LabError(f"`{' '.join(argv[:3])}` failed (status {result.returncode}): {detail}")
    return result


def private_mount_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` in a mount namespace of its own: whatever it
    mounts (an instance's disk to damage, a template to fill) vanishes with it."""
    return [
        "unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m", module, *args
    ]  # fmt: skip


def require_root(action: str) -> None:
    """Raise ``PermissionRequiredError`` unless running as root."""
    if os.geteuid() != 0:
        raise PermissionRequiredError(f"{action} needs root (run it with sudo)")
