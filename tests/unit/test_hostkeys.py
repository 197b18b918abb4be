"""Parsing the host keys a rescue announces on its console."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cloudrescue.keys import load_public_keys
from cloudrescue.remote.hostkeys import newest_announcement, parse_console


def _keys(tmp_path: Path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(path)], check=True)
    line = path.with_suffix(".pub").read_text().strip()
    return line, load_public_keys(path.with_suffix(".pub"))[0].fingerprint


def _announce(line: str, fingerprint: str, prefix: str = "ec2: ") -> str:
    return (
        f"{prefix}-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"{prefix}256 {fingerprint} root@rescue (ED25519)\n"
        f"{prefix}-----END SSH HOST KEY FINGERPRINTS-----\n"
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        f"{line}\n"
        "-----END SSH HOST KEY KEYS-----\n"
    )


def test_blocks_parsed_with_prefixes(tmp_path: Path) -> None:
    line, fp = _keys(tmp_path, "a")
    [announcement] = parse_console("boot...\n" + _announce(line, fp) + "login:\n")
    assert announcement.fingerprints == {fp}
    assert announcement.labels == {"ED25519"}
    assert announcement.allowed_algorithms() == ("ssh-ed25519",)


def test_newest_announcement_skips_blocks_from_before_the_rescue(tmp_path: Path) -> None:
    old_line, old_fp = _keys(tmp_path, "old")
    new_line, new_fp = _keys(tmp_path, "new")
    before = _announce(old_line, old_fp)
    assert newest_announcement(before, before=before) is None
    after = before + "rescue boot\n" + _announce(new_line, new_fp, prefix="[  3.2] ")
    found = newest_announcement(after, before=before)
    assert found is not None and found.fingerprints == {new_fp}


def test_no_block_means_nothing_announced() -> None:
    assert parse_console("just a boot log\nlogin: ") == []
