"""The serial console of an instance: systemd-style boot lines and cloud-init's host-key blocks."""

from __future__ import annotations

import time
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


class Console:
    """Appends lines to ``console.log`` (opened once; stays usable after chroot)."""

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
        self.cloud_init("#" * 61)
        self.cloud_init("-----BEGIN SSH HOST KEY FINGERPRINTS-----")
        for key in public_keys:
            self.cloud_init(run(["ssh-keygen", "-l", "-f", str(key)]).stdout.strip())
        self.cloud_init("-----END SSH HOST KEY FINGERPRINTS-----")
        self.cloud_init("#" * 61)
        self.line("-----BEGIN SSH HOST KEY KEYS-----")
        for key in public_keys:
            self.line(key.read_text().strip())
        self.line("-----END SSH HOST KEY KEYS-----")

    def close(self) -> None:
        """Flush and close the log."""
        self._file.close()
