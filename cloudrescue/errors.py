"""The one error tree of cloudrescue and the exit status each error maps to.

Core code raises these; only the CLI turns them into a one-line message and an exit code
(see ``cloudrescue.cli.main``). The table in the README is generated from ``ExitStatus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    """Process exit codes, one per failure class (documented in the README)."""

    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    CLOUD = 5
    TIMEOUT = 6
    CONNECTION = 7
    HOST_KEY = 8
    DISK = 9
    FIX_FAILED = 10
    PERMISSION = 11
    PARTIAL = 12
    INTERRUPTED = 130


EXIT_STATUS_MEANING: dict[ExitStatus, str] = {
    ExitStatus.SUCCESS: "the command did what it was asked",
    ExitStatus.ERROR: "unexpected failure (a bug: please report it)",
    ExitStatus.USAGE: "bad command line or bad input (key file, playbook, parameter)",
    ExitStatus.NOT_FOUND: "instance, image, playbook or lab not found",
    ExitStatus.CONFLICT: "ambiguous name, wrong instance state, lab already up or already down",
    ExitStatus.CLOUD: "the cloud API failed or refused (authentication, 5xx, unsupported)",
    ExitStatus.TIMEOUT: "the instance did not reach the expected state in time",
    ExitStatus.CONNECTION: "cannot reach or log in to the rescue system over SSH",
    ExitStatus.HOST_KEY: "the rescue system's SSH host key could not be verified",
    ExitStatus.DISK: "the instance's disk was not found, is ambiguous, or could not be mounted",
    ExitStatus.FIX_FAILED: "a fix failed; files it had changed were restored from backups",
    ExitStatus.PERMISSION: "the command needs root",
    ExitStatus.PARTIAL: "a fleet command ran, and some instances failed or were not started "
    "(its report says which, and why)",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM, SIGHUP): cleaned up first",
}


class CloudRescueError(Exception):
    """Base of every error cloudrescue reports to the user."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.ERROR

    def __init__(
        self, message: str, *, hint: str | None = None, details: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = tuple(details)  # lines printed under the message (each one line)


class InvalidInputError(CloudRescueError):
    """The user gave something unusable (file, parameter, value); nothing was changed."""

    exit_status = ExitStatus.USAGE


class NotFoundError(CloudRescueError):
    """A named thing (instance, image, playbook, lab) does not exist."""

    exit_status = ExitStatus.NOT_FOUND


class ConflictError(CloudRescueError):
    """The request cannot be done in the current state."""

    exit_status = ExitStatus.CONFLICT


class AmbiguousNameError(ConflictError):
    """A name matches several things; the message lists them."""


class WrongStateError(ConflictError):
    """An instance (or the lab) is not in a state that allows the action."""


class CloudError(CloudRescueError):
    """The cloud API failed, refused, or lacks a needed feature."""

    exit_status = ExitStatus.CLOUD


class CloudTimeoutError(CloudRescueError):
    """Waiting for a state change took longer than allowed."""

    exit_status = ExitStatus.TIMEOUT


class ConnectionFailedError(CloudRescueError):
    """The rescue system could not be reached or refused the login."""

    exit_status = ExitStatus.CONNECTION


class HostKeyError(CloudRescueError):
    """The rescue system's host key is unknown or does not match the console log."""

    exit_status = ExitStatus.HOST_KEY


class DiskError(CloudRescueError):
    """The instance's disk was not found, is ambiguous, or could not be mounted."""

    exit_status = ExitStatus.DISK


class KeptInRescueError(CloudRescueError):
    """Leaving rescue now would be unsafe (the disk is still mounted on the rescue system):
    the instance stays in rescue, journalled as held, and the message says what to do."""


class DiskStillMountedError(KeptInRescueError):
    """The instance's disk could not be cleanly unmounted from the rescue system."""

    exit_status = ExitStatus.DISK


class FixFailedError(CloudRescueError):
    """A fix failed part way; the files it had changed were restored."""

    exit_status = ExitStatus.FIX_FAILED


class PermissionRequiredError(CloudRescueError):
    """The command must run as root."""

    exit_status = ExitStatus.PERMISSION


class PartialFleetError(CloudRescueError):
    """A fleet run ended with some instances failed or not started (after its report)."""

    exit_status = ExitStatus.PARTIAL


class LabError(CloudRescueError):
    """The local lab cloud could not do what was asked."""


def exit_status_table() -> str:
    """The README's exit-code table (Markdown), generated from ``EXIT_STATUS_MEANING``."""
    rows = [
        f"| {status.value} | `{status.name}` | {meaning} |"
        for status, meaning in EXIT_STATUS_MEANING.items()
    ]
    return "\n".join(["| code | name | meaning |", "|---:|---|---|", *rows])
