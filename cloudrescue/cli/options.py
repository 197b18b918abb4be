"""Options shared by commands, each group declared once (the pipx ``add_pip_venv_args`` way).

A group is a frozen dataclass whose fields carry their Typer option; a command asks for the
whole group with one parameter annotated with the group's class, and ``takes_options``
expands it into the group's options for Typer and hands the command one object::

    @takes_options
    def run(ctx: typer.Context, instance: Instance, rescue: RescueOptions) -> None: ...

Adding a rescue option is one edit here: a field of ``RescueOptions``, named as the
``RescueSettings`` field it sets (``cloudrescue/rescue.py``), which every rescuing command then
takes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer

if TYPE_CHECKING:
    from cloudrescue.cloud.openstack import OpenStackCloud
    from cloudrescue.rescue import RescueSettings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the root callback parsed (``--os-cloud``)."""

    os_cloud: str | None = None

    def cloud(self) -> OpenStackCloud:
        """The cloud backend for this invocation (openstacksdk is imported only now)."""
        from cloudrescue.cloud.openstack import OpenStackCloud
        from cloudrescue.errors import InvalidInputError

        if self.os_cloud is not None and not self.os_cloud.strip():
            raise InvalidInputError("--os-cloud (or OS_CLOUD) is empty: name a clouds.yaml entry")
        return OpenStackCloud(self.os_cloud)


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` stored by the root callback."""
    found = ctx.find_root().obj
    return found if isinstance(found, CliState) else CliState()


Instance = Annotated[str, typer.Argument(help="Instance name or ID.", show_default=False)]
Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each state change.", min=1)
]


@dataclass(frozen=True)
class RescueOptions:
    """How to rescue an instance and reach its rescue system (every rescuing command)."""

    image: Annotated[
        str | None,
        typer.Option("--image", help="Rescue image (name or ID); default: the cloud's choice."),
    ] = None
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Address to SSH to (default: floating, public, then fixed IP)."
        ),
    ] = None
    jump: Annotated[
        str | None,
        typer.Option(
            "--jump",
            help="Reach private addresses through this SSH bastion: \\[user@]host\\[:port].",
        ),
    ] = None
    jump_key: Annotated[
        Path | None,
        typer.Option("--jump-key", help="Private key for the bastion (default: agent/keys)."),
    ] = None
    jump_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--jump-fingerprint", help="Expected SHA256 host key fingerprint of the bastion."
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
            help="Seconds to wait for the rescue's host key fingerprints on its console.",
            min=1,
        ),
    ] = 180
    ssh_timeout: Annotated[
        float,
        typer.Option(
            "--ssh-timeout", help="Seconds to keep trying to reach the rescue's sshd.", min=1
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False
    disk: Annotated[
        str | None,
        typer.Option(
            "--disk", help="Which filesystem is the instance's root (device, UUID, LABEL)."
        ),
    ] = None


GROUPS: tuple[type, ...] = (RepairOptions, RescueOptions)


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
