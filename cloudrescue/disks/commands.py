"""Running disk tools on a ``Host`` when some of them may be missing on the rescue system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cloudrescue.remote.base import CommandResult, Host

COMMAND_NOT_FOUND = 127
LVM_ENV: Mapping[str, str] = {"LVM_SUPPRESS_FD_WARNINGS": "1"}


def run_tool(
    host: Host,
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> CommandResult:
    """``host.run``, turning a missing executable into exit status 127 on every host.

    Over SSH the remote shell already answers 127; ``LocalHost`` raises ``OSError`` instead.
    """
    try:
        return host.run(argv, check=check, env=env, timeout=timeout)
    except FileNotFoundError as error:
        result = CommandResult(tuple(argv), COMMAND_NOT_FOUND, "", f"{argv[0]}: {error}")
        return result.check() if check else result


def last_line(result: CommandResult) -> str:
    """The most telling line a failed command printed (for messages)."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    lines = [line for line in lines if line and "dmesg(1) may have more" not in line]
    return lines[-1] if lines else f"exit status {result.exit_code}"
