"""Probe the ports sshd should listen on: TCP first, then SSH when the port is open.

A TCP connection to each port tells one of:

- ``open``: something accepted it; the SSH answers follow (banner, host key, the methods
  offered, whether the keys would be accepted: ``sshauth.ask_sshd``);
- ``refused``: the address answered with a reset: the system is up, nothing listens;
- ``no-answer``: no answer within ``CONNECT_TIMEOUT`` seconds: a firewall drops the packets,
  or nothing is at the address;
- ``unreachable``: the network says no host or no route there;
- ``error``: any other failure to connect (its reason in ``detail``).

Timeouts are short: ``CONNECT_TIMEOUT`` (3 s) for the TCP connection, ``SSH_TIMEOUT`` (5 s)
for each SSH exchange (banner and key exchange, service request, each authentication
question). A port that stays silent costs 3 s; an open one well under a second.

``Prober`` takes its side effects as arguments: ``connect`` (``socket.create_connection``'s
signature), ``ask`` (``sshauth.ask_sshd``'s) and the ``clock``, so tests probe a local server,
or a fake that never answers, without monkeypatching.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from cloudrescue.diagnose.sshauth import SshAnswers, ask_sshd
from cloudrescue.keys import PublicKey

CONNECT_TIMEOUT = 3.0
SSH_TIMEOUT = 5.0
PortState = Literal["open", "refused", "no-answer", "unreachable", "error"]
UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
Connect = Callable[[tuple[str, int], float], socket.socket]
"""``connect((address, port), timeout)``: a connected socket (``socket.create_connection``)."""


class Ask(Protocol):
    """``sshauth.ask_sshd``'s signature."""

    def __call__(
        self,
        sock: socket.socket,
        *,
        user: str | None,
        keys: Sequence[tuple[str, PublicKey]],
        timeout: float,
    ) -> SshAnswers:
        """The SSH server's answers on ``sock``."""
        ...


@dataclass(frozen=True)
class PortProbe:
    """What one port of the instance's address answered, and in how many seconds."""

    address: str
    port: int
    state: PortState
    detail: str
    seconds: float
    ssh: SshAnswers | None = None

    @property
    def where(self) -> str:
        """``10.0.0.5:22`` (``[2001:db8::5]:22``)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def describe(self) -> str:
        """One line for people and evidence: ``10.0.0.5:22 refused the connection``."""
        return f"{self.where} {self.detail}"


class Probe(Protocol):
    """What the engine needs: probe one port, and ask sshd about ``user`` and ``keys``."""

    def __call__(
        self,
        address: str,
        port: int,
        *,
        user: str | None,
        keys: Sequence[tuple[str, PublicKey]],
    ) -> PortProbe:
        """The port's answers."""
        ...


def _connect(where: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(where, timeout=timeout)


@dataclass(frozen=True)
class Prober:
    """The real ``Probe``: TCP, then SSH (see the module docstring)."""

    connect: Connect = _connect
    ask: Ask = ask_sshd
    clock: Callable[[], float] = time.monotonic
    connect_timeout: float = CONNECT_TIMEOUT
    ssh_timeout: float = SSH_TIMEOUT

    def __call__(
        self,
        address: str,
        port: int,
        *,
        user: str | None,
        keys: Sequence[tuple[str, PublicKey]],
    ) -> PortProbe:
        start = self.clock()

        def result(state: PortState, detail: str, ssh: SshAnswers | None = None) -> PortProbe:
            return PortProbe(address, port, state, detail, round(self.clock() - start, 3), ssh)

        try:
            sock = self.connect((address, port), self.connect_timeout)
        except ConnectionRefusedError:
            return result("refused", "refused the connection")
        except TimeoutError:
            return result("no-answer", f"did not answer in {self.connect_timeout:g} s")
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            if error.errno in UNREACHABLE:
                return result("unreachable", f"is unreachable ({reason})")
            return result("error", f"could not be reached ({reason})")
        sock.settimeout(self.ssh_timeout)
        answers = self.ask(sock, user=user, keys=keys, timeout=self.ssh_timeout)
        return result("open", "accepted the connection", answers)
