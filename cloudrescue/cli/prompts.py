"""Questions the CLI asks the user: confirming a reboot, choosing among several root
filesystems, and reading a secret (hidden, twice) or taking it from stdin.

Everything goes through the ``Environment``: a question is asked only when stdin is a
terminal, and a test answers it through ``env.stdin``.
"""

from __future__ import annotations

import getpass
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import typer

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.render import RichEvents, safe

if TYPE_CHECKING:
    from cloudrescue.disks import AskRoot, RootFilesystem
    from cloudrescue.playbook.paramtypes import Secret


def _ask(env: Environment, question: str, *, hidden: bool = False) -> str:
    """One answer from the user (end of input is an interruption)."""
    if hidden and env.stdin is sys.stdin:
        return getpass.getpass(f"{question} ", stream=env.stderr)
    env.stderr.write(f"{question} ")
    env.stderr.flush()
    line = env.stdin.readline()
    if not line:
        raise typer.Abort()
    return line.rstrip("\r\n")


def confirm(env: Environment, question: str, *, yes: bool) -> None:
    """Ask ``question`` (a yes/no one) unless ``--yes``; without a terminal ``--yes`` is
    required, and a "no" interrupts."""
    from cloudrescue.errors import InvalidInputError

    if yes:
        return
    if not env.stdin_isatty:
        raise InvalidInputError(
            "refusing to reboot an instance without confirmation: stdin is not a terminal, "
            "pass --yes"
        )
    if _ask(env, f"{question} [y/N]").strip().lower() not in ("y", "yes"):
        raise typer.Abort()


def ask_yes(env: Environment, question: str, *, default: bool) -> bool:
    """A yes/no question on the terminal (``[Y/n]`` or ``[y/N]``: an empty answer is
    ``default``); end of input is an interruption."""
    while True:
        answer = _ask(env, f"{question} {'[Y/n]' if default else '[y/N]'}").strip().lower()
        if not answer:
            return default
        if answer in ("y", "yes", "n", "no"):
            return answer.startswith("y")


def confirm_repair(env: Environment, action: str, *, yes: bool, dry_run: bool) -> None:
    """Ask before rebooting an instance into rescue to repair (or inspect) it."""
    verb = "inspect (dry run, read-only)" if dry_run else "repair"
    question = (
        f"This reboots {action} into rescue mode to {verb} it, then reboots it normally "
        "(downtime of a few minutes). Continue?"
    )
    confirm(env, question, yes=yes)


def root_chooser(env: Environment, events: RichEvents, *, yes: bool) -> AskRoot | None:
    """On a terminal (and without ``--yes``), ask which root to repair when several are found."""
    if yes or not env.stdin_isatty:
        return None

    def ask(roots: Sequence[RootFilesystem]) -> RootFilesystem:
        with events.paused():
            env.err.print("Several root filesystems were found:")
            for number, root in enumerate(roots, 1):
                env.err.print(f"  {number}) {safe(root.describe())}", highlight=False)
            while True:
                answer = _ask(env, "Which one is the instance's root? (number)").strip()
                if answer.isdigit() and 1 <= int(answer) <= len(roots):
                    return roots[int(answer) - 1]
                env.err.print(f"  choose a number from 1 to {len(roots)}")

    return ask


def read_secret(
    env: Environment, name: str, description: str, *, from_stdin: bool, flag: str
) -> Secret:
    """The secret ``name`` from one line of stdin, or asked twice (hidden) on the terminal.

    ``flag`` is the option that takes it from stdin, named when there is no terminal.
    """
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook.paramtypes import Secret

    if from_stdin:
        line = env.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInputError(f"no {name} on stdin (one line expected)")
        return Secret(line)
    if not env.stdin_isatty:
        raise InvalidInputError(
            f"{name} is a secret and stdin is not a terminal to ask for it: pass {flag}"
        )
    prompt = description.rstrip(".")
    while True:
        first = _ask(env, f"{prompt}:", hidden=True)
        if first and _ask(env, f"{prompt} (again):", hidden=True) == first:
            return Secret(first)
        env.err.print("  the two entries differ (or are empty): again")


def rescue_password_reader(env: Environment) -> Callable[[str], str]:
    """What ``--rescue-password-stdin`` gives the ovh-vps backend: for each VPS in rescue,
    one line of stdin (hidden on a terminal), its rescue's root password from its rescue
    e-mail; never echoed, printed or logged. One VPS at a time."""
    from cloudrescue.errors import InvalidInputError

    lock = threading.Lock()

    def read(service: str) -> str:
        with lock:
            question = f"root password of the rescue of {service} (from its rescue e-mail):"
            if env.stdin_isatty:
                with env.pause_display():  # the spinner would draw over the question
                    line = _ask(env, question, hidden=True)
            else:
                env.stderr.write(f"reading the {question[:-1]} on stdin\n")
                env.stderr.flush()
                line = env.stdin.readline().rstrip("\r\n")
        if not line.strip():
            raise InvalidInputError(
                f"--rescue-password-stdin: no rescue password for {service} on stdin "
                "(one line expected)"
            )
        return line

    return read
