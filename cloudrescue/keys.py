"""OpenSSH public keys: parse and validate before anything touches the cloud."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import InvalidInputError

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class PublicKey:
    """One validated public key."""

    key_type: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        """The key as an ``authorized_keys`` line."""
        encoded = base64.b64encode(self.blob).decode()
        return f"{self.key_type} {encoded} {self.comment}".rstrip()

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` fingerprint, as ``ssh-keygen -lf`` prints it."""
        return fingerprint_of_blob(self.blob)

    def same_key(self, other: PublicKey) -> bool:
        """Whether both are the same key material (comments ignored)."""
        return self.blob == other.blob


def fingerprint_of_blob(blob: bytes) -> str:
    """OpenSSH SHA256 fingerprint of a public key blob."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _read_ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise ValueError("truncated key blob")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated key blob")
    return blob[offset + 4 : end], end


def _rsa_bits(blob: bytes) -> int:
    _, offset = _read_ssh_string(blob, 0)
    _exponent, offset = _read_ssh_string(blob, offset)
    modulus, _ = _read_ssh_string(blob, offset)
    return int.from_bytes(modulus, "big").bit_length()


def parse_public_key(text: str, *, source: str = "key") -> PublicKey:
    """Parse one ``type base64 [comment]`` line; ``InvalidInputError`` says what is wrong."""
    fields = text.strip().split(None, 2)
    if len(fields) < 2:
        raise InvalidInputError(f"{source}: not an OpenSSH public key line")
    key_type, encoded = fields[0], fields[1]
    comment = fields[2] if len(fields) > 2 else ""
    if key_type == "ssh-dss":
        raise InvalidInputError(f"{source}: DSA keys are refused by current OpenSSH; use ed25519")
    if key_type not in KEY_TYPES:
        raise InvalidInputError(f"{source}: unknown key type {key_type!r}")
    try:
        blob = base64.b64decode(encoded, validate=True)
        embedded_type, _ = _read_ssh_string(blob, 0)
    except (binascii.Error, ValueError) as error:
        raise InvalidInputError(
            f"{source}: the key data is not valid base64 key material"
        ) from error
    embedded = embedded_type.decode(errors="replace")
    if embedded != key_type:
        raise InvalidInputError(f"{source}: the key says {key_type!r} but its data is {embedded!r}")
    if key_type == "ssh-rsa":
        try:
            bits = _rsa_bits(blob)
        except ValueError as error:
            raise InvalidInputError(f"{source}: truncated RSA key") from error
        if bits < MIN_RSA_BITS:
            raise InvalidInputError(
                f"{source}: RSA key of {bits} bits; at least {MIN_RSA_BITS} needed"
            )
    return PublicKey(key_type=key_type, blob=blob, comment=comment)


def load_public_keys(path: Path) -> list[PublicKey]:
    """All keys of a ``.pub`` or ``authorized_keys``-style file (comments and blanks skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InvalidInputError(f"{path}: no such key file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: cannot read the key file ({error})") from error
    if "PRIVATE KEY-----" in text:
        raise InvalidInputError(f"{path}: this is a private key; pass the .pub file")
    keys = [
        parse_public_key(line, source=f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise InvalidInputError(f"{path}: no public key in the file")
    return keys
