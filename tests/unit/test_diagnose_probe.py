"""Probes of sshd's ports (issue 12), on this machine: a real SSH server (paramiko's) on a
local port for an open one, a closed local port for a refusal, and fake connections that time
out or find no route for the silent ones. The server sees every request: none logs in, none
carries a password or a signature."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import paramiko
import pytest

from cloudrescue.diagnose.probe import Prober
from cloudrescue.diagnose.sshauth import MAX_KEYS, ask_sshd
from cloudrescue.keys import PublicKey

HOST_KEY = paramiko.ECDSAKey.generate()


def public(key: paramiko.PKey) -> PublicKey:
    return PublicKey(key.get_name(), key.asbytes(), "test")


ALLOWED = paramiko.ECDSAKey.generate()
OTHER = paramiko.ECDSAKey.generate()
RSA = paramiko.RSAKey.generate(2048)


@dataclass
class Server(paramiko.ServerInterface):
    """An sshd: publickey (and password when asked) for ``user``, with ``accepted`` keys."""

    user: str = "debian"
    accepted: tuple[bytes, ...] = ()
    methods: str = "publickey"
    none_ok: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    def get_allowed_auths(self, username: str) -> str:
        return self.methods

    def check_auth_none(self, username: str) -> int:
        self.asked.append(("none", username))
        return paramiko.AUTH_SUCCESSFUL if self.none_ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.asked.append(("publickey", username))
        ok = username == self.user and key.asbytes() in self.accepted
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        self.asked.append(("password", username))
        return paramiko.AUTH_FAILED


@dataclass
class Listening:
    port: int
    server: Server


@pytest.fixture
def sshd() -> Iterator[Listening]:
    """An SSH server on a local port, one connection at a time, until the test ends."""
    interface = Server(accepted=(ALLOWED.asbytes(), RSA.asbytes()))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(HOST_KEY)
            transport.start_server(server=interface)
            while transport.is_active() and not stop.is_set():
                stop.wait(0.05)
            transport.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Listening(listener.getsockname()[1], interface)
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_an_open_port_gives_banner_host_key_methods_and_which_key_would_be_accepted(
    sshd: Listening,
) -> None:
    keys = [("other.pub", public(OTHER)), ("mine.pub", public(ALLOWED))]
    found = Prober()("127.0.0.1", sshd.port, user="debian", keys=keys)
    assert found.state == "open" and found.ssh is not None
    ssh = found.ssh
    assert ssh.banner is not None and ssh.banner.startswith("SSH-2.0-paramiko")
    assert ssh.host_key == public(HOST_KEY).fingerprint
    assert ssh.methods == ("publickey",) and not ssh.open_login and ssh.error is None
    assert [(k.source, k.accepted) for k in ssh.keys] == [("other.pub", False), ("mine.pub", True)]
    assert [method for method, _ in sshd.server.asked] == ["none", "publickey", "publickey"]


def test_rsa_keys_are_asked_about_with_a_sha2_algorithm(sshd: Listening) -> None:
    found = Prober()("127.0.0.1", sshd.port, user="debian", keys=[("rsa.pub", public(RSA))])
    assert found.ssh is not None and [k.accepted for k in found.ssh.keys] == [True]


def test_every_key_refused_for_the_user(sshd: Listening) -> None:
    keys = [("mine.pub", public(ALLOWED))]
    found = Prober()("127.0.0.1", sshd.port, user="ubuntu", keys=keys)
    assert found.ssh is not None and [k.accepted for k in found.ssh.keys] == [False]


def test_at_most_max_keys_are_asked_about(sshd: Listening) -> None:
    keys = [(f"k{n}.pub", public(OTHER)) for n in range(MAX_KEYS + 3)]
    found = Prober()("127.0.0.1", sshd.port, user="debian", keys=keys)
    assert found.ssh is not None and len(found.ssh.keys) == MAX_KEYS


def test_without_a_user_only_the_methods_are_asked(sshd: Listening) -> None:
    sshd.server.methods = "publickey,password"
    found = Prober()("127.0.0.1", sshd.port, user=None, keys=[("k.pub", public(ALLOWED))])
    assert found.ssh is not None
    assert found.ssh.methods == ("publickey", "password") and found.ssh.keys == ()
    assert sshd.server.asked == [("none", "root")]  # never a password


def test_a_server_that_lets_anyone_in_is_said_and_left_at_once(sshd: Listening) -> None:
    sshd.server.none_ok = True
    found = Prober()("127.0.0.1", sshd.port, user="debian", keys=[("k.pub", public(ALLOWED))])
    assert found.ssh is not None and found.ssh.open_login and found.ssh.keys == ()


def test_a_closed_port_refuses() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    found = Prober()("127.0.0.1", port, user="debian", keys=[])
    assert (found.state, found.ssh) == ("refused", None)
    assert found.describe() == f"127.0.0.1:{port} refused the connection"


def test_a_port_that_is_not_ssh_is_open_with_the_reason() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"220 smtp.example ESMTP\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    found = Prober(ssh_timeout=2)("127.0.0.1", listener.getsockname()[1], user=None, keys=[])
    thread.join(5)
    listener.close()
    assert found.state == "open" and found.ssh is not None
    assert found.ssh.error is not None and found.ssh.error.startswith("no SSH handshake")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_port_is_no_answer_after_the_connect_timeout() -> None:
    clock = Clock()
    asked: list[float] = []

    def never(where: tuple[str, int], timeout: float) -> socket.socket:
        asked.append(timeout)
        clock.now += timeout
        raise TimeoutError("timed out")

    found = Prober(connect=never, clock=clock, connect_timeout=1.5)(
        "198.51.100.7", 22, user=None, keys=[]
    )
    assert asked == [1.5]
    assert (found.state, found.seconds) == ("no-answer", 1.5)
    assert found.describe() == "198.51.100.7:22 did not answer in 1.5 s"


@pytest.mark.parametrize(
    ("number", "state"),
    [(errno.EHOSTUNREACH, "unreachable"), (errno.ENETUNREACH, "unreachable"),
     (errno.EACCES, "error")],
)
def test_no_route_is_unreachable_and_other_failures_say_why(number: int, state: str) -> None:
    def failing(where: tuple[str, int], timeout: float) -> socket.socket:
        raise OSError(number, "simulated")

    found = Prober(connect=failing)("2001:db8::5", 2222, user=None, keys=[])
    assert found.state == state and "simulated" in found.detail
    assert found.where == "[2001:db8::5]:2222"


def test_ask_sshd_closes_the_socket_whatever_happens() -> None:
    left, right = socket.socketpair()
    right.close()  # the server side is gone at once
    answers = ask_sshd(left, user="debian", keys=[], timeout=1)
    assert answers.error is not None
    assert left.fileno() == -1
