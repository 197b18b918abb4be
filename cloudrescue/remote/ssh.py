"""``Host`` over SSH (paramiko): one connection for the whole job, exec + SFTP.

The host key is checked against fingerprints the rescue announced on its console (see
``hostkeys``), or accepted on first use only when the user said ``--trust-host-key``. The
user's ``~/.ssh/known_hosts`` is never read or written.
"""

from __future__ import annotations

import errno
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudrescue.errors import ConnectionFailedError, HostKeyError
from cloudrescue.keys import fingerprint_of_blob
from cloudrescue.remote.base import (
    CommandResult,
    CommandTimeoutError,
    FileStat,
    TerminalRequest,
)
from cloudrescue.remote.hostkeys import ALL_HOST_KEY_ALGORITHMS, AnnouncedHostKeys

if TYPE_CHECKING:
    import paramiko

_CHUNK = 32768
KEEPALIVE_INTERVAL = 15
_PID_MARK = "cloudrescue-pid "


def _pid_of(out: bytes) -> int | None:
    first = out.split(b"\n", 1)[0].decode("ascii", "replace")
    number = first.removeprefix(_PID_MARK)
    return int(number) if first.startswith(_PID_MARK) and number.isdigit() else None


def _without_pid(out: bytes) -> bytes:
    return out.split(b"\n", 1)[1] if _pid_of(out) is not None else out


@dataclass(frozen=True)
class Endpoint:
    """Where to log in: ``user@host:port``."""

    host: str
    port: int = 22
    username: str = "root"

    @classmethod
    def parse(cls, text: str, *, default_user: str) -> Endpoint:
        """Parse ``[user@]host[:port]`` (IPv6 in brackets)."""
        user, _, rest = text.rpartition("@")
        host, port = rest, 22
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            if tail.startswith(":"):
                port = int(tail[1:])
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
            port = int(port_text)
        if not host.strip() or not 0 < port < 65536:
            raise ValueError(f"not [user@]host[:port]: {text!r}")
        return cls(host=host, port=port, username=user or default_user)

    def __str__(self) -> str:
        return f"{self.username}@{self.host}" + (f":{self.port}" if self.port != 22 else "")


@dataclass(frozen=True)
class HostKeyCheck:
    """How to judge the host key a server presents."""

    announced: AnnouncedHostKeys | None = None
    trust_on_first_use: bool = False

    def algorithms(self) -> tuple[str, ...]:
        return self.announced.allowed_algorithms() if self.announced else ALL_HOST_KEY_ALGORITHMS


@dataclass(frozen=True)
class JumpHost:
    """A bastion reached with the user's own key (agent or ``key_file``)."""

    endpoint: Endpoint
    key_file: Path | None = None
    host_key_fingerprint: str | None = None


def host_key_policy(check: HostKeyCheck, seen: list[str]) -> paramiko.MissingHostKeyPolicy:
    """paramiko's verdict on a presented host key: one the console announced, or (with
    ``trust_on_first_use`` and nothing announced) any; every key shown is added to ``seen``."""
    import paramiko

    class ConsoleVerified(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            fingerprint = fingerprint_of_blob(key.asbytes())
            seen.append(fingerprint)
            if check.announced and fingerprint in check.announced.fingerprints:
                return
            if check.trust_on_first_use and check.announced is None:
                return
            if check.announced is None:
                raise HostKeyError(
                    f"{hostname} presented host key {fingerprint} and the console log "
                    "announced none to check it against",
                    hint="check the fingerprint out of band, then pass --trust-host-key",
                )
            overridden = (
                " (--trust-host-key does not override what the console announced)"
                if check.trust_on_first_use
                else ""
            )
            raise HostKeyError(
                f"{hostname} presented host key {fingerprint}, which is not one of the "
                f"{len(check.announced.fingerprints)} the rescue announced on its console: "
                f"refusing to connect{overridden}"
            )

    return ConsoleVerified()


def _jump_policy(jump: JumpHost) -> paramiko.MissingHostKeyPolicy:
    import paramiko

    class PinnedFingerprint(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            fingerprint = fingerprint_of_blob(key.asbytes())
            if fingerprint != jump.host_key_fingerprint:
                raise HostKeyError(
                    f"jump host {hostname} presented host key {fingerprint}"
                    + (
                        f", expected {jump.host_key_fingerprint}"
                        if jump.host_key_fingerprint
                        else "; pass --jump-fingerprint with the fingerprint you expect"
                    )
                )

    return PinnedFingerprint()


def _disabled_host_key_algorithms(allowed: tuple[str, ...]) -> dict[str, list[str]]:
    return {"keys": [a for a in ALL_HOST_KEY_ALGORITHMS if a not in allowed]}


def _open_jump_channel(jump: JumpHost, target: Endpoint, timeout: float) -> tuple[Any, Any]:
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_jump_policy(jump))
    try:
        client.connect(
            jump.endpoint.host,
            port=jump.endpoint.port,
            username=jump.endpoint.username,
            key_filename=str(jump.key_file) if jump.key_file else None,
            look_for_keys=jump.key_file is None,
            allow_agent=True,
            timeout=timeout,
        )
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_channel(
            "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=timeout
        )
    except HostKeyError:
        client.close()
        raise
    except (OSError, paramiko.SSHException) as error:
        client.close()
        raise ConnectionFailedError(f"jump host {jump.endpoint}: {error}") from error
    return client, channel


class SSHHost:
    """A logged-in SSH session implementing ``cloudrescue.remote.base.Host``."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        endpoint: Endpoint,
        fingerprint: str,
        jump_client: paramiko.SSHClient | None = None,
    ) -> None:
        self._client = client
        self._jump_client = jump_client
        self._sftp: paramiko.SFTPClient | None = None
        self._pending_out: list[bytes] = []
        self.endpoint = endpoint
        self.host_key_fingerprint = fingerprint

    @property
    def description(self) -> str:
        return str(self.endpoint)

    def host_key_entry(self) -> str:
        """The server's host key as ``type base64`` (for a known_hosts line)."""
        transport = self._client.get_transport()
        if transport is None:
            raise ConnectionFailedError(f"the SSH connection to {self.endpoint} is closed")
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"

    def open_channel(self, command: str, *, terminal: TerminalRequest | None = None) -> Any:
        """A session channel running ``command``, with a PTY of ``terminal``'s type and size."""
        import paramiko

        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionFailedError(f"the SSH connection to {self.endpoint} was lost")
        try:
            transport.set_keepalive(KEEPALIVE_INTERVAL)  # a silent cut ends the channel too
            channel = transport.open_session()
            if terminal is not None:
                channel.get_pty(term=terminal.term, width=terminal.columns, height=terminal.lines)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionFailedError(
                f"the SSH connection to {self.endpoint} failed opening a session: {error}"
            ) from error
        return channel

    def close(self) -> None:
        """Close SFTP, the session and the jump session."""
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()
        if self._jump_client is not None:
            self._jump_client.close()

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        import paramiko

        full = [*(["env", *(f"{k}={v}" for k, v in env.items())] if env else []), *argv]
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionFailedError(f"the SSH connection to {self.endpoint} was lost")
        command = shlex.join(full)
        if timeout is not None:  # learn the remote pid, to kill the command if it overruns
            command = f"printf '{_PID_MARK}%s\\n' $$ && exec {command}"
        try:
            channel = transport.open_session()
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            finished = self._collect(channel, timeout)
            if finished is None:
                self._kill_overrun(channel)
                raise CommandTimeoutError(argv, timeout or 0, self.description)
            out, err = finished
            code = channel.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionFailedError(
                f"the SSH connection to {self.endpoint} failed during `{argv[0]}`: {error}"
            ) from error
        if timeout is not None:
            out = _without_pid(out)
        result = CommandResult(
            tuple(argv), code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
        return result.check() if check else result

    def _kill_overrun(self, channel: Any) -> None:
        """Kill the command a timed-out channel still runs (closing it would not)."""
        pid = _pid_of(b"".join(self._pending_out))
        channel.close()
        if pid is not None:
            script = f"kill -TERM {pid} 2>/dev/null; sleep 2; kill -KILL {pid} 2>/dev/null; true"
            self.run(["sh", "-c", script], check=False)

    def _collect(self, channel: Any, timeout: float | None) -> tuple[bytes, bytes] | None:
        """Read stdout and stderr until the command exits (polling both, so neither blocks);
        ``None`` when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[bytes] = []
        err: list[bytes] = []
        self._pending_out = out
        while True:
            if channel.recv_ready():
                out.append(channel.recv(_CHUNK))
            elif channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_CHUNK))
            elif channel.exit_status_ready() and (channel.eof_received or channel.closed):
                return b"".join(out), b"".join(err)
            elif deadline is not None and time.monotonic() > deadline:
                return None
            else:
                time.sleep(0.002)

    # -- files (SFTP) -----------------------------------------------------------------------
    # A file error stays an OSError (GuestFS knows what ENOENT means); a connection that ends
    # mid-operation (EOFError, an SSH protocol error) is ConnectionFailedError, like commands.

    @contextmanager
    def _connection(self, what: str, path: str) -> Iterator[None]:
        import paramiko

        try:
            yield
        except OSError as error:
            if error.errno is not None:
                raise  # the server's answer about the file
            raise self._lost(what, path, error) from error  # "Socket is closed"
        except (paramiko.SSHException, EOFError) as error:
            raise self._lost(what, path, error) from error

    def _lost(self, what: str, path: str, error: BaseException) -> ConnectionFailedError:
        return ConnectionFailedError(
            f"the SSH connection to {self.endpoint} failed during {what} {path}: "
            f"{error or type(error).__name__}"
        )

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            with self._connection("SFTP start", ""):
                self._sftp = self._client.open_sftp()
        return self._sftp

    def lstat(self, path: str) -> FileStat | None:
        with self._connection("lstat", path):
            try:
                attrs = self.sftp.lstat(path)
            except FileNotFoundError:
                return None
            except OSError as error:
                if error.errno == errno.ENOENT:
                    return None
                raise
        return FileStat(
            mode=attrs.st_mode or 0,
            uid=attrs.st_uid or 0,
            gid=attrs.st_gid or 0,
            size=attrs.st_size or 0,
            mtime=float(attrs.st_mtime or 0),
        )

    def readlink(self, path: str) -> str:
        with self._connection("readlink", path):
            target = self.sftp.readlink(path)
        if target is None:
            raise OSError(errno.EINVAL, f"not a symlink: {path}")
        return target

    def listdir(self, path: str) -> list[str]:
        with self._connection("listdir", path):
            return self.sftp.listdir(path)

    def read_file(self, path: str) -> bytes:
        # No prefetch(): its reader thread is paramiko's, and a connection cut mid-read made it
        # die with a traceback on stderr (seen in the faults matrix's ssh-cut-mid-fix).
        with self._connection("reading", path), self.sftp.open(path, "rb") as handle:
            return handle.read()

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        with self._connection("writing", path), self.sftp.open(path, "wb") as handle:
            handle.chmod(mode)
            handle.write(data)

    def fsync(self, path: str) -> None:
        self.run(["sync", "--", path])

    def rename(self, source: str, target: str) -> None:
        with self._connection("renaming", source):
            self.sftp.posix_rename(source, target)

    def mkdir(self, path: str, mode: int) -> None:
        with self._connection("mkdir", path):
            self.sftp.mkdir(path, mode)
            self.sftp.chmod(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        with self._connection("chmod", path):
            self.sftp.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        with self._connection("chown", path):
            self.sftp.chown(path, uid, gid)

    def unlink(self, path: str) -> None:
        with self._connection("unlink", path):
            self.sftp.remove(path)

    def symlink(self, target: str, path: str) -> None:
        with self._connection("symlink", path):
            self.sftp.symlink(target, path)


def connect(
    endpoint: Endpoint,
    *,
    password: str | None,
    host_keys: HostKeyCheck,
    key: paramiko.PKey | None = None,
    jump: JumpHost | None = None,
    wait_seconds: float = 180.0,
    auth_grace_seconds: float = 45.0,
    on_retry: Callable[[str], None] | None = None,
) -> SSHHost:
    """Log in with a password (or ``key``), retrying while sshd comes up; verify the host key.

    Connection refusals and timeouts are retried for ``wait_seconds``; a refused password is
    retried for ``auth_grace_seconds`` (the rescue may set it after sshd starts), then fails.
    Host key mismatches fail at once.
    """
    import paramiko

    started = time.monotonic()
    first_auth_failure: float | None = None
    attempt = 0
    while True:
        attempt += 1
        seen: list[str] = []
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(host_key_policy(host_keys, seen))
        jump_client = None
        try:
            sock = None
            if jump is not None:
                jump_client, sock = _open_jump_channel(jump, endpoint, timeout=15)
            client.connect(
                endpoint.host,
                port=endpoint.port,
                username=endpoint.username,
                password=password,
                pkey=key,
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
                banner_timeout=15,
                auth_timeout=15,
                sock=sock,
                disabled_algorithms=_disabled_host_key_algorithms(host_keys.algorithms()),
            )
            return SSHHost(client, endpoint, seen[-1] if seen else "", jump_client)
        except HostKeyError:
            client.close()
            if jump_client is not None:
                jump_client.close()
            raise
        except paramiko.AuthenticationException as error:
            client.close()
            if jump_client is not None:
                jump_client.close()
            now = time.monotonic()
            first_auth_failure = first_auth_failure or now
            if now - first_auth_failure > auth_grace_seconds or now - started > wait_seconds:
                raise ConnectionFailedError(
                    f"{endpoint} refused the rescue password ({error})"
                ) from error
            reason = "password refused"
        except (OSError, paramiko.SSHException, EOFError) as error:
            client.close()
            if jump_client is not None:
                jump_client.close()
            if time.monotonic() - started > wait_seconds:
                raise ConnectionFailedError(
                    f"cannot reach the rescue system at {endpoint} after "
                    f"{wait_seconds:.0f} s: {error or type(error).__name__}"
                ) from error
            reason = str(error) or type(error).__name__
        if on_retry:
            on_retry(f"attempt {attempt}: {reason}")
        time.sleep(min(0.25 * attempt, 3.0))
