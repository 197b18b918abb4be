"""How the core reports progress without knowing how it is displayed."""

from __future__ import annotations

from typing import Protocol

from cloudrescue.cloud.base import ServerInfo


class Events(Protocol):
    """Progress sink: the CLI renders these with Rich, tests and bulk runs collect them."""

    def stage(self, message: str) -> None:
        """A new step of the procedure started."""
        ...

    def poll(self, server: ServerInfo, elapsed: float) -> None:
        """A state poll while waiting for the cloud."""
        ...

    def note(self, message: str) -> None:
        """Something the user should know (not an error)."""
        ...

    def detail(self, message: str) -> None:
        """Passing detail of the current step (shown transiently, e.g. sshd retries)."""
        ...


class SilentEvents:
    """Events sink that records stages and notes, prints nothing."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def stage(self, message: str) -> None:
        self.messages.append(message)

    def poll(self, server: ServerInfo, elapsed: float) -> None:
        return None

    def note(self, message: str) -> None:
        self.messages.append(message)

    def detail(self, message: str) -> None:
        return None
