"""Options shared by the commands that rescue instances, and the objects built from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cloudrescue.cloud.openstack import OpenStackCloud
    from cloudrescue.rescue import RescueSettings


@dataclass
class CliState:
    """What the root callback parsed (``--os-cloud``)."""

    os_cloud: str | None = None

    def cloud(self) -> OpenStackCloud:
        """The cloud backend for this invocation (openstacksdk is imported only now)."""
        from cloudrescue.cloud.openstack import OpenStackCloud

        return OpenStackCloud(self.os_cloud)


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` stored by the root callback."""
    found = ctx.find_root().obj
    return found if isinstance(found, CliState) else CliState()


Instance = Annotated[str, typer.Argument(help="Instance name or ID.", show_default=False)]
Image = Annotated[
    str | None,
    typer.Option("--image", help="Rescue image (name or ID); default: the cloud's choice."),
]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Address to SSH to (default: floating, public, then fixed IP)."),
]
Jump = Annotated[
    str | None,
    typer.Option(
        "--jump", help="Reach private addresses through this SSH bastion: \\[user@]host\\[:port]."
    ),
]
JumpKey = Annotated[
    Path | None,
    typer.Option("--jump-key", help="Private key for the bastion (default: agent/keys)."),
]
JumpFingerprint = Annotated[
    str | None,
    typer.Option("--jump-fingerprint", help="Expected SHA256 host key fingerprint of the bastion."),
]
TrustHostKey = Annotated[
    bool,
    typer.Option(
        "--trust-host-key",
        help="Accept the rescue's host key when its console shows no fingerprints to check.",
    ),
]
Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each state change.", min=1)
]
SshTimeout = Annotated[
    float,
    typer.Option("--ssh-timeout", help="Seconds to keep trying to reach the rescue's sshd.", min=1),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


def rescue_settings(
    *,
    image: str | None,
    address: str | None,
    jump: str | None,
    jump_key: Path | None,
    jump_fingerprint: str | None,
    trust_host_key: bool,
    timeout: float,
    ssh_timeout: float = 300.0,
) -> RescueSettings:
    """Validate the shared options (before the cloud is touched) into ``RescueSettings``."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.remote.ssh import Endpoint, JumpHost
    from cloudrescue.rescue import RescueSettings

    jump_host = None
    if jump:
        try:
            endpoint = Endpoint.parse(jump, default_user="root")
        except ValueError as error:
            raise InvalidInputError(f"--jump {jump!r}: expected [user@]host[:port]") from error
        if jump_key is not None and not jump_key.is_file():
            raise InvalidInputError(f"--jump-key {jump_key}: no such file")
        jump_host = JumpHost(endpoint, jump_key, jump_fingerprint)
    return RescueSettings(
        image=image,
        address=address,
        jump=jump_host,
        trust_host_key=trust_host_key,
        state_timeout=timeout,
        ssh_timeout=ssh_timeout,
    )
