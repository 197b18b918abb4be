"""Reset a guest account's password in its ``/etc/shadow``, hashed here, never sent anywhere.

The hash is made on the machine running cloudrescue with libxcrypt (``libcrypt.so.1``,
through ctypes: Python's ``crypt`` module is deprecated): yescrypt (``$y$``) when the guest's
PAM ``pam_unix`` options or ``/etc/login.defs`` ``ENCRYPT_METHOD`` ask for it, else SHA-512
(``$6$``). Only the hash reaches the guest, and no diff of shadow is ever shown. The account
is unlocked and its password no longer expired (``lastchg`` today, ``expire`` cleared).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import time
from dataclasses import dataclass
from functools import cache
from typing import Literal

from cloudrescue.errors import CloudRescueError, InvalidInputError
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change, GuestFS

HashMethod = Literal["yescrypt", "sha512"]
PREFIXES: dict[HashMethod, bytes] = {"yescrypt": b"$y$", "sha512": b"$6$"}
CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt
CRYPT_OUTPUT_SIZE = 384
PAM_FILES = (
    "/etc/pam.d/common-password",
    "/etc/pam.d/system-auth",
    "/etc/pam.d/password-auth",
)
SHADOW_FIELDS = 9
SECONDS_PER_DAY = 86400


class CryptUnavailableError(CloudRescueError):
    """libxcrypt is missing here, or cannot make the requested kind of hash."""


@cache
def _libcrypt() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        library = ctypes.CDLL(name)
    except OSError as error:
        raise CryptUnavailableError(
            f"cannot load libxcrypt ({name}): {error}",
            hint="install libcrypt1 (Debian) or libxcrypt (RHEL-like)",
        ) from error
    library.crypt_gensalt_rn.restype = ctypes.c_char_p
    library.crypt_gensalt_rn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    library.crypt_rn.restype = ctypes.c_char_p
    library.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return library


def gensalt(method: HashMethod) -> bytes:
    """A fresh setting string for ``method`` (random bytes from the OS, default cost)."""
    output = ctypes.create_string_buffer(CRYPT_OUTPUT_SIZE)
    setting = _libcrypt().crypt_gensalt_rn(PREFIXES[method], 0, None, 0, output, len(output))
    if not setting:
        raise CryptUnavailableError(f"this libxcrypt cannot make {method} hashes")
    return bytes(setting)


def crypt(password: bytes | bytearray, setting: bytes) -> bytes:
    """``crypt(3)`` of ``password`` with ``setting`` (a salt string or a whole hash)."""
    data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
    try:
        result = _libcrypt().crypt_rn(bytes(password), setting, data, CRYPT_DATA_SIZE)
        if not result or result.startswith(b"*"):
            raise CryptUnavailableError("libxcrypt refused to hash the password")
        return bytes(result)
    finally:
        ctypes.memset(data, 0, CRYPT_DATA_SIZE)


def verify(password: bytes | bytearray, hashed: str) -> bool:
    """Whether ``hashed`` is a hash of ``password`` (constant-time comparison)."""
    if not hashed.startswith("$"):
        return False
    try:
        return hmac.compare_digest(crypt(password, hashed.encode()), hashed.encode())
    except CryptUnavailableError:
        return False


def hash_password(password: bytes | bytearray, method: HashMethod) -> str:
    """A new ``method`` hash of ``password``, checked by hashing again (falls back to SHA-512)."""
    try:
        setting = gensalt(method)
    except CryptUnavailableError:
        if method == "sha512":
            raise
        setting = gensalt("sha512")
    hashed = crypt(password, setting).decode()
    if not verify(password, hashed):
        raise CryptUnavailableError("the new password hash does not verify")
    return hashed


def _pam_method(files: GuestFS) -> HashMethod | None:
    for path in PAM_FILES:
        for line in (files.read_text(path) or "").splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 3 or words[0] != "password":
                continue
            options = {word.lower() for word in words if "pam_unix.so" not in word}
            if not any(word.endswith("pam_unix.so") for word in words):
                continue
            if "yescrypt" in options:
                return "yescrypt"
            if "sha512" in options:
                return "sha512"
    return None


def hash_method(files: GuestFS) -> HashMethod:
    """The hash the guest itself would make: PAM's ``pam_unix`` option, else login.defs."""
    pam = _pam_method(files)
    if pam is not None:
        return pam
    for line in (files.read_text("/etc/login.defs") or "").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "ENCRYPT_METHOD":
            return "yescrypt" if words[1].upper() == "YESCRYPT" else "sha512"
    return "sha512"


@dataclass(frozen=True)
class ShadowEntry:
    """The fields of one shadow line that a reset looks at."""

    fields: list[str]

    @property
    def hashed(self) -> str:
        return self.fields[1]

    def usable(self, password: bytes | bytearray, method: HashMethod, today: int) -> bool:
        """Already the password, unlocked, of the wanted kind and not expired."""
        lastchg, max_days, expire = self.fields[2], self.fields[4], self.fields[7]
        expired = (
            not lastchg.isdigit()
            or int(lastchg) == 0
            or (max_days.isdigit() and int(lastchg) + int(max_days) < today)
            or expire != ""
        )
        wanted = PREFIXES[method].decode()
        right_kind = self.hashed.startswith(wanted) or (
            method == "yescrypt" and self.hashed.startswith("$6$")
        )
        return right_kind and not expired and verify(password, self.hashed)


def today() -> int:
    """Days since the epoch (``/etc/shadow``'s unit), now."""
    return int(time.time()) // SECONDS_PER_DAY


def _passwd_uses_shadow(files: GuestFS, user: str) -> list[Change]:
    """Make the user's ``/etc/passwd`` password field ``x`` so shadow is consulted."""
    text = files.read_text("/etc/passwd") or ""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        fields = line.rstrip("\n").split(":")
        if len(fields) >= 7 and fields[0] == user and fields[1] != "x":
            fields[1] = "x"
            lines[index] = ":".join(fields) + ("\n" if line.endswith("\n") else "")
            return files.write_file("/etc/passwd", "".join(lines).encode(), show_diff=False)
    return []


def reset_password(guest: Guest, user: str, password: str | bytearray) -> list[Change]:
    """Set ``user``'s password (root or any account in shadow), unlock it, clear expiry.

    ``InvalidInputError`` when the guest's shadow has no such user or the password is empty.
    Idempotent: nothing changes when the account already has this password and is usable.
    """
    files = guest.files
    secret = bytearray(password.encode() if isinstance(password, str) else password)
    try:
        if not secret or b"\n" in secret or b"\0" in secret:
            raise InvalidInputError("the new password must be non-empty, without NUL or newline")
        text = files.read_text("/etc/shadow")
        if text is None:
            raise InvalidInputError("the guest has no /etc/shadow")
        lines = text.splitlines(keepends=True)
        for index, line in enumerate(lines):
            fields = line.rstrip("\n").split(":")
            if fields[0] != user or len(fields) < 2:
                continue
            fields += [""] * (SHADOW_FIELDS - len(fields))
            method, day = hash_method(files), today()
            if ShadowEntry(fields).usable(secret, method, day):
                return _passwd_uses_shadow(files, user)
            fields[1] = hash_password(secret, method)
            fields[2] = str(day)
            fields[7] = ""
            lines[index] = ":".join(fields) + ("\n" if line.endswith("\n") else "")
            changes = files.write_file("/etc/shadow", "".join(lines).encode(), show_diff=False)
            changes += _passwd_uses_shadow(files, user)
            return changes + files.request_selinux_relabel()
        raise InvalidInputError(f"the guest's /etc/shadow has no user {user!r}")
    finally:
        secret[:] = bytes(len(secret))
