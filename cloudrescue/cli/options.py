"""Options shared by commands, each group declared once (the pipx ``add_pip_venv_args`` way).

A group is a frozen dataclass whose fields carry their Typer option; a command asks for the
whole group with one parameter annotated with the group's class, and ``takes_options``
expands it into the group's options for Typer and hands the command one object::

    @takes_options
    def run(ctx: typer.Context, instance: Instance, rescue: RescueOptions) -> None: ...

A rescue option (every rescuing command takes it) is a pair, one field in each half:

1. here, a field of ``RescueOptions`` carrying its Typer option (flag, metavar, help);
2. in ``cloudrescue/rescue.py``, the ``RescueSettings`` field of the same name and type that
   the core reads (``RescueOptions.settings()`` hands each value to the field of its name).

Nothing else: every rescuing command takes ``RescueOptions`` whole, so it shows the new flag.
``tests/unit/test_rescue_options.py`` names the missing half when one is left out, and a
``RescueOptions`` field with no ``RescueSettings`` field is one error line (exit 1), not a
traceback. The exceptions are ``CLI_ONLY_RESCUE_OPTIONS`` (the bastion's key and fingerprint,
which ``rescue_settings`` folds with ``--jump`` into ``RescueSettings.jump``) and the
``RescueSettings`` fields no flag sets (``poll_interval``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer

from cloudrescue.cli.completion import instance_names, playbook_names
from cloudrescue.cli.environment import Environment
from cloudrescue.cli.output import OutputOptions

if TYPE_CHECKING:
    from cloudrescue.cloud.base import CloudBackend
    from cloudrescue.cloud.openstack import ConnectionOptions
    from cloudrescue.fleet.pacing import Pacing
    from cloudrescue.fleet.runner import ErrorBudget
    from cloudrescue.fleet.selection import Selection
    from cloudrescue.rescue import RescueSettings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class GlobalOptions:
    """Options of the whole command line, accepted before or after the command, as with
    ``openstack``. Credentials are never options: clouds.yaml, ``OS_*`` or a prompt."""

    os_cloud: Annotated[
        str | None,
        typer.Option(
            "--os-cloud",
            envvar="OS_CLOUD",
            metavar="NAME",
            help="Cloud from clouds.yaml (default: $OS_CLOUD, else the OS_* variables).",
        ),
    ] = None
    os_region_name: Annotated[
        str | None,
        typer.Option(
            "--os-region-name",
            envvar="OS_REGION_NAME",
            metavar="REGION",
            help="Region of the cloud (OVHcloud: GRA11, SBG5, BHS5...).",
        ),
    ] = None
    os_cacert: Annotated[
        str | None,
        typer.Option(
            "--os-cacert",
            envvar="OS_CACERT",
            metavar="FILE",
            help="CA bundle to verify the cloud's TLS certificates with.",
        ),
    ] = None
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify the cloud's TLS certificates.")
    ] = False
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            envvar="CLOUDRESCUE_PROVIDER",
            metavar="PROVIDER",
            help="openstack (clouds.yaml, OS_*) or ovh-vps (OVHcloud VPS: OVH_*, ovh.conf).",
        ),
    ] = "openstack"
    rescue_password_stdin: Annotated[
        bool,
        typer.Option(
            "--rescue-password-stdin",
            help="ovh-vps: once the VPS is in rescue, read the rescue's root password (from "
            "its rescue e-mail) on stdin instead of from the account's service e-mails.",
        ),
    ] = False
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="Say more: each detail of the run; -vv also the API requests (secrets hidden).",
        ),
    ] = 0
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display: errors and results only.")
    ] = False
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (and what -vv shows).")
    ] = False


GLOBAL_OPTIONS_WITH_VALUE = ("--os-cloud", "--os-region-name", "--os-cacert", "--provider")
PROVIDERS = ("openstack", "ovh-vps")
GLOBAL_FLAGS = (
    "--insecure",
    "--rescue-password-stdin",
    "--verbose",
    "-v",
    "--quiet",
    "-q",
    "--debug",
)


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with the global options moved in front of the command (as ``openstack``
    accepts them anywhere); what follows ``--`` is left alone."""
    from cloudrescue.errors import InvalidInputError

    front: list[str] = []
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            rest += [word, *words]
            break
        name = word.partition("=")[0]
        if name in GLOBAL_OPTIONS_WITH_VALUE:
            front.append(word)
            if "=" not in word:
                value = next(words, None)
                if value is None or value == "--":
                    raise InvalidInputError(f"Option '{name}' requires an argument.")
                front.append(value)
        elif word in GLOBAL_FLAGS or (word.startswith("-v") and set(word[1:]) == {"v"}):
            front.append(word)
        else:
            rest.append(word)
    return [*front, *rest]


@dataclass
class CliState:
    """What the root callback parsed, and where the command line runs."""

    options: GlobalOptions = field(default_factory=GlobalOptions)
    env: Environment = field(default_factory=Environment)

    def cloud(self, *, api_rate: float | None = None) -> CloudBackend:
        """The cloud backend for this invocation (its library is imported only now); at most
        ``api_rate`` requests a second when given (``--api-rate``). ``--provider ovh-vps``:
        python-ovh's configuration, and the ovh.conf ``$CLOUDRESCUE_OVH_CONFIG`` names."""
        from cloudrescue.errors import InvalidInputError

        provider = self.options.provider
        if provider not in PROVIDERS:
            raise InvalidInputError(
                f"--provider {provider!r}: expected one of {', '.join(PROVIDERS)}"
            )
        if provider == "ovh-vps":
            from cloudrescue.cli.prompts import rescue_password_reader
            from cloudrescue.cloud.ovh_vps import open_ovh_vps

            reader = None
            if self.options.rescue_password_stdin:
                reader = rescue_password_reader(self.env)
            return open_ovh_vps(
                config_file=self.ovh_config_file(), api_rate=api_rate, rescue_password=reader
            )
        if self.options.rescue_password_stdin:
            raise InvalidInputError(
                "--rescue-password-stdin is for --provider ovh-vps (a nova rescue takes the "
                "password cloudrescue makes)"
            )
        from cloudrescue.cloud.openstack import OpenStackCloud

        return OpenStackCloud(self._cloud_name(), self.connection(), api_rate=api_rate)

    def ovh_config_file(self) -> Path | None:
        """The ovh.conf ``$CLOUDRESCUE_OVH_CONFIG`` names (read besides python-ovh's own)."""
        import os

        from cloudrescue.cloud.ovh_vps import CONFIG_VARIABLE

        given = os.environ.get(CONFIG_VARIABLE)
        return Path(given) if given else None

    def _cloud_name(self) -> str | None:
        from cloudrescue.errors import InvalidInputError

        name = self.options.os_cloud
        if name is not None and not name.strip():
            raise InvalidInputError("--os-cloud (or OS_CLOUD) is empty: name a clouds.yaml entry")
        return name

    def connection(self) -> ConnectionOptions:
        """Region and TLS choices for reaching the cloud."""
        from cloudrescue.cloud.openstack import ConnectionOptions

        given = self.options
        return ConnectionOptions(given.os_region_name, given.os_cacert, given.insecure)


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` stored by the root callback."""
    found = ctx.find_root().obj
    return found if isinstance(found, CliState) else CliState()


def environment(ctx: typer.Context) -> Environment:
    """Where this command line runs (streams, terminal, verbosity)."""
    return state(ctx).env


Instance = Annotated[
    str,
    typer.Argument(help="Instance name or ID.", show_default=False, autocompletion=instance_names),
]
PlaybookRef = Annotated[
    str,
    typer.Argument(
        help="Playbook name (`cloudrescue playbooks list`) or a .yaml file.",
        show_default=False,
        autocompletion=playbook_names,
    ),
]
PlaybookRefs = Annotated[
    list[str],
    typer.Argument(
        help="Playbook names (`cloudrescue playbooks list`) or .yaml files, run in this order.",
        metavar="PLAYBOOK",
        show_default=False,
        autocompletion=playbook_names,
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds to wait for each state change.", min=1
    ),
]


# RescueOptions fields with no RescueSettings field of their own: ``rescue_settings`` takes
# them with --jump and makes ``RescueSettings.jump`` of the three.
CLI_ONLY_RESCUE_OPTIONS = frozenset({"jump_key", "jump_fingerprint"})


@dataclass(frozen=True)
class RescueOptions:
    """How to rescue an instance and reach its rescue system (every rescuing command)."""

    image: Annotated[
        str | None,
        typer.Option(
            "--image", metavar="IMAGE", help="Rescue image (name or ID); default: the cloud's."
        ),
    ] = None
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="IP",
            help="Address to SSH to (default: floating, public, then fixed IP).",
        ),
    ] = None
    jump: Annotated[
        str | None,
        typer.Option(
            "--jump",
            metavar="[USER@]HOST[:PORT]",
            help="Reach private addresses through this SSH bastion.",
        ),
    ] = None
    jump_key: Annotated[
        Path | None,
        typer.Option(
            "--jump-key", metavar="FILE", help="Private key for the bastion (default: agent/keys)."
        ),
    ] = None
    jump_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--jump-fingerprint",
            metavar="SHA256:...",
            help="Expected host key fingerprint of the bastion.",
        ),
    ] = None
    trust_host_key: Annotated[
        bool,
        typer.Option(
            "--trust-host-key",
            help="Accept the rescue's host key when its console shows no fingerprints to check.",
        ),
    ] = False
    state_timeout: Timeout = 600
    host_key_timeout: Annotated[
        float,
        typer.Option(
            "--host-key-timeout",
            metavar="SECONDS",
            help="Seconds to wait for the rescue's host key fingerprints on its console.",
            min=1,
        ),
    ] = 180
    ssh_timeout: Annotated[
        float,
        typer.Option(
            "--ssh-timeout",
            metavar="SECONDS",
            help="Seconds to keep trying to reach the rescue's sshd.",
            min=1,
        ),
    ] = 300

    def settings(self) -> RescueSettings:
        """The core's ``RescueSettings`` (fields of the same names), checked before the cloud
        is touched."""
        from cloudrescue.rescue import rescue_settings

        return rescue_settings(**dataclasses.asdict(self))


@dataclass(frozen=True)
class RepairOptions:
    """What every repair command takes besides the rescue options."""

    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False
    yes: Yes = False
    disk: Annotated[
        str | None,
        typer.Option(
            "--disk",
            metavar="DEVICE|UUID=|LABEL=",
            help="Which filesystem is the instance's root.",
        ),
    ] = None


@dataclass(frozen=True)
class SelectionOptions:
    """Which instances a fleet command acts on (every fleet command takes these; the rules
    are in docs/fleet.md)."""

    instances: Annotated[
        list[str] | None,
        typer.Argument(
            help="Instance names, IDs or shell globs ('web-*'; quote them from the shell).",
            show_default=False,
            autocompletion=instance_names,
        ),
    ] = None
    name_regex: Annotated[
        str | None,
        typer.Option(
            "--name-regex",
            metavar="RE",
            help="Only names this regular expression finds (Python's syntax, case-sensitive).",
        ),
    ] = None
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", help="Only with this tag (repeatable: all of them)."),
    ] = None
    any_tag: Annotated[
        list[str] | None,
        typer.Option(
            "--any-tag", metavar="TAG", help="Only with one of these tags (repeatable)."
        ),
    ] = None
    not_tag: Annotated[
        list[str] | None,
        typer.Option(
            "--not-tag", metavar="TAG", help="Only without this tag (repeatable: none of them)."
        ),
    ] = None
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            metavar="KEY=VALUE",
            help="Only with this metadata item (repeatable: all of them).",
        ),
    ] = None
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only in this status: ACTIVE, ERROR, SHUTOFF... (repeatable: one of them).",
        ),
    ] = None
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            metavar="FILE|-",
            help="The instances named in FILE, one name or ID a line ('-': stdin).",
        ),
    ] = None
    everything: Annotated[
        bool,
        typer.Option("--all", help="Every instance of the project (never without saying so)."),
    ] = False

    def selection(self, env: Environment) -> Selection:
        """The core's ``Selection``, checked (and ``--from-file`` read) before the cloud is
        asked."""
        from cloudrescue.fleet.selection import Selection, listing

        listed = listing(self._read(env), self.from_file) if self.from_file is not None else ()
        return Selection.parse(
            patterns=self.instances or (),
            listed=listed,
            name_regex=self.name_regex,
            tags=self.tag or (),
            any_tags=self.any_tag or (),
            not_tags=self.not_tag or (),
            metadata=self.metadata or (),
            statuses=self.status or (),
            everything=self.everything,
        )

    def _read(self, env: Environment) -> str:
        from cloudrescue.errors import InvalidInputError

        if self.from_file == "-":
            return env.stdin.read()
        path = Path(self.from_file or "")
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInputError(f"--from-file {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise InvalidInputError(f"--from-file {path}: cannot read it ({reason})") from None


@dataclass(frozen=True)
class RateOptions:
    """How fast a fleet command goes through its instances (docs/fleet.md)."""

    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            metavar="N",
            min=1,
            help="Instances in flight at most, after a slow start: 1, 2, 4 ... up to N.",
        ),
    ] = 10
    slow_start: Annotated[
        int,
        typer.Option(
            "--slow-start",
            metavar="S",
            min=1,
            help="Instances in flight when the run begins; the limit then grows by one per "
            "success up to --concurrency. --slow-start N (= --concurrency): no ramp.",
        ),
    ] = 1
    batches: Annotated[
        str | None,
        typer.Option(
            "--batches",
            metavar="SIZES",
            help="Canary batches, e.g. 1,5,25%: counts or percentages of the selection "
            "(rounded up); each starts once the one before succeeded; the last size repeats.",
        ),
    ] = None

    max_errors: Annotated[
        str | None,
        typer.Option(
            "--max-errors",
            metavar="N|N%",
            help="Start no new instance once more than N (or N% of the selection) have "
            "failed; those in flight finish. Default: no limit.",
        ),
    ] = None

    api_rate: Annotated[
        float | None,
        typer.Option(
            "--api-rate",
            metavar="R",
            min=0.01,
            help="At most R cloud API requests a second for the whole run (every worker, "
            "retries included). Default: no cap.",
        ),
    ] = None

    def budget(self) -> ErrorBudget:
        """The core's ``ErrorBudget``, checked."""
        from cloudrescue.fleet.runner import ErrorBudget

        return ErrorBudget.parse(self.max_errors)

    def pacing(self) -> Pacing:
        """The core's ``Pacing``, checked."""
        from cloudrescue.fleet.pacing import Pacing

        return Pacing.parse(self.concurrency, self.batches, self.slow_start)


@dataclass(frozen=True)
class SshKeysOptions:
    """The parameters of fix-ssh-keys (``fix-ssh-keys`` and ``fleet fix-ssh-keys``)."""

    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            help="Public key file to authorise (repeatable). Default: the first that exists "
            "of ~/.ssh/id_ed25519.pub, ~/.ssh/id_ecdsa.pub, ~/.ssh/id_rsa.pub.",
        ),
    ] = None
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Guest user whose keys to set. Default: the image's cloud user (cloud-init's "
            "default user, a known cloud user name, else root).",
            show_default=False,
        ),
    ] = None
    replace: Annotated[
        bool | None,
        typer.Option(
            "--replace/--append",
            help="Replace the user's keys, or add to them. Default: --append.",
            show_default=False,
        ),
    ] = None

    def given(self) -> dict[str, list[str]]:
        """The playbook parameters given (options left out take the playbook's defaults)."""
        return given_only(
            {
                "key": [str(path) for path in self.key or []],
                "user": [self.user] if self.user is not None else [],
                "replace": [] if self.replace is None else [str(self.replace).lower()],
            }
        )


@dataclass(frozen=True)
class PasswordOptions:
    """The parameters of reset-password (``reset-password`` and ``fleet reset-password``)."""

    user: Annotated[
        str | None,
        typer.Option("--user", help="Guest account. Default: root.", show_default=False),
    ] = None
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the new password from stdin (one line) instead of asking twice on the "
            "terminal.",
        ),
    ] = False
    ssh: Annotated[
        bool | None,
        typer.Option(
            "--ssh/--no-ssh",
            help="Also let the account log in over SSH with the password. Default: --no-ssh.",
            show_default=False,
        ),
    ] = None

    def given(self) -> dict[str, list[str]]:
        """The playbook parameters given (the password is a secret: never among them)."""
        return given_only(
            {
                "user": [self.user] if self.user is not None else [],
                "ssh": [] if self.ssh is None else [str(self.ssh).lower()],
            }
        )


@dataclass(frozen=True)
class ParamOptions:
    """A playbook's parameters on the command line (``run`` and ``fleet run``)."""

    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE for a playbook parameter (repeatable; list parameters take "
            "several). Secrets are never given here.",
        ),
    ] = None
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="Read secret parameters from stdin, one line each in declaration order, "
            "instead of asking on the terminal.",
        ),
    ] = False

    def given(self) -> dict[str, list[str]]:
        """The ``--param`` assignments by parameter (``InvalidInputError`` for a bad one)."""
        from cloudrescue.playbook.params import parse_assignments

        return parse_assignments(self.param or [])


def given_only(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """The parameters the user gave (options left out are the playbook's defaults)."""
    return {name: texts for name, texts in values.items() if texts}


@dataclass(frozen=True)
class DiagnoseOptions:
    """How ``diagnose`` probes an instance and what it reads (``cli/diagnose.py``); the
    address it probes and the rescue of --deep and --fix are ``RescueOptions``'."""

    port: Annotated[
        list[int] | None,
        typer.Option(
            "--port",
            metavar="PORT",
            min=1,
            max=65535,
            help="A port the instance's sshd listens on (repeatable). Default: 22.",
        ),
    ] = None
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="USER",
            help="User whose keys sshd is asked about (and whose password --deep checks). "
            "Default: the user cloud-init's table of authorized keys on the console names, "
            "else the cloud image's user of the OS the console names (Debian: debian...); "
            "--deep reads the disk's (cloud-init's default user, the account with SSH keys).",
            show_default=False,
        ),
    ] = None
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="Public key file sshd is asked about, without logging in (repeatable). "
            "Default: the first that exists of ~/.ssh/id_ed25519.pub, ~/.ssh/id_ecdsa.pub, "
            "~/.ssh/id_rsa.pub.",
        ),
    ] = None
    playbook: Annotated[
        list[Path] | None,
        typer.Option(
            "--playbook",
            metavar="FILE",
            help="A playbook file whose symptoms to look for too (repeatable).",
        ),
    ] = None
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            metavar="SECONDS",
            min=0.1,
            help="Seconds a TCP connection to a port may take before it counts as no answer.",
        ),
    ] = 3.0
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also rescue once, mount the disk read-only and run the playbooks that "
            "declare deep checks in check mode (asks first; --yes).",
        ),
    ] = False
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Then apply the suggested playbooks in one rescue (asks first; --yes).",
        ),
    ] = False
    yes: Yes = False
    disk: Annotated[
        str | None,
        typer.Option(
            "--disk",
            metavar="DEVICE|UUID=|LABEL=",
            help="Which filesystem is the instance's root (--deep, --fix).",
        ),
    ] = None


GROUPS: tuple[type, ...] = (
    RepairOptions,
    RescueOptions,
    GlobalOptions,
    OutputOptions,
    SelectionOptions,
    RateOptions,
    SshKeysOptions,
    PasswordOptions,
    ParamOptions,
    DiagnoseOptions,
)


def _group_parameters(group: type) -> list[inspect.Parameter]:
    hints = get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(
            item.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=item.default,
            annotation=hints[item.name],
        )
        for item in dataclasses.fields(group)
    ]


def takes_options(command: F) -> F:
    """Let ``command`` take option groups (``GROUPS``) whole, as one parameter each."""
    hints = get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    groups = {name: hint for name, hint in hints.items() if hint in GROUPS}
    own = [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for parameter in signature.parameters.values()
        if parameter.name not in groups
    ]
    expanded = [parameter for group in groups.values() for parameter in _group_parameters(group)]

    @functools.wraps(command)
    def wrapper(**values: Any) -> Any:
        for name, group in groups.items():
            fields = [item.name for item in dataclasses.fields(group)]
            values[name] = group(**{field: values.pop(field) for field in fields})
        return command(**values)

    wrapper.__signature__ = signature.replace(parameters=[*own, *expanded])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper  # type: ignore[return-value]
