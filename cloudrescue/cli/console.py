"""`console log` and `console url`: reach an instance without SSH."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from cloudrescue.cli import options
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.records import CONSOLE_URL, VNC_CONSOLE
from cloudrescue.cli.render import printable, safe
from cloudrescue.cloud.console_urls import CONSOLE_TYPES

if TYPE_CHECKING:
    from cloudrescue.cli.environment import Environment
    from cloudrescue.cloud.console_urls import ConsoleLink
    from cloudrescue.cloud.ovh_vps import VncAccess

FOLLOW_INTERVAL = 2.0
_MAIN_TYPES = ("novnc", "serial", "spice")  # the others are nova's rarer console types
app = typer.Typer(help="The instance's console: its log and its remote (noVNC) console URL.")


class _Printer:
    """Writes the guest's console text escaped (no escape code passes), and knows whether
    the last line it wrote is finished."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._line_open = False

    def __call__(self, text: str) -> None:
        self._stream.write(printable(text))  # the guest writes this log: no escape codes pass
        self._stream.flush()
        if text:
            self._line_open = not text.endswith("\n")

    def end_line(self) -> None:
        """Finish a line left open, so that what comes next starts a line of its own."""
        if self._line_open:
            self._stream.write("\n")
            self._stream.flush()
            self._line_open = False


@app.command("log")
def log(
    ctx: typer.Context,
    instance: options.Instance,
    lines: Annotated[
        int | None,
        typer.Option("--lines", "-n", metavar="N", min=1, help="Only the last N lines."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Then keep printing what the console prints (only new lines) until Ctrl-C "
            "(exit 130), or until the instance is deleted (exit 3).",
        ),
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            min=0.5,
            help=f"With --follow: seconds between two reads of the console "
            f"(default {FOLLOW_INTERVAL:g}).",
        ),
    ] = None,
) -> None:
    """Print the instance's console log (boot messages, emergency mode, host keys).

    With --follow the log is read again every --interval seconds and only what is new is
    printed; a log that lost its start between two reads (nova keeps its last part only) is
    followed all the same.
    """
    from cloudrescue.errors import CloudRescueError, InvalidInputError

    if interval is not None and not follow:
        raise InvalidInputError("--interval is for --follow")
    env = options.environment(ctx)
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    printer = _Printer(env.stdout)
    if not follow:
        printer(backend.console_output(server.id, lines).replace("\r\n", "\n"))
        return
    from cloudrescue.cloud.console_log import follow_console

    try:
        follow_console(
            backend,
            server,
            printer,
            lines=lines,
            interval=FOLLOW_INTERVAL if interval is None else interval,
            note=lambda message: _note(env, message),
        )
    except (KeyboardInterrupt, CloudRescueError):
        printer.end_line()  # the error line, and the shell's prompt, start on a line of their own
        raise


def _note(env: Environment, message: str) -> None:
    if not env.quiet:
        env.err.print(f"  [dim]{safe(message)}[/]")


@app.command("url")
@options.takes_options
def url(
    ctx: typer.Context,
    instance: options.Instance,
    output: OutputOptions,
    console_type: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="Console type: novnc (a web page), serial (a websocket), spice (a web page); "
            f"nova's others too ({', '.join(t for t in CONSOLE_TYPES if t not in _MAIN_TYPES)}).",
        ),
    ] = "novnc",
    vnc_html: Annotated[
        bool,
        typer.Option(
            "--vnc-html",
            help="noVNC's full page (vnc.html?autoconnect=1&path=...) instead of "
            "vnc_lite.html (when the display misbehaves).",
        ),
    ] = False,
    vnc: Annotated[
        bool,
        typer.Option(
            "--vnc",
            help="An OVHcloud VPS's VNC console (openConsoleAccess, VNC over WebSocket): its "
            "host, port and wss:// URL.",
        ),
    ] = False,
    show_password: Annotated[
        bool,
        typer.Option("--show-password", help="With --vnc: also print the VNC password."),
    ] = False,
) -> None:
    """Print a URL of the instance's remote console (works when SSH does not).

    The URL opens a working session in one click: nova's noVNC URL (often the old
    vnc_auto.html page, or vnc.html with a Connect button) is made a vnc_lite.html (or, with
    --vnc-html, a vnc.html?autoconnect=1) one that keeps its token; a serial console's ws://
    URL is printed as it is. -c cloud_url prints nova's URL unchanged. The URL carries a
    console token, a short-lived credential: it is printed on stdout only.

    On an OVHcloud VPS (--provider ovh-vps) the URL is the VPS API's noVNC one
    (getConsoleUrl); --vnc asks for its VNC console instead (openConsoleAccess,
    VNCOverWebSocket) and prints its wss://host:port URL, its password only with
    --show-password.
    """
    from cloudrescue.cloud.console_urls import PROTOCOLS, console_link, nova_console_type
    from cloudrescue.errors import InvalidInputError

    if vnc or show_password:
        if not vnc:
            raise InvalidInputError("--show-password is for --vnc (a VPS's VNC console)")
        if vnc_html or console_type != "novnc":
            raise InvalidInputError("--vnc is a VNC console of its own: no --type or --vnc-html")
        _vnc(ctx, instance, output, show_password)
        return

    kind = nova_console_type(console_type)
    if vnc_html and PROTOCOLS[kind] != "vnc":
        raise InvalidInputError(f"--vnc-html is for a noVNC console, not --type {console_type}")
    output.chosen()  # a bad -f or -c fails before the cloud is asked
    output.selected(CONSOLE_URL.names)
    env = options.environment(ctx)
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    link = console_link(kind, backend.console_url(server.id, kind), vnc_html=vnc_html)
    show_record(env, output, url_record(link), for_people=lambda: _for_people(env, link, vnc_html))


def _vnc(ctx: typer.Context, instance: str, output: OutputOptions, show_password: bool) -> None:
    """``console url --vnc``: the VNC console of an OVHcloud VPS."""
    from cloudrescue.cloud.ovh_vps import PROVIDER, OvhVpsCloud
    from cloudrescue.errors import InvalidInputError

    output.chosen()
    output.selected(VNC_CONSOLE.names)
    env = options.environment(ctx)
    cli = options.state(ctx)
    backend = cli.cloud() if cli.options.provider == PROVIDER else None
    if not isinstance(backend, OvhVpsCloud):
        raise InvalidInputError(
            "--vnc is for an OVHcloud VPS (--provider ovh-vps); an OpenStack instance's VNC "
            "console is its noVNC one (--type novnc)"
        )
    server = backend.find_server(instance)
    access = backend.console_access(server.id)
    record = vnc_record(server.name, access, show_password=show_password)
    show_record(env, output, record, for_people=lambda: _vnc_for_people(env, record))


def vnc_record(
    instance: str, access: VncAccess, *, show_password: bool
) -> dict[str, str | int | None]:
    """What ``console url --vnc -f json|...`` prints (``records.VNC_CONSOLE``)."""
    return {
        "instance": instance,
        "protocol": access.protocol,
        "host": access.host,
        "port": access.port,
        "url": access.url,
        "password": access.password if show_password else None,
    }


def _vnc_for_people(env: Environment, record: dict[str, str | int | None]) -> None:
    """The URL on stdout (and the password on a line of its own, when asked for); where and
    what on stderr."""
    env.out.out(printable(str(record["url"])), highlight=False)
    if record["password"] is not None:
        env.out.out(printable(str(record["password"])), highlight=False)
    else:
        _note(env, "VNC over WebSocket; its one-time password: --show-password")


def url_record(link: ConsoleLink) -> dict[str, str | None]:
    """What ``console url -f json|yaml|value|csv`` prints (``records.CONSOLE_URL``)."""
    return {
        "type": link.type,
        "protocol": link.protocol,
        "url": link.url,
        "page": link.page,
        "cloud_url": link.cloud_url,
    }


def _for_people(env: Environment, link: ConsoleLink, vnc_html: bool) -> None:
    """The URL alone on stdout (``xdg-open "$(cloudrescue console url web-1)"``); what it is
    on stderr."""
    env.out.out(printable(link.url), highlight=False)
    if link.page is None:
        _note(env, "a websocket, not a web page: open it with a websocket client (websocat...)")
    elif vnc_html and link.page != "vnc.html":
        _note(env, f"--vnc-html: not a noVNC URL with a token ({link.page}): printed as given")
