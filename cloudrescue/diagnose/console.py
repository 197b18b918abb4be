"""The console log's last boot, and what it states: the interfaces' addresses (cloud-init's
``ci-info`` table), the operating system's name, whether sshd started.

Nova's console log holds every boot since the instance was created (up to what it keeps): a
boot starts at the kernel's ``[    0.000000] Linux version ...`` line, or at the firmware's
first line before it (SeaBIOS, iPXE, OVMF), which also starts a boot that never reached a
kernel. Only the last boot says
why the instance is unreachable now; what an earlier boot printed (an emergency mode since
repaired) is history. The guest writes all of it: a line is evidence of what the guest said,
nothing more.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cloudrescue.playbook.symptoms import MAX_LINE

MAX_TEXT = 8 * 1024 * 1024
"""Only the last this many characters of a console log are read (nova keeps less)."""
BOOT_START = re.compile(r"^\[\s*\d+\.\d+\]\s+Linux version \S+")
FIRMWARE_START = re.compile(r"^(SeaBIOS \(version |iPXE \(|BdsDxe: |Booting from (Hard Disk|ROM))")
"""The firmware's first lines (SeaBIOS, iPXE, OVMF): a boot starts there when the kernel's
start line follows, and a reboot that never reached a kernel starts a boot of its own."""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CI_INFO_ROW = re.compile(
    r"ci-info: \|\s*(?P<device>[^|\s]+)\s*\|\s*(?P<up>True|False)\s*\|\s*(?P<address>[^|]*?)\s*"
    r"\|\s*(?P<mask>[^|]*?)\s*\|\s*(?P<scope>[^|]*?)\s*\|\s*(?P<hw>[^|]*?)\s*\|"
)
SSHD_STARTED = re.compile(
    r"Started (ssh|sshd)\.service|Started OpenBSD Secure Shell server|Started OpenSSH server "
    r"daemon|Starting sshd.*\bOK\b"
)
KEYS_TABLE = re.compile(
    r"ci-info: \++\s*Authorized keys from (?P<file>\S+) for user (?P<user>[a-z_][a-z0-9_.-]{0,31})"
    r"\s*\+|no authorized SSH keys fingerprints found for user (?P<none>[a-z_][a-z0-9_.-]{0,31})\."
)
"""cloud-init's table of a user's authorized keys (``ssh_authkey_fingerprints``, at an
instance's first boot): the user the cloud's key was given to."""
LOGIN_PROMPT = re.compile(r"^\S+ login: ?$")
LOGIN_BANNER = re.compile(r"^(?P<name>\S.*?) \S+ (ttyS|tty|hvc|xvc)\d+$")
WELCOME = re.compile(r"Welcome to (?P<name>.+?)!$")
# The cloud images' default user by the operating system's name (a word of it, any case),
# most specific first: what a key is checked for when --user is not given.
USERS_BY_OS: tuple[tuple[str, str], ...] = (
    ("ubuntu", "ubuntu"),
    ("debian", "debian"),
    ("rocky", "rocky"),
    ("almalinux", "almalinux"),
    ("centos stream", "cloud-user"),
    ("centos", "centos"),
    ("fedora", "fedora"),
    ("red hat", "cloud-user"),
    ("amazon linux", "ec2-user"),
    ("arch linux", "arch"),
    ("freebsd", "freebsd"),
)


@dataclass(frozen=True)
class ConsoleLine:
    """A line of the console log: its 1-based number in the log as read, and its text
    (control characters kept, ANSI colours removed, cut to ``MAX_LINE`` characters)."""

    number: int
    text: str


@dataclass(frozen=True)
class InterfaceAddress:
    """One row of cloud-init's ``ci-info`` network table (the line it is on)."""

    device: str
    up: bool
    address: str | None  # None: '.', no address
    scope: str
    line: ConsoleLine

    @property
    def ipv4(self) -> ipaddress.IPv4Address | None:
        """The address when it is an IPv4 one."""
        if self.address is None:
            return None
        try:
            found = ipaddress.ip_address(self.address.split("/")[0])
        except ValueError:
            return None
        return found if isinstance(found, ipaddress.IPv4Address) else None


@dataclass(frozen=True)
class Boot:
    """The last boot of a console log: its lines, and where it starts in the log."""

    lines: tuple[ConsoleLine, ...]
    total: int  # lines in the whole log as read
    boots: int  # boots the log shows (0: no kernel start line: the whole log is taken)
    key_user: tuple[str, ConsoleLine] | None = None  # ``keys_user`` of the whole log

    @property
    def start(self) -> int | None:
        """The number of the boot's first line (None: the log is empty)."""
        return self.lines[0].number if self.lines else None

    def interfaces(self) -> list[InterfaceAddress]:
        """The ``ci-info`` rows of the boot, loopback left out."""
        rows: list[InterfaceAddress] = []
        for line in self.lines:
            found = CI_INFO_ROW.search(line.text)
            if found is None or found["device"] == "lo":
                continue
            address = found["address"].strip()
            rows.append(
                InterfaceAddress(
                    device=found["device"],
                    up=found["up"] == "True",
                    address=None if address in ("", ".") else address,
                    scope=found["scope"].strip(),
                    line=line,
                )
            )
        return rows

    def sshd_started(self) -> ConsoleLine | None:
        """The line that says sshd started (or a login prompt), if the boot has one."""
        for line in self.lines:
            if SSHD_STARTED.search(line.text):
                return line
        return None

    def went_on(self) -> ConsoleLine | None:
        """The boot's first line that shows it went on to be usable (sshd started, a login
        prompt): a cause that stops a boot did not stop this one (a device that times out
        while systemd boots on, ``nofail``)."""
        for line in self.lines:
            if SSHD_STARTED.search(line.text) or LOGIN_PROMPT.match(line.text.strip()):
                return line
        return None

    def os_name(self) -> str | None:
        """The operating system's name, from the login banner or systemd's welcome."""
        for line in reversed(self.lines):
            found = LOGIN_BANNER.match(line.text.strip()) or WELCOME.search(line.text.strip())
            if found is not None:
                return found["name"].strip()
        return None

    def default_user(self) -> str | None:
        """The cloud image's default user for the OS the console names (``USERS_BY_OS``)."""
        name = (self.os_name() or "").lower()
        for word, user in USERS_BY_OS:
            if word in name:
                return user
        return None


def _clean(text: str) -> str:
    return ANSI.sub("", text).rstrip("\r")[:MAX_LINE]


def keys_user(lines: list[ConsoleLine]) -> tuple[str, ConsoleLine] | None:
    """The user of cloud-init's last table of authorized keys in the whole log (an earlier
    boot's too: the table is printed at the instance's first boot only), root's left out (a
    rescue system's cloud-init prints its own, for root), and the line saying it."""
    for line in reversed(lines):
        found = KEYS_TABLE.search(line.text)
        if found is not None and (found["user"] or found["none"]) != "root":
            return found["user"] or found["none"], line
    return None


def boot_starts(lines: list[ConsoleLine]) -> list[int]:
    """The index of each boot's first line: a firmware start line, or a kernel start line
    that no firmware line announced (firmware lines then a kernel line are one boot)."""
    starts: list[int] = []
    firmware = False  # the last start is a firmware line no kernel line followed yet
    for index, line in enumerate(lines):
        if BOOT_START.match(line.text):
            if not firmware:
                starts.append(index)
            firmware = False
        elif FIRMWARE_START.match(line.text):
            if not firmware:
                starts.append(index)
            firmware = True
    return starts


def last_boot(log: str) -> Boot:
    """The last boot of ``log`` (the whole log when no kernel start line is in it)."""
    text = log[-MAX_TEXT:]
    lines = [ConsoleLine(number, _clean(raw)) for number, raw in enumerate(text.split("\n"), 1)]
    if lines and not lines[-1].text:
        lines.pop()  # the log's final newline
    starts = boot_starts(lines)
    first = starts[-1] if starts else 0
    return Boot(tuple(lines[first:]), len(lines), len(starts), keys_user(lines))
