"""Rules of the command line read off the code (issues 7 and 9): the CLI imports nothing from
``remote/``; no credential is ever an option's value; a flag means one thing everywhere."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import typer.core
import typer.main

from cloudrescue.cli import register_commands
from cloudrescue.cli.options import SelectionOptions

CLI = Path(__file__).resolve().parents[2] / "cloudrescue" / "cli"
FORBIDDEN = "cloudrescue.remote"


def imported(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """Each module ``tree`` imports (anywhere: module level, functions, TYPE_CHECKING blocks,
    ``importlib.import_module("...")``), with its line; relative ones resolved in ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found += [(node.lineno, base)]
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ast.unparse(node.func) in {"importlib.import_module", "import_module", "__import__"}
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def remote_imports(source: str, package: str = "cloudrescue.cli") -> list[tuple[int, str]]:
    return [
        (line, name)
        for line, name in imported(ast.parse(source), package)
        if name == FORBIDDEN or name.startswith(f"{FORBIDDEN}.")
    ]


def test_the_cli_imports_nothing_from_remote() -> None:
    """What the CLI needs of a remote host comes through the core (``shell.session``
    re-exports ``TerminalRequest``); the SSH layer stays the core's."""
    files = sorted(CLI.glob("*.py"))
    assert len(files) > 10
    found = [
        f"cloudrescue/cli/{path.name}:{line}: {name}"
        for path in files
        for line, name in remote_imports(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_every_way_of_importing_remote_is_seen() -> None:
    sources = {
        "import cloudrescue.remote.ssh": 1,
        "from cloudrescue.remote.base import TerminalRequest": 1,
        "from cloudrescue import remote": 1,
        "from ..remote import base": 1,
        "def f():\n    from cloudrescue.remote import ssh\n": 1,
        "if TYPE_CHECKING:\n    from cloudrescue.remote.base import Host\n": 1,
        "importlib.import_module('cloudrescue.remote.ssh')": 1,
        "from cloudrescue.shell.session import TerminalRequest": 0,
        "from cloudrescue import remote_access": 0,
        "from . import options": 0,
    }
    for source, expected in sources.items():
        assert len(remote_imports(source)) >= expected, source
        assert bool(remote_imports(source)) is bool(expected), source


class Option(Protocol):
    """What these rules read of an option (Typer's vendored click ``TyperOption``)."""

    opts: list[str]
    secondary_opts: list[str]
    is_flag: bool
    count: bool
    help: str | None


@dataclass
class Declared:
    """An option as a test declares one."""

    opts: list[str]
    is_flag: bool = False
    help: str | None = None
    secondary_opts: list[str] = field(default_factory=list)
    count: bool = False


def options_by_command() -> dict[str, list[Option]]:
    """Every option of the click command tree (hidden ones too), by command path; the root's
    and each group's own are under their path."""
    root = typer.main.get_command(register_commands())
    found: dict[str, list[Option]] = {}

    def walk(command: Any, path: str) -> None:
        found[path] = [p for p in command.params if isinstance(p, typer.core.TyperOption)]
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in sorted(command.commands.items()):
                walk(sub, f"{path} {name}")

    walk(root, "cloudrescue")
    return found


OPTIONS = options_by_command()

# What names a credential. --key/--jump-key are key *files* (public keys; the bastion's
# private key file, as ssh -i), not the secrets themselves.
SECRET = re.compile(r"pass(word|wd|phrase)?|secret|token|credential|consumer-key|application-key")
# The flags (no value) whose name says secret: each reads a secret from stdin, or prints one.
SECRET_FLAGS = {
    "--password-stdin": "reset-password: the new password from stdin",
    "--secret-stdin": "run: secret parameters from stdin",
    "--rescue-password-stdin": "ovh-vps: the rescue's root password from stdin",
    "--show-password": "prints the rescue's root password or the VNC password",
    "--show-consumer-key": "ovh login: prints the consumer key it was given",
}
# What openstack, keystoneauth and python-ovh take as credentials: never options here.
CREDENTIAL_OPTIONS = {
    "--os-password", "--os-token", "--os-auth-token", "--os-application-credential-secret",
    "--os-application-credential-id", "--os-username", "--os-user-id", "--os-passcode",
    "--password", "--token", "--application-secret", "--application-key", "--consumer-key",
    "--ovh-application-secret", "--ovh-consumer-key", "--secret",
}  # fmt: skip


def names(option: Option) -> list[str]:
    return [*option.opts, *option.secondary_opts]


def credential_problems(options: dict[str, list[Option]]) -> list[str]:
    problems: list[str] = []
    for path, declared in options.items():
        for option in declared:
            for name in names(option):
                if name in CREDENTIAL_OPTIONS:
                    problems.append(f"{path} {name}: a credential is never an option")
                elif SECRET.search(name) and not (option.is_flag or option.count):
                    problems.append(f"{path} {name} takes a value: a secret is never one")
                elif SECRET.search(name) and name not in SECRET_FLAGS:
                    problems.append(f"{path} {name}: a new secret flag, say what it does here")
    return problems


def test_no_credential_is_ever_an_option() -> None:
    """Secrets come from clouds.yaml, ``OS_*``, ovh.conf / ``OVH_*``, a prompt or stdin; a
    flag may ask for one on stdin or print one, never take one as its value (argv is seen by
    every user of the machine and kept in shell histories)."""
    assert sum(len(declared) for declared in OPTIONS.values()) > 100
    problems = credential_problems(OPTIONS)
    assert not problems, "\n".join(problems)
    shown = {name for declared in OPTIONS.values() for o in declared for name in names(o)}
    assert set(SECRET_FLAGS) <= shown  # the table above is what exists


def test_a_credential_option_would_be_found() -> None:
    given = [
        Declared(["--os-password"]),
        Declared(["--vnc-passphrase"]),
        Declared(["--token-stdin"], is_flag=True),
    ]
    assert credential_problems({"cloudrescue x": given}) == [
        "cloudrescue x --os-password: a credential is never an option",
        "cloudrescue x --vnc-passphrase takes a value: a secret is never one",
        "cloudrescue x --token-stdin: a new secret flag, say what it does here",
    ]


# Names several commands share with a meaning that depends on the command (each help says
# which): a new shared name has one meaning, one help text, or comes here with its reason.
CONTEXTUAL = {
    "--concurrency": "fleet diagnose: diagnosed at a time; repairs: in flight after slow start",
    "--disk": "the root filesystem; diagnose: for --deep/--fix; fleet resume: with --continue",
    "--key": "fix-ssh-keys: key to authorise; diagnose: key sshd is asked about; rescue: "
    "key authorised on the rescue system",
    "--metadata": "fleet: select by it; lab add: give it to the instance made",
    "--tag": "fleet: select by it; lab up/add: give it to the instances made",
    "--secret-stdin": "fleet resume: with --continue only",
    "--show-password": "rescue: the rescue's password; console url --vnc: the VNC password",
    "--user": "fix-ssh-keys: whose keys; reset-password: whose password; diagnose: whose keys "
    "sshd is asked about",
}
# Names that mean one thing wherever they are: never contextual.
SINGLE = ("--all", "--yes", "--dry-run", "--timeout", "--format", "--column", "--image",
          "--address", "--jump", "--param", "--report", "--state-dir")  # fmt: skip


def meaning_problems(options: dict[str, list[Option]]) -> list[str]:
    """Each long name shared by commands has one help text (unless ``CONTEXTUAL``); each short
    name stands for one long name everywhere (``-n`` is ``--lines``, never a count)."""
    helps: dict[str, dict[str, str]] = {}
    shorts: dict[str, dict[str, str]] = {}
    for path, declared in options.items():
        for option in declared:
            long = next((n for n in option.opts if n.startswith("--")), "")
            for name in names(option):
                if name.startswith("--"):
                    helps.setdefault(name, {})[path] = " ".join((option.help or "").split())
                else:
                    shorts.setdefault(name, {})[path] = long
    problems: list[str] = []
    for name, by_path in sorted(helps.items()):
        if len(set(by_path.values())) > 1 and name not in CONTEXTUAL:
            problems.append(f"{name} means several things: {by_path}")
    for name, by_path in sorted(shorts.items()):
        if len(set(by_path.values())) > 1:
            problems.append(f"{name} stands for several options: {by_path}")
    return problems


def test_one_meaning_per_flag() -> None:
    """A flag is one option wherever it is: one help text across commands (the group of
    ``cli/options.py`` declares it once), except the ``CONTEXTUAL`` names, whose help says the
    command's meaning; a short flag is the same long one everywhere."""
    assert not set(SINGLE) & set(CONTEXTUAL)
    problems = meaning_problems(OPTIONS)
    assert not problems, "\n".join(problems)
    shown = {name for declared in OPTIONS.values() for o in declared for name in names(o)}
    assert set(CONTEXTUAL) | set(SINGLE) <= shown  # the tables above are what exists


def test_all_selects_every_instance_and_n_is_lines() -> None:
    """``--all`` is only the fleet selection's "every instance" (no command lists "all" of
    something else with it), ``-n`` only ``console log --lines``."""
    every = SelectionOptions.__dataclass_fields__["everything"].type
    assert "--all" in every
    with_all = {path for path, declared in OPTIONS.items() for o in declared if "--all" in names(o)}
    assert with_all == {
        "cloudrescue fleet diagnose", "cloudrescue fleet fix-ssh-keys", "cloudrescue fleet plan",
        "cloudrescue fleet reset-password", "cloudrescue fleet run",
    }  # fmt: skip
    (help_text,) = {o.help for p in with_all for o in OPTIONS[p] if "--all" in names(o)}
    assert help_text is not None and help_text.startswith("Every instance of the project")
    with_n = {(p, tuple(o.opts)) for p, given in OPTIONS.items() for o in given if "-n" in o.opts}
    assert with_n == {("cloudrescue console log", ("--lines", "-n"))}


def test_a_second_meaning_would_be_found() -> None:
    given = {
        "cloudrescue a": [Declared(["--all"], is_flag=True, help="Every instance."),
                          Declared(["--lines", "-n"], help="Lines.")],
        "cloudrescue b": [Declared(["--all"], is_flag=True, help="Every run."),
                          Declared(["--count", "-n"], help="How many.")],
    }  # fmt: skip
    assert meaning_problems(given) == [
        "--all means several things: {'cloudrescue a': 'Every instance.', "
        "'cloudrescue b': 'Every run.'}",
        "-n stands for several options: {'cloudrescue a': '--lines', 'cloudrescue b': '--count'}",
    ]
