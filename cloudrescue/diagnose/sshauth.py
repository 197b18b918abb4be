"""Ask an SSH server what it accepts, without logging in.

Over a connected socket: the key exchange (the server's banner and host key), then the
``ssh-userauth`` service and two kinds of requests of RFC 4252 that authenticate nobody:

- ``none``: the server answers with the methods it offers (``publickey``,
  ``password``...); only ``publickey`` offered means a password will not help over SSH;
- ``publickey`` *without a signature* (section 7): "would you accept this key for this
  user?" The server answers ``PK_OK`` or a failure. Only the public key is sent; no private
  key is needed or used, nothing is signed, no session is opened.

A password is never sent. The server's host key is not checked against anything: nothing
secret goes to it (a user name and public keys).

The ``none`` request is paramiko's public API: ``Transport.auth_none`` raises
``BadAuthenticationType``, whose ``allowed_types`` are the methods the server listed (and
returns when the server let the user in). The ``publickey`` query has no public API:
paramiko's ``auth_publickey`` always signs (it needs the private key, and a signed request is
a login), and nothing else sends that request. So ``_Asker`` is a small ``AuthHandler`` of its
own for that question, installed on the transport once ``auth_none`` has opened the
``ssh-userauth`` service. It relies on three internals of paramiko (checked by
``_asker_works``, so another paramiko gives an ``error`` answer, not a crash): the
``AuthHandler`` class and its ``_handler_table`` (the messages the transport hands it) and
``Transport._send_message``; it writes only ``USERAUTH_REQUEST`` messages.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import paramiko
from paramiko.auth_handler import AuthHandler
from paramiko.common import (
    MSG_USERAUTH_BANNER,
    MSG_USERAUTH_FAILURE,
    MSG_USERAUTH_PK_OK,
    MSG_USERAUTH_SUCCESS,
    cMSG_USERAUTH_REQUEST,
)
from paramiko.message import Message

from cloudrescue.keys import PublicKey, fingerprint_of_blob

MAX_KEYS = 5
"""Keys asked about at most: sshd counts each refusal (``MaxAuthTries``, 6 by default)."""
RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
POLL = 0.05


@dataclass(frozen=True)
class KeyAnswer:
    """Whether the server would accept one public key (``source``: the file it came from)."""

    fingerprint: str
    key_type: str
    source: str
    accepted: bool


@dataclass(frozen=True)
class SshAnswers:
    """What an SSH server said, as far as the exchange went (``error``: where it stopped).

    ``methods`` is None when the server did not list them; ``open_login`` is True when it
    let the user in without any authentication (the ``none`` method succeeded).
    """

    banner: str | None = None
    host_key: str | None = None
    methods: tuple[str, ...] | None = None
    open_login: bool = False
    user: str | None = None
    keys: tuple[KeyAnswer, ...] = ()
    error: str | None = None


def _asker_works() -> bool:
    """Whether this paramiko has the internals ``_Asker`` relies on (module docstring)."""
    return hasattr(paramiko.Transport, "_send_message") and hasattr(
        AuthHandler, "_handler_table"
    )


class _Asker(AuthHandler):
    """The client side of the ``publickey`` query (see the module docstring): each request
    waits for its one answer."""

    def __init__(self, transport: paramiko.Transport) -> None:
        super().__init__(transport)
        self._answered = threading.Event()
        self._outcome = ""

    @property
    def _handler_table(self) -> dict[int, Callable[[Message], None]]:
        """What ``Transport`` hands this handler: the answers to its requests."""
        return {
            MSG_USERAUTH_SUCCESS: self._success,
            MSG_USERAUTH_FAILURE: self._failure,
            MSG_USERAUTH_BANNER: self._banner,
            MSG_USERAUTH_PK_OK: self._pk_ok,
        }

    def _success(self, message: Message) -> None:
        self.authenticated = True
        self._answer("success")

    def _failure(self, message: Message) -> None:
        self._answer("failure")

    def _banner(self, message: Message) -> None:
        self.banner = message.get_text()

    def _pk_ok(self, message: Message) -> None:
        self._answer("pk_ok")

    def _answer(self, outcome: str) -> None:
        self._outcome = outcome
        self._answered.set()

    def _wait(self, deadline: float, what: str) -> None:
        while not self._answered.wait(POLL):
            if not self.transport.is_active():
                raise paramiko.SSHException(f"the server closed the connection ({what})")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no answer to {what}")

    def would_accept(self, user: str, algorithm: str, blob: bytes, timeout: float) -> bool:
        """``publickey`` without a signature: whether the key would be accepted."""
        self._answered.clear()
        message = Message()
        message.add_byte(cMSG_USERAUTH_REQUEST)
        message.add_string(user)
        message.add_string("ssh-connection")
        message.add_string("publickey")
        message.add_boolean(False)  # a query: no signature follows
        message.add_string(algorithm)
        message.add_string(blob)
        with self.transport.lock:
            self.transport._send_message(message)  # type: ignore[attr-defined]
        self._wait(time.monotonic() + timeout, "the publickey query")
        return self._outcome == "pk_ok"


def _methods(transport: paramiko.Transport, user: str) -> tuple[bool, tuple[str, ...]]:
    """``none`` for ``user`` (paramiko's public ``auth_none``, within the transport's
    ``auth_timeout``): whether it let the user in, and the methods the server offers."""
    try:
        transport.auth_none(user)
    except paramiko.BadAuthenticationType as refused:
        return False, tuple(str(method) for method in refused.allowed_types)
    return True, ()


def _algorithm(key: PublicKey, transport: paramiko.Transport) -> str:
    """The signature algorithm to name for ``key``: the key type, or for RSA the best one
    the server lists in ``server-sig-algs`` (SHA-2 when it lists none)."""
    if key.key_type != "ssh-rsa":
        return key.key_type
    extensions = getattr(transport, "server_extensions", None) or {}
    listed = extensions.get("server-sig-algs", b"")
    offered = (listed.decode() if isinstance(listed, bytes) else str(listed)).split(",")
    for name in RSA_ALGORITHMS:
        if name in offered:
            return name
    return RSA_ALGORITHMS[0]


def ask_sshd(
    sock: socket.socket,
    *,
    user: str | None,
    keys: Sequence[tuple[str, PublicKey]],
    timeout: float,
) -> SshAnswers:
    """Ask the SSH server on ``sock`` its banner, host key, methods and, when it offers
    ``publickey`` and a ``user`` is given, whether it would accept each of ``keys``
    (``(source, key)``, the first ``MAX_KEYS``). Each exchange waits ``timeout`` seconds at
    most. Never raises for what the server does: ``error`` says where it stopped. The socket
    is closed at the end."""
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    answers = SshAnswers(user=user)
    try:
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            banner = transport.remote_version or None
            return SshAnswers(banner=banner, user=user, error=f"no SSH handshake: {error}")
        host_key = fingerprint_of_blob(transport.get_remote_server_key().asbytes())
        answers = SshAnswers(banner=transport.remote_version, host_key=host_key, user=user)
        try:
            open_login, methods = _methods(transport, user or "root")
        except (paramiko.SSHException, EOFError, OSError) as error:
            return _stopped(answers, error)
        answers = replace(answers, methods=methods, open_login=open_login)
        if open_login or user is None or "publickey" not in methods or not keys:
            return answers
        if not _asker_works():
            return replace(answers, error="this paramiko cannot ask about a key without "
                           "signing (its internals changed): the keys were not checked")
        asker = _Asker(transport)
        transport.auth_handler = asker
        found: list[KeyAnswer] = []
        for source, key in keys[:MAX_KEYS]:
            try:
                accepted = asker.would_accept(user, _algorithm(key, transport), key.blob, timeout)
            except (paramiko.SSHException, EOFError, OSError) as error:
                return _stopped(replace(answers, keys=tuple(found)), error)
            found.append(KeyAnswer(key.fingerprint, key.key_type, source, accepted))
            if accepted:
                break  # one key is enough: asking more only adds refusals to sshd's count
        return replace(answers, keys=tuple(found))
    finally:
        transport.close()


def _stopped(answers: SshAnswers, error: BaseException) -> SshAnswers:
    return replace(answers, error=str(error) or type(error).__name__)
