"""`ovh login`: a consumer key for the ``ovh-vps`` provider, limited to what it calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudrescue.cli import options
from cloudrescue.cli.render import printable, safe

app = typer.Typer(help="OVHcloud API access for --provider ovh-vps.")


@app.command("login")
def login(
    ctx: typer.Context,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            metavar="FILE",
            help="Write the new consumer key into this ovh.conf (under the endpoint's section; "
            "the file is made mode 0600, its other lines kept).",
        ),
    ] = None,
    show_consumer_key: Annotated[
        bool,
        typer.Option(
            "--show-consumer-key",
            help="Print the new consumer key (a credential) on stdout, as an ovh.conf line.",
        ),
    ] = False,
) -> None:
    """Ask the OVH API for a consumer key limited to the VPS calls and the rescue e-mails.

    The application key and secret and the endpoint come from python-ovh's configuration
    (OVH_* variables, ovh.conf files, the file $CLOUDRESCUE_OVH_CONFIG names). The key asks for
    GET /vps and /vps/*, PUT and POST /vps/*, GET /me/notification/email/history and
    .../history/*, nothing else. It works once you open the validation URL printed on stdout,
    log in to OVHcloud and accept those rules. Say where the key goes: --write FILE (then
    point python-ovh at it: ~/.ovh.conf is read by default, or $CLOUDRESCUE_OVH_CONFIG) or
    --show-consumer-key; it is never put in a log.
    """
    from cloudrescue.cloud.ovh_login import (
        ACCESS_RULES,
        checked_target,
        request_consumer_key,
        write_consumer_key,
    )
    from cloudrescue.cloud.ovh_vps import ovh_settings
    from cloudrescue.errors import InvalidInputError

    if write is None and not show_consumer_key:
        raise InvalidInputError(
            "say where the new consumer key goes: --write FILE (an ovh.conf) or "
            "--show-consumer-key"
        )
    if write is not None:
        checked_target(write)  # before a consumer key is made that could not be kept
    env = options.environment(ctx)
    settings = ovh_settings(config_file=options.state(ctx).ovh_config_file())
    asked = request_consumer_key(settings)
    written = None
    if write is not None:
        written = write_consumer_key(write, settings.endpoint, asked.consumer_key)
    env.out.out(printable(asked.validation_url), highlight=False)
    if show_consumer_key:
        env.out.out(f"consumer_key = {printable(asked.consumer_key)}", highlight=False)
    if env.quiet:
        return
    rules = ", ".join(f"{method} {path}" for method, path in ACCESS_RULES)
    env.err.print(
        f"  open the URL above, log in to OVHcloud and accept: {safe(rules)}", highlight=False
    )
    if written is not None:
        env.err.print(
            f"  the consumer key is in {safe(str(written))} (mode 0600), under "
            f"[{safe(settings.endpoint)}]: it works once validated",
            highlight=False,
        )
