"""Make sudo usable again: sudoers files that parse, with the modes and owner sudo demands.

The guest's own ``visudo -c -f`` runs in the sandbox (``fixes.sandbox``). A broken file in
``/etc/sudoers.d`` is moved aside (its backup name contains a dot, which sudo's
``@includedir`` skips), and so is one too large to be a sudoers file (a sparse 100 GB); a line
of ``/etc/sudoers`` itself that does not parse is commented out with the ``# cloudrescue:``
marker. Every sudoers file is made mode 0440, owned by root. FIFOs and devices in
``/etc/sudoers.d`` are left alone: sudo skips them.
"""

from __future__ import annotations

import re

from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.common import commented, guest_program
from cloudrescue.fixes.sandbox import cannot_run, run_in_guest
from cloudrescue.guest import Guest
from cloudrescue.guestfs import MAX_READ, Change, GuestFS

SUDOERS = "/etc/sudoers"
SUDOERS_D = "/etc/sudoers.d"
VISUDO_PATHS = ("/usr/sbin/visudo", "/sbin/visudo", "/usr/bin/visudo")
SUDOERS_MODE = 0o440
MAX_PASSES = 10
_ERRORS = (
    re.compile(r"^(?P<file>/\S+?):(?P<line>\d+):\d+: syntax error"),
    re.compile(r"^>>> (?P<file>/\S+): syntax error near line (?P<line>\d+) <<<"),
    re.compile(r"parse error in (?P<file>/\S+) near line (?P<line>\d+)"),
)


def included_files(files: GuestFS) -> list[str]:
    """Files of ``/etc/sudoers.d`` sudo reads: names without a dot, not ending in ``~``, and
    regular files (sudo skips FIFOs, devices and sockets there, and so do we)."""
    found = []
    for name in files.listdir(SUDOERS_D):
        if "." in name or name.endswith("~"):
            continue
        info = files.stat(f"{SUDOERS_D}/{name}")
        if info is not None and info.is_file:
            found.append(f"{SUDOERS_D}/{name}")
    return found


def _too_large(files: GuestFS, path: str) -> bool:
    """A "sudoers file" of gigabytes (sparse): visudo would read it without end."""
    info = files.stat(path)
    return info is not None and info.size > MAX_READ


def syntax_errors(output: str) -> list[tuple[str, int]]:
    """``(file, line)`` of every syntax error visudo reported."""
    found = []
    for line in output.splitlines():
        for pattern in _ERRORS:
            match = pattern.search(line.strip())
            if match:
                found.append((match.group("file"), int(match.group("line"))))
                break
    return found


def _visudo(files: GuestFS, program: str, path: str) -> list[tuple[str, int]] | None:
    """Syntax errors of ``path`` (``None`` when the guest's visudo cannot run here)."""
    result = run_in_guest(files, [program, "-c", "-f", path])
    if cannot_run(result):
        return None
    errors = syntax_errors(result.stdout + result.stderr)
    if not result.ok and not errors:
        errors = [(path, 0)]
    return errors


def _comment_main(files: GuestFS, lines: list[int]) -> list[Change]:
    text = (files.read_text(SUDOERS) or "").splitlines(keepends=True)
    for number in lines:
        if 0 < number <= len(text) and not text[number - 1].startswith("#"):
            text[number - 1] = commented(text[number - 1], "visudo syntax error")
    return files.write_file(SUDOERS, "".join(text).encode(), mode=SUDOERS_MODE, owner=(0, 0))


def repair_sudoers(guest: Guest) -> list[Change]:
    """Broken sudoers.d files moved aside, broken sudoers lines commented out, modes 0440
    root:root. Raises ``FixFailedError`` when visudo still rejects ``/etc/sudoers``."""
    files = guest.files
    info = files.stat(SUDOERS)
    if info is None:
        return []
    if not info.is_file or info.size > MAX_READ:
        raise FixFailedError(
            f"{SUDOERS} is not a regular file (or is too large): sudo refuses it, and it cannot "
            "be repaired line by line",
            hint="restore /etc/sudoers from the guest's sudo package or a backup",
        )
    changes: list[Change] = []
    for path in included_files(files):
        if _too_large(files, path):
            changes += files.remove(path)
    set_aside = bool(changes)
    for path in [SUDOERS, *included_files(files)]:
        changes += files.set_metadata(path, mode=SUDOERS_MODE, owner=(0, 0))
    program = guest_program(files, *VISUDO_PATHS)
    if program is None or (files.dry_run and set_aside):  # visudo would read what is still there
        return changes
    for path in included_files(files):
        errors = _visudo(files, program, path)
        if errors is None:
            return changes
        if errors:
            changes += files.remove(path)
    for _ in range(MAX_PASSES):
        errors = _visudo(files, program, SUDOERS) or []
        main = sorted({line for file, line in errors if file == SUDOERS and line > 0})
        if not main:
            break
        changes += _comment_main(files, main)
        if files.dry_run:
            break
    remaining = [] if files.dry_run else (_visudo(files, program, SUDOERS) or [])
    if remaining:
        raise FixFailedError(f"visudo still rejects {SUDOERS}: {remaining}")
    return changes
