"""Parsing the host keys a rescue announces on its console."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cloudrescue.keys import load_public_keys
from cloudrescue.remote.hostkeys import (
    announcements_since,
    appended_since,
    newest_announcement,
    parse_console,
)


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


def test_a_bare_keys_block_never_joins_an_older_announcement(tmp_path: Path) -> None:
    old_line, old_fp = _keys(tmp_path, "old")
    forged_line, forged_fp = _keys(tmp_path, "forged")
    console = (
        _announce(old_line, old_fp)
        + "guest shutting down\n"
        + f"-----BEGIN SSH HOST KEY KEYS-----\n{forged_line}\n-----END SSH HOST KEY KEYS-----\n"
    )
    first, second = parse_console(console)
    assert first.fingerprints == {old_fp}
    assert second.fingerprints == {forged_fp}


def test_only_what_was_printed_after_the_baseline_counts(tmp_path: Path) -> None:
    line, fp = _keys(tmp_path, "rescue")
    baseline = "".join(f"guest line {n}\n" for n in range(40))
    assert appended_since(baseline + "new\n", baseline) == "new\n"
    cut = baseline.split("\n", 20)[-1]  # the console dropped its first 20 lines since
    assert appended_since(cut + "new\n", baseline) == "\nnew\n"
    assert appended_since("a fresh log\n", baseline) == "a fresh log\n"
    assert announcements_since(baseline + _announce(line, fp), baseline)[0].fingerprints == {fp}
    assert announcements_since(baseline + _announce(line, fp), baseline + _announce(line, fp)) == []


def test_cloud_inits_separator_line_keeps_the_two_blocks_one_announcement(tmp_path: Path) -> None:
    line, fp = _keys(tmp_path, "rescue")
    rsa_line, rsa_fp = _keys(tmp_path, "rescue-rsa")
    console = (
        "<14>Dec  1 10:00:00 ec2: #############################################################\n"
        "<14>Dec  1 10:00:00 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"<14>Dec  1 10:00:00 ec2: 256 {fp} root@rescue (ED25519)\n"
        "<14>Dec  1 10:00:00 ec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
        "<14>Dec  1 10:00:00 ec2: #############################################################\n"
        f"-----BEGIN SSH HOST KEY KEYS-----\n{line}\n{rsa_line}\n-----END SSH HOST KEY KEYS-----\n"
    )
    [announcement] = parse_console(console)
    assert announcement.fingerprints == {fp, rsa_fp}
