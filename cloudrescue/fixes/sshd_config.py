"""Make the guest's sshd start again: a configuration ``sshd -t`` accepts, host keys, privsep dir.

The guest's own ``sshd -t`` runs in the sandbox (``fixes.sandbox``: its version judges its
own config, it cannot touch the rescue); every line it rejects, in ``sshd_config`` or an
``Include``'d file, is commented out with the ``# cloudrescue:`` marker, and sshd runs again
(bounded: it stops at the first file with errors). When the guest's sshd cannot run here, a
conservative parser flags only unknown keywords, keywords without a value and unbalanced
quotes. ``mode="default"`` first
restores the packaged default configuration. Missing host keys are made by the rescue's
``ssh-keygen`` in a temporary directory and copied in through ``GuestFS``. In a dry run sshd
runs once, read-only, and the parser covers the rest. sshd never runs on a configuration that
names a file it would block on or read without end (a FIFO, a device, a sparse 100 GB file):
such an ``Include``'d file is moved aside first (``sshd_config`` itself only by
``mode="default"``, which replaces it).

``allow_password_login`` lets one account log in with its password over SSH (cloud images
turn password logins off): a ``Match User`` block in a drop-in that sshd_config includes, else
at the end of sshd_config, then checked with the guest's own ``sshd -T`` (or, when it cannot
run here, with what ``sshd_settings`` reads of the configuration).

Every question about what the configuration says (which files it includes, the ports) goes
through ``cloudrescue.fixes.sshd_settings``, the one reader of the guest's sshd configuration.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from cloudrescue.disks.commands import run_tool
from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.common import MARKER, commented, guest_program, is_rhel_like
from cloudrescue.fixes.sandbox import cannot_run, run_in_guest
from cloudrescue.fixes.sshd_settings import (
    MAIN_CONFIG,
    ConfigSyntaxError,
    SshdConfig,
    config_lines,
    split_line,
)
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change, GuestFS, parse_group

SshdMode = Literal["comment", "default"]
SSHD_PATHS = ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd")
MAX_PASSES = 10
DEFAULT_PORT = 22
DEBIAN_DEFAULT = "/usr/share/openssh/sshd_config"
RHEL_DEFAULTS = ("/etc/ssh/sshd_config.rpmnew", "/usr/share/openssh/sshd_config")
RHEL_PRIVSEP_DIR = "/var/empty/sshd"
LOGIN_DROP_IN = "/etc/ssh/sshd_config.d/05-cloudrescue-password-{user}.conf"
SAFE_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
DEBIAN_DEFAULT_TEXT = """\
# sshd_config restored by cloudrescue (Debian/Ubuntu defaults)
Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""
RHEL_DEFAULT_TEXT = """\
# sshd_config restored by cloudrescue (RHEL-like defaults)
Include /etc/ssh/sshd_config.d/*.conf
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp /usr/libexec/openssh/sftp-server
"""
_KEYWORD_NAMES = """
    AcceptEnv AddressFamily AllowAgentForwarding AllowGroups AllowStreamLocalForwarding
    AllowTcpForwarding AllowUsers AuthenticationMethods AuthorizedKeysCommand
    AuthorizedKeysCommandRunAs AuthorizedKeysCommandUser AuthorizedKeysFile
    AuthorizedPrincipalsCommand AuthorizedPrincipalsCommandUser AuthorizedPrincipalsFile
    Banner CASignatureAlgorithms ChallengeResponseAuthentication ChannelTimeout
    ChrootDirectory Ciphers ClientAliveCountMax ClientAliveInterval Compression DebianBanner
    DenyGroups DenyUsers DisableForwarding DSAAuthentication ExposeAuthInfo FingerprintHash
    ForceCommand GatewayPorts GSSAPIAuthentication GSSAPICleanupCredentials
    GSSAPIEnablek5users GSSAPIKexAlgorithms GSSAPIKeyExchange GSSAPIStoreCredentialsOnRekey
    GSSAPIStrictAcceptorCheck HostbasedAcceptedAlgorithms HostbasedAcceptedKeyTypes
    HostbasedAuthentication HostbasedUsesNameFromPacketOnly HostCertificate HostKey
    HostKeyAgent HostKeyAlgorithms IgnoreRhosts IgnoreUserKnownHosts Include IPQoS
    KbdInteractiveAuthentication KerberosAuthentication KerberosGetAFSToken
    KerberosOrLocalPasswd KerberosTicketCleanup KerberosUseKuserok KexAlgorithms
    KeyRegenerationInterval ListenAddress LoginGraceTime LogLevel LogVerbose MACs Match
    MaxAuthTries MaxSessions MaxStartups ModuliFile PAMAuthenticationViaKbdInt
    PasswordAuthentication PerSourceMaxStartups PerSourceNetBlockSize PerSourcePenalties
    PerSourcePenaltyExemptList PermitEmptyPasswords PermitListen PermitOpen PermitRootLogin
    PermitTTY PermitTunnel PermitUserEnvironment PermitUserRC PidFile Port PrintLastLog
    PrintMotd Protocol PubkeyAcceptedAlgorithms PubkeyAcceptedKeyTypes PubkeyAuthentication
    PubkeyAuthOptions RDomain RefuseConnection RekeyLimit RequiredRSASize RevokedKeys
    RhostsAuthentication RhostsRSAAuthentication RSAAuthentication SecurityKeyProvider
    ServerKeyBits SetEnv ShowPatchLevel SkeyAuthentication SshdAuthPath SshdSessionPath
    StreamLocalBindMask StreamLocalBindUnlink StrictModes Subsystem SyslogFacility
    TCPKeepAlive TrustedUserCAKeys UnusedConnectionTimeout UseBlacklist UseDNS UseLogin
    UsePAM UsePrivilegeSeparation VersionAddendum X11DisplayOffset X11Forwarding
    X11UseLocalhost XAuthLocation
"""
KEYWORDS = frozenset(keyword.lower() for keyword in _KEYWORD_NAMES.split())
_LINE_ERROR = re.compile(r"^(?P<file>/[^:\s]+):? line (?P<line>\d+): (?P<message>.+)$")
_PRIVSEP = re.compile(r"Missing privilege separation directory: (?P<path>\S+)")


@dataclass(frozen=True)
class ConfigError:
    """A line sshd (or the fallback parser) rejects."""

    path: str
    line: int
    message: str


@dataclass(frozen=True)
class SshdCheck:
    """The outcome of one ``sshd -t``."""

    ran: bool
    ok: bool
    errors: tuple[ConfigError, ...]
    missing_host_keys: bool
    privsep_dir: str | None
    output: str


def parse_sshd_output(text: str) -> tuple[list[ConfigError], bool, str | None]:
    """Line errors, "no host keys" and a missing privsep dir from what ``sshd -t`` printed."""
    errors: list[ConfigError] = []
    for raw in text.splitlines():
        match = _LINE_ERROR.match(raw.strip())
        if match:
            errors.append(
                ConfigError(match.group("file"), int(match.group("line")), match.group("message"))
            )
    privsep = _PRIVSEP.search(text)
    return errors, "no hostkeys available" in text, privsep.group("path") if privsep else None


def unusable_inputs(files: GuestFS) -> tuple[str, ...]:
    """The files the guest's sshd would open that it cannot use: FIFOs, devices, sockets and
    files too large for a configuration. sshd blocks on them, or reads without end."""
    return SshdConfig.read(files).unusable


def _not_run(unusable: tuple[str, ...]) -> str:
    return (
        f"sshd not run: it would read {', '.join(unusable)}, which is not a regular file "
        "(or is too large): it would block or never end"
    )


def run_sshd_check(files: GuestFS) -> SshdCheck:
    """The guest's own ``sshd -t -f /etc/ssh/sshd_config``, in the sandbox (not run when it
    would read a FIFO, a device or a huge file: ``ran`` is false)."""
    program = guest_program(files, *SSHD_PATHS)
    if program is None:
        return SshdCheck(False, False, (), False, None, "the guest has no sshd binary")
    unusable = unusable_inputs(files)
    if unusable:
        return SshdCheck(False, False, (), False, None, _not_run(unusable))
    result = run_in_guest(files, [program, "-t", "-f", MAIN_CONFIG])
    output = (result.stderr + result.stdout).strip()
    if cannot_run(result):
        return SshdCheck(False, False, (), False, None, output)
    errors, no_keys, privsep = parse_sshd_output(output)
    return SshdCheck(True, result.ok, tuple(errors), no_keys, privsep, output)


# -- reading the configuration without sshd ---------------------------------------------------


def config_files(files: GuestFS, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Text of sshd_config and every file it includes (``overrides`` replace file contents)."""
    return SshdConfig.read(files, overrides).files


def static_errors(configs: dict[str, str]) -> list[ConfigError]:
    """Lines with an unknown keyword, no value or unbalanced quotes: what any sshd rejects."""
    errors = []
    for path, text in configs.items():
        for number, line in enumerate(config_lines(text), start=1):
            try:
                words = split_line(line)
            except ConfigSyntaxError as error:
                errors.append(ConfigError(path, number, str(error)))
                continue
            if words is None:
                continue
            if words.keyword.lower() not in KEYWORDS:
                message = f"Bad configuration option: {words.keyword}"
            elif not words.args:
                message = "missing argument."
            else:
                continue
            errors.append(ConfigError(path, number, message))
    return errors


def _listen_port(address: str) -> int | None:
    """The port of a ``ListenAddress`` (``host:port``, ``[v6]:port``; bare IPv6 has none)."""
    match = re.fullmatch(r"(?:\[[^\]]+\]|[^:\s]+):(\d+)", address)
    return int(match.group(1)) if match else None


def ssh_ports(files: GuestFS) -> list[int]:
    """The TCP ports the guest's sshd listens on (``Port`` and ``ListenAddress host:port``).

    Global lines only (``Port`` and ``ListenAddress`` are not allowed in a Match block); every
    ``Port`` counts even when each ``ListenAddress`` names its own port (a superset is what a
    firewall opening wants).
    """
    config = SshdConfig.read(files)
    ports = [int(port) for port in config.values("Port") if port.isdigit()]
    listen = config.setting("ListenAddress").directives
    listen_ports = [port for d in listen if d.args and (port := _listen_port(d.args[0]))]
    merged = dict.fromkeys([*(ports or [DEFAULT_PORT]), *listen_ports])
    return sorted(merged)


# -- repairing ---------------------------------------------------------------------------------


def _comment_lines(text: str, numbers: dict[int, str]) -> str:
    lines = config_lines(text)  # numbered as sshd numbers them
    for number, message in numbers.items():
        index = number - 1
        if 0 <= index < len(lines) and not lines[index].lstrip().startswith("#"):
            lines[index] = commented(lines[index], f"sshd rejected this line ({message})")
    return "\n".join(lines)


def _default_config(files: GuestFS) -> str:
    if is_rhel_like(files):
        for path in RHEL_DEFAULTS:
            text = files.read_text(path)
            if text:
                return text
        return RHEL_DEFAULT_TEXT
    return files.read_text(DEBIAN_DEFAULT) or DEBIAN_DEFAULT_TEXT


def _plan_fixes(errors: list[ConfigError], configs: dict[str, str]) -> dict[str, str]:
    by_file: dict[str, dict[int, str]] = {}
    for error in errors:
        by_file.setdefault(error.path, {})[error.line] = error.message
    planned = {}
    for path, numbers in by_file.items():
        if path in configs:
            new = _comment_lines(configs[path], numbers)
            if new != configs[path]:
                planned[path] = new
    return planned


def _write(files: GuestFS, contents: dict[str, str]) -> list[Change]:
    changes: list[Change] = []
    for path, text in contents.items():
        changes += files.write_file(path, text.encode())
    return changes


def _set_aside_unusable(files: GuestFS, mode: SshdMode) -> list[Change]:
    """Move aside what sshd would read and cannot (a FIFO or device as an Include'd file:
    sshd would hang at boot); sshd_config itself only in ``default`` mode, which replaces it.

    Raises ``FixFailedError`` when that is not enough (a comment-mode repair of an unusable
    sshd_config, or an ``Include`` that also takes the moved-aside name).
    """
    changes: list[Change] = []
    unusable = unusable_inputs(files)
    for path in unusable:
        if path == MAIN_CONFIG and mode == "comment":
            raise FixFailedError(
                f"{MAIN_CONFIG} is not a regular file sshd can read (or is too large): no line "
                "of it can be commented out",
                hint="restore the packaged configuration: --param mode=default",
            )
        changes += files.remove(path)
    if unusable and unusable_inputs(files):
        raise FixFailedError(_not_run(unusable_inputs(files)))
    return changes


def _dry_run(files: GuestFS, mode: SshdMode, *, run_sshd: bool) -> list[Change]:
    """The changes a repair would make; ``run_sshd=False`` when files it would set aside are
    still there (a dry run moves nothing): sshd would read them."""
    planned: dict[str, str] = {}
    if mode == "default":
        planned[MAIN_CONFIG] = _default_config(files)
    configs = config_files(files, planned)
    errors = static_errors(configs)
    if mode == "comment" and run_sshd:
        errors += list(run_sshd_check(files).errors)
    planned.update(_plan_fixes(errors, config_files(files, planned)))
    changes = _write(files, planned)
    if not _host_key_files(files):
        changes.append(Change("create", "/etc/ssh", "would generate host keys (ssh-keygen -A)"))
    return changes + _privsep(files, None)


def _host_key_files(files: GuestFS) -> list[str]:
    return [
        name
        for name in files.listdir("/etc/ssh")
        if name.startswith("ssh_host_") and name.endswith("_key")
    ]


def generate_host_keys(files: GuestFS) -> list[Change]:
    """The missing host keys, made by the rescue's ``ssh-keygen -A`` in a temporary directory
    on the rescue and copied in through ``GuestFS`` (never written through the guest's own
    links); keys the guest has are kept."""
    host = files.host
    scratch = run_tool(host, ["mktemp", "-d", "-t", "cloudrescue-hostkeys.XXXXXXXX"]).stdout
    scratch = scratch.strip()
    try:
        host.mkdir(f"{scratch}/etc", 0o755)
        host.mkdir(f"{scratch}/etc/ssh", 0o755)
        result = host.run(["ssh-keygen", "-A", "-f", scratch], check=False)
        if not result.ok:
            raise FixFailedError(f"cannot generate host keys: {result.stderr.strip()}")
        present = set(files.listdir("/etc/ssh"))
        private_owner, private_mode = (0, 0), 0o600
        if "ssh_keys" in parse_group(files.read_text("/etc/group") or ""):
            private_owner, private_mode = (0, files.group_id("ssh_keys")), 0o640  # RHEL-likes
        changes: list[Change] = []
        for name in sorted(host.listdir(f"{scratch}/etc/ssh")):
            if name in present or not name.startswith("ssh_host_"):
                continue
            public = name.endswith(".pub")
            changes += files.write_file(
                f"/etc/ssh/{name}",
                host.read_file(f"{scratch}/etc/ssh/{name}"),
                mode=0o644 if public else private_mode,
                owner=(0, 0) if public else private_owner,
                show_diff=False,
            )
        return changes
    finally:
        run_tool(host, ["rm", "-rf", "--", scratch], check=False)


def _privsep(files: GuestFS, reported: str | None) -> list[Change]:
    """The privilege separation directory, when the guest's is persistent (not under /run)."""
    wanted = reported or (RHEL_PRIVSEP_DIR if is_rhel_like(files) else None)
    if wanted is None or wanted.startswith("/run/") or wanted.startswith("/var/run/"):
        return []
    changes: list[Change] = []
    parent = posixpath.dirname(wanted)
    if not files.exists(parent):
        changes += files.ensure_dir(parent, mode=0o755, owner=(0, 0))
    return changes + files.ensure_dir(wanted, mode=0o711, owner=(0, 0))


def repair_sshd_config(guest: Guest, *, mode: SshdMode = "comment") -> list[Change]:
    """Make ``sshd -t`` pass on the guest: rejected lines commented out (or the packaged
    default restored), missing host keys generated, a persistent privsep dir ensured.

    Raises ``FixFailedError`` when sshd still rejects the configuration after the repairs.
    """
    files = guest.files
    set_aside = _set_aside_unusable(files, mode)
    if files.dry_run:
        return set_aside + _dry_run(files, mode, run_sshd=not set_aside)
    changes: list[Change] = set_aside
    if mode == "default":
        changes += files.write_file(MAIN_CONFIG, _default_config(files).encode())
    check = run_sshd_check(files)
    for _ in range(MAX_PASSES):
        if not check.ran or not check.errors:
            break
        planned = _plan_fixes(list(check.errors), config_files(files))
        if not planned:
            break
        changes += _write(files, planned)
        check = run_sshd_check(files)
    if not check.ran:
        configs = config_files(files)
        changes += _write(files, _plan_fixes(static_errors(configs), configs))
    if not _host_key_files(files) or check.missing_host_keys:
        changes += generate_host_keys(files)
    changes += _privsep(files, check.privsep_dir)
    if check.ran:
        final = run_sshd_check(files)
        if final.errors:
            raise FixFailedError(
                "sshd still rejects the guest's configuration: "
                + "; ".join(f"{e.path} line {e.line}: {e.message}" for e in final.errors)
            )
    if changes:
        changes += files.request_selinux_relabel()
    return changes


# -- password logins ---------------------------------------------------------------------------


def _includes(files: GuestFS, path: str) -> bool:
    """Whether an unconditional ``Include`` of the guest's sshd configuration names ``path``."""
    return any(
        fnmatch.fnmatchcase(path, pattern)
        for include in SshdConfig.read(files).includes
        if include.is_global
        for pattern in include.patterns
    )


def _effective(files: GuestFS, user: str) -> dict[str, str] | None:
    """The guest's ``sshd -T`` settings for a login of ``user`` (None when sshd cannot tell)."""
    program = guest_program(files, *SSHD_PATHS)
    if program is None or unusable_inputs(files):
        return None
    spec = f"user={user},host=localhost,addr=127.0.0.1"
    result = run_in_guest(files, [program, "-T", "-f", MAIN_CONFIG, "-C", spec])
    if not result.ok:
        return None
    pairs = (line.split(None, 1) for line in result.stdout.splitlines() if " " in line)
    return {key.lower(): value.strip() for key, value in pairs}


# What sshd uses when the configuration does not say (``sshd -T`` spelling).
PASSWORD_LOGIN_DEFAULTS = {
    "passwordauthentication": "yes",
    "permitrootlogin": "without-password",
    "authenticationmethods": "any",
}


def _read_effective(files: GuestFS, user: str) -> dict[str, str] | None:
    """What ``_effective`` answers, from the configuration itself (when sshd cannot run);
    ``None`` when a Match block that cannot be evaluated could change the answer."""
    config = SshdConfig.read(files)
    settings: dict[str, str] = {}
    for keyword, default in PASSWORD_LOGIN_DEFAULTS.items():
        setting = config.setting(keyword, user=user)
        if not setting.certain:
            return None
        settings[keyword] = " ".join(setting.args).lower() if setting.args else default
    return settings


def _refusals(settings: dict[str, str], user: str) -> list[str]:
    """The ``sshd -T`` settings that still keep ``user`` from logging in with a password."""
    wanted = {"passwordauthentication": "yes"}
    if user == "root":
        wanted["permitrootlogin"] = "yes"
    refused = [
        f"{key} {settings.get(key)}" for key, value in wanted.items() if settings.get(key) != value
    ]
    methods = settings.get("authenticationmethods", "any")
    if methods != "any" and "password" not in methods:
        refused.append(f"authenticationmethods {methods}")
    return refused


def allow_password_login(guest: Guest, user: str) -> list[Change]:
    """Let ``user`` log in over SSH with a password (and root at all, for root). Idempotent.

    Raises ``FixFailedError`` when the guest's sshd still refuses it afterwards (an earlier
    ``Match`` block or ``AuthenticationMethods`` winning).
    """
    files = guest.files
    if not SAFE_USER.fullmatch(user):
        raise FixFailedError(f"cannot write an sshd Match block for the user name {user!r}")
    lines = [f"Match User {user}", "\tPasswordAuthentication yes"]
    if user == "root":
        lines.append("\tPermitRootLogin yes")
    block = "\n".join(lines) + "\n"
    drop_in = LOGIN_DROP_IN.format(user=user)
    changes: list[Change] = []
    if _includes(files, drop_in):
        if not files.exists(posixpath.dirname(drop_in)):
            changes += files.ensure_dir(posixpath.dirname(drop_in), mode=0o755, owner=(0, 0))
        header = f"{MARKER} password logins over SSH for {user} (reset-password --ssh)\n"
        changes += files.write_file(drop_in, (header + block).encode(), mode=0o644, owner=(0, 0))
    else:
        text = files.read_text(MAIN_CONFIG) or ""
        if block not in text:
            separator = "\n" if text and not text.endswith("\n") else ""
            changes += files.write_file(MAIN_CONFIG, f"{text}{separator}{block}".encode())
    settings = None if files.dry_run else _effective(files, user) or _read_effective(files, user)
    refused = _refusals(settings, user) if settings is not None else []
    if refused:
        raise FixFailedError(
            f"the guest's sshd still refuses password logins for {user}: {', '.join(refused)}"
        )
    if changes:
        changes += files.request_selinux_relabel()
    return changes
