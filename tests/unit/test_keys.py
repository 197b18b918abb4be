"""Public key validation, with keys made by the real ssh-keygen."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.keys import load_public_keys, parse_public_key


def keygen(directory: Path, name: str, *args: str) -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(path), *args], check=True
    )
    return path


def fingerprint(pub: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


@pytest.mark.parametrize("args", [("-t", "ed25519"), ("-t", "ecdsa"), ("-t", "rsa", "-b", "3072")])
def test_real_keys_parse_with_ssh_keygen_fingerprint(tmp_path: Path, args: tuple[str, ...]) -> None:
    private = keygen(tmp_path, "k", *args)
    [key] = load_public_keys(private.with_suffix(".pub"))
    assert key.fingerprint == fingerprint(private.with_suffix(".pub"))
    assert key.line.endswith("k@test")


def test_private_key_is_refused(tmp_path: Path) -> None:
    private = keygen(tmp_path, "k", "-t", "ed25519")
    with pytest.raises(InvalidInputError, match=r"private key; pass the \.pub file"):
        load_public_keys(private)


def test_short_rsa_is_refused(tmp_path: Path) -> None:
    private = keygen(tmp_path, "k", "-t", "rsa", "-b", "1024")
    with pytest.raises(InvalidInputError, match="1024 bits"):
        load_public_keys(private.with_suffix(".pub"))


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such key file"):
        load_public_keys(tmp_path / "nope.pub")
    empty = tmp_path / "empty.pub"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(InvalidInputError, match="no public key"):
        load_public_keys(empty)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ssh-ed25519", "not an OpenSSH public key line"),
        ("ssh-foo AAAA", "unknown key type"),
        ("ssh-ed25519 %%%notbase64", "not valid base64"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "DSA keys are refused"),
        (
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPvM536iKdS1fDFKGQcoc1ZnIH1jANQeufiH4RddXllH",
            "its data is",
        ),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_public_key(line)


def test_several_keys_in_one_file_report_line_numbers(tmp_path: Path) -> None:
    good = keygen(tmp_path, "a", "-t", "ed25519").with_suffix(".pub").read_text()
    bundle = tmp_path / "bundle.pub"
    bundle.write_text(good + "garbage here\n")
    with pytest.raises(InvalidInputError, match=r"bundle.pub:2"):
        load_public_keys(bundle)
