"""The serial console of an instance: systemd-style boot lines and cloud-init's host-key blocks.

The inits write it while they boot; the runtime appends to it too (a rescue's deferred
host-key block, what a guest prints while it shuts down), always in append mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cloudrescue.lab.system import run

EMERGENCY = """\
You are in emergency mode. After logging in, type "journalctl -xb" to view
system logs, "systemctl reboot" to reboot, "systemctl default" or "exit"
to boot into default mode.
Cannot open access to console, the root account is locked.
See sulogin(8) man page for more details.

Press Enter to continue."""


CLOUD_INIT = "Cloud-init v. 22.4.2"  # the version the lab's cloud-init lines name
BEGIN_FINGERPRINTS = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"


@dataclass(frozen=True)
class HostKeys:
    """What cloud-init announces of a system's host keys: ``ssh-keygen -l`` lines and the
    public key lines (JSON-able, so an init can hand them to the runtime to print later)."""

    fingerprints: list[str]
    keys: list[str]

    @classmethod
    def of(cls, public_keys: list[Path]) -> HostKeys:
        """The announcement of ``public_keys`` (``*.pub`` files)."""
        return cls(
            [run(["ssh-keygen", "-l", "-f", str(key)]).stdout.strip() for key in public_keys],
            [key.read_text().strip() for key in public_keys],
        )

    def to_json(self) -> dict[str, list[str]]:
        return {"fingerprints": list(self.fingerprints), "keys": list(self.keys)}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> HostKeys:
        return cls([str(line) for line in data["fingerprints"]], [str(k) for k in data["keys"]])


class Console:
    """Appends lines to ``console.log`` (opened once: usable after the init enters its root)."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = open(path, "a", buffering=1)  # noqa: SIM115 - lives until exec
        self._start = time.monotonic()

    def kernel(self, text: str) -> None:
        """A kernel-style line with the time since boot."""
        self.line(f"[{time.monotonic() - self._start:12.6f}] {text}")

    def line(self, text: str = "") -> None:
        """One raw line."""
        self._file.write(text + "\n")

    def ok(self, text: str) -> None:
        """``[  OK  ] text``."""
        self.line(f"[  OK  ] {text}")

    def failed(self, text: str) -> None:
        """``[FAILED] text``."""
        self.line(f"[FAILED] {text}")

    def cloud_init(self, text: str) -> None:
        """A line cloud-init writes through syslog to the console."""
        stamp = time.strftime("%b %d %H:%M:%S")
        self.line(f"<14>{stamp} cloud-init: {text}")

    def host_keys(self, public_keys: list[Path]) -> None:
        """cloud-init's fingerprint and key blocks for ``public_keys`` (``*.pub`` files)."""
        self.announce(HostKeys.of(public_keys))

    def announce(self, keys: HostKeys, *, fingerprints: bool = True) -> None:
        """cloud-init's blocks for ``keys``: the fingerprints (through syslog, framed by
        ``#`` lines), then the public keys; only the keys block when ``fingerprints`` is
        False (what a guest printing a bare block shows)."""
        if fingerprints:
            self.cloud_init("#" * 61)
            self.cloud_init(BEGIN_FINGERPRINTS)
            for line in keys.fingerprints:
                self.cloud_init(line)
            self.cloud_init("-----END SSH HOST KEY FINGERPRINTS-----")
            self.cloud_init("#" * 61)
        self.line(BEGIN_KEYS)
        for line in keys.keys:
            self.line(line)
        self.line("-----END SSH HOST KEY KEYS-----")

    def close(self) -> None:
        """Flush and close the log."""
        self._file.close()
