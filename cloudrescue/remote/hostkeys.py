"""Host keys a rescue system announced on its console, the way cloud-init prints them.

cloud-init writes, on the serial console, a block of fingerprints and a block of public keys::

    -----BEGIN SSH HOST KEY FINGERPRINTS-----
    256 SHA256:3o8t… root@rescue (ED25519)
    -----END SSH HOST KEY FINGERPRINTS-----
    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3… root@rescue
    -----END SSH HOST KEY KEYS-----

Lines may carry prefixes (``ec2: ``, timestamps). The console holds the blocks of every boot,
and a guest can print anything on it: only what the console printed after a baseline read
(taken once the instance is in RESCUE, its guest off) can be the rescue's
(``cloudrescue/cloud/console_log.py:appended_since`` finds it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cloudrescue.cloud.console_log import appended_since
from cloudrescue.errors import InvalidInputError
from cloudrescue.keys import KEY_TYPES, fingerprint_of_blob, parse_public_key

_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/]{43})(?:=*)(?:\s.*?\(([A-Z0-9-]+)\))?")
_BEGIN_FP = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
_END_FP = "-----END SSH HOST KEY FINGERPRINTS-----"
_BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
_END_KEYS = "-----END SSH HOST KEY KEYS-----"

# Host key algorithms paramiko may negotiate for each key type cloud-init names.
_ALGORITHMS_BY_LABEL = {
    "ED25519": ("ssh-ed25519",),
    "ECDSA": ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    "RSA": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
_LABEL_BY_KEY_TYPE = {
    "ssh-ed25519": "ED25519",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
}
ALL_HOST_KEY_ALGORITHMS = tuple(a for algs in _ALGORITHMS_BY_LABEL.values() for a in algs)


@dataclass(frozen=True)
class AnnouncedHostKeys:
    """Fingerprints (and key types) one boot announced."""

    fingerprints: frozenset[str]
    labels: frozenset[str] = field(default_factory=frozenset)

    def allowed_algorithms(self) -> tuple[str, ...]:
        """Host key algorithms whose key the console vouched for (all when unknown)."""
        if not self.labels or not self.labels <= set(_ALGORITHMS_BY_LABEL):
            return ALL_HOST_KEY_ALGORITHMS
        return tuple(a for label in sorted(self.labels) for a in _ALGORITHMS_BY_LABEL[label])


def _between(lines: list[str], start: int, end_marker: str) -> tuple[list[str], int]:
    body: list[str] = []
    index = start + 1
    while index < len(lines) and end_marker not in lines[index]:
        body.append(lines[index])
        index += 1
    return body, index


def _fingerprints(body: list[str]) -> tuple[set[str], set[str]]:
    prints: set[str] = set()
    labels: set[str] = set()
    for entry in body:
        match = _FINGERPRINT.search(entry)
        if match:
            prints.add(match.group(1))
            if match.group(2):
                labels.add(match.group(2))
    return prints, labels


def _keys(body: list[str]) -> tuple[set[str], set[str]]:
    prints: set[str] = set()
    labels: set[str] = set()
    for entry in body:
        for position, token in enumerate(fields := entry.split()):
            if token in KEY_TYPES and position + 1 < len(fields):
                try:
                    key = parse_public_key(f"{token} {fields[position + 1]}")
                except InvalidInputError:
                    continue  # a garbled console line is skipped
                prints.add(fingerprint_of_blob(key.blob))
                if token in _LABEL_BY_KEY_TYPE:
                    labels.add(_LABEL_BY_KEY_TYPE[token])
    return prints, labels


def _filler(line: str) -> bool:
    """A line cloud-init prints between its two blocks (``ec2: ####...``, empty)."""
    return not re.sub(r"^.*?ec2:", "", line).strip(" #\t")


def parse_console(console: str) -> list[AnnouncedHostKeys]:
    """Every host-key announcement in a console log, oldest first.

    A keys block belongs to the fingerprint block printed right before it (cloud-init prints
    the two back to back, with at most a ``####`` line between); a keys block anywhere else
    is an announcement of its own, so a bare keys block can never add keys to an older boot's
    announcement.
    """
    lines = console.splitlines()
    announcements: list[tuple[set[str], set[str]]] = []
    fingerprints_end: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if _BEGIN_FP in line:
            body, index = _between(lines, index, _END_FP)
            announcements.append(_fingerprints(body))
            fingerprints_end = index
        elif _BEGIN_KEYS in line:
            adjacent = fingerprints_end is not None and all(
                _filler(between) for between in lines[fingerprints_end + 1 : index]
            )
            body, index = _between(lines, index, _END_KEYS)
            prints, labels = _keys(body)
            if adjacent:
                announcements[-1][0].update(prints)
                announcements[-1][1].update(labels)
            else:
                announcements.append((prints, labels))
            fingerprints_end = None
        index += 1
    return [AnnouncedHostKeys(frozenset(p), frozenset(labels)) for p, labels in announcements if p]


def announcements_since(console: str, baseline: str) -> list[AnnouncedHostKeys]:
    """The announcements printed after ``baseline`` was read, oldest first."""
    return parse_console(appended_since(console, baseline))


def newest_announcement(console: str, *, before: str = "") -> AnnouncedHostKeys | None:
    """The newest announcement printed after ``before`` (an earlier read of the console)."""
    found = announcements_since(console, before)
    return found[-1] if found else None
