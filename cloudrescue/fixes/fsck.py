"""Check (and only when asked, repair) the instance's filesystem before it is mounted.

Read-only by default: ``e2fsck -f -n``, ``xfs_repair -n``, ``btrfs check --readonly``.
``repair=True`` runs ``e2fsck -f -p`` (then ``-y`` if preening is not enough) or, when
``xfs_repair -n`` finds something, ``xfs_repair``; an XFS log is zeroed (``xfs_repair -L``,
losing its latest metadata changes) only with ``zero_log=True``. btrfs is never repaired
here: ``btrfs check --repair`` can make things worse and is left to a person. The device
must not be mounted.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudrescue.disks.commands import COMMAND_NOT_FOUND, run_tool
from cloudrescue.errors import DiskError, InvalidInputError
from cloudrescue.remote.base import CommandResult, Host

EXT_TYPES = frozenset({"ext2", "ext3", "ext4"})
E2FSCK_CORRECTED = 1 | 2
E2FSCK_UNCORRECTED = 4
XFS_DIRTY_LOG = 2
FSCK_TIMEOUT = 3600.0


@dataclass(frozen=True)
class FsckReport:
    """What checking (or repairing) one filesystem found."""

    device: str
    fstype: str
    commands: tuple[tuple[str, ...], ...]
    exit_code: int
    clean: bool
    repaired: bool
    output: str
    advice: str | None = None


def _run(host: Host, argv: list[str]) -> CommandResult:
    result = run_tool(host, argv, check=False, timeout=FSCK_TIMEOUT)
    if result.exit_code == COMMAND_NOT_FOUND:
        raise DiskError(f"{argv[0]} is not installed on {host.description}")
    return result


def repair_command(device: str, fstype: str) -> list[str]:
    """The command a repair of ``fstype`` starts with: ``e2fsck -f -p`` or ``xfs_repair``."""
    return ["xfs_repair", device] if fstype == "xfs" else ["e2fsck", "-f", "-p", device]


def _ext(host: Host, device: str, repair: bool) -> tuple[list[CommandResult], bool, bool]:
    if not repair:
        result = _run(host, ["e2fsck", "-f", "-n", device])
        return [result], result.exit_code == 0, False
    runs = [_run(host, repair_command(device, "ext4"))]
    if runs[-1].exit_code & E2FSCK_UNCORRECTED:
        runs.append(_run(host, ["e2fsck", "-f", "-y", device]))
    code = runs[-1].exit_code
    repaired = any(r.exit_code & E2FSCK_CORRECTED for r in runs)
    return runs, (code & ~E2FSCK_CORRECTED) == 0, repaired


def _xfs(
    host: Host, device: str, repair: bool, zero_log: bool
) -> tuple[list[CommandResult], bool, bool]:
    check = _run(host, ["xfs_repair", "-n", device])
    if not repair or check.exit_code == 0:  # xfs_repair exits 0 whether it fixed anything
        return [check], check.exit_code == 0, False
    runs = [check, _run(host, repair_command(device, "xfs"))]
    if runs[-1].exit_code == XFS_DIRTY_LOG and zero_log:
        runs.append(_run(host, ["xfs_repair", "-L", device]))
    return runs, runs[-1].exit_code == 0, runs[-1].exit_code == 0


def _advice(fstype: str, code: int, clean: bool, repair: bool) -> str | None:
    if clean:
        return None
    if fstype == "xfs" and code == XFS_DIRTY_LOG:
        return (
            "the XFS log holds changes not yet written: mount and unmount the filesystem to "
            "replay it, then check again; zero_log discards them (last resort)"
        )
    if not repair:
        return "errors found: run again with repair to fix them"
    return "errors remain after the repair: look at the output before going further"


def _ensure_unmounted(host: Host, device: str) -> None:
    result = run_tool(host, ["findmnt", "-n", "-o", "TARGET", "--source", device], check=False)
    if result.ok and result.stdout.strip():
        raise DiskError(
            f"{device} is mounted on {result.stdout.split()[0]}: check it unmounted",
            hint="run the check before mounting the instance's disk",
        )


def check_filesystem(
    host: Host, device: str, fstype: str, *, repair: bool = False, zero_log: bool = False
) -> FsckReport:
    """Check ``device`` (read-only unless ``repair``) and report what the checker said."""
    if zero_log and (fstype != "xfs" or not repair):
        raise InvalidInputError("zero_log only applies to repairing an XFS filesystem")
    if fstype == "btrfs" and repair:
        raise InvalidInputError(
            "cloudrescue does not run `btrfs check --repair` (it can destroy data)",
            hint="check read-only, then decide with the btrfs documentation",
        )
    _ensure_unmounted(host, device)
    if fstype in EXT_TYPES:
        runs, clean, repaired = _ext(host, device, repair)
    elif fstype == "xfs":
        runs, clean, repaired = _xfs(host, device, repair, zero_log)
    elif fstype == "btrfs":
        result = _run(host, ["btrfs", "check", "--readonly", device])
        runs, clean, repaired = [result], result.ok, False
    else:
        raise InvalidInputError(f"no checker for {fstype!r} (ext2/3/4, xfs, btrfs)")
    last = runs[-1]
    return FsckReport(
        device=device,
        fstype=fstype,
        commands=tuple(r.argv for r in runs),
        exit_code=last.exit_code,
        clean=clean,
        repaired=repaired,
        output="\n".join((r.stdout + r.stderr).strip() for r in runs),
        advice=_advice(fstype, last.exit_code, clean, repair),
    )
