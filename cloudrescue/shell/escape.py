"""The shell's escape sequence: ``Ctrl-]`` then one key, picked out of what the user types.

``Ctrl-]`` (0x1d) is recognised anywhere in a line, not only after a newline as ssh's ``~.``:
no program reads it, and a shell prompt does not end with a newline. It is looked for only
when stdin is a terminal (``interact`` does not ask otherwise); a script on stdin is passed
through whole. This module has no dependency beyond the standard library: the CLI imports
``ESCAPE_HELP`` for ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EscapeAction(Enum):
    """What an escape key asks for (``Ctrl-] Ctrl-]`` is no action: it sends one ``Ctrl-]``)."""

    UNRESCUE = "unrescue"  # leave the shell, then unrescue
    KEEP_RESCUED = "keep-rescued"  # leave the shell, keep the instance in rescue
    SYNC = "sync"  # sync the guest's disk
    HELP = "help"  # print the escape keys (also for a key that means nothing)


@dataclass(frozen=True)
class EscapeKeys:
    """The escape prefix: a control byte, and how help names it."""

    prefix: int = 0x1D
    name: str = "Ctrl-]"

    def __post_init__(self) -> None:
        if not 0 <= self.prefix < 0x20:
            raise ValueError(f"the escape prefix must be a control byte, not {self.prefix:#x}")


DEFAULT_ESCAPE = EscapeKeys()

# The key after the prefix -> its action; letters in either case (Caps Lock happens).
KEYS: dict[int, EscapeAction] = {
    ord("."): EscapeAction.UNRESCUE,
    ord("q"): EscapeAction.UNRESCUE,
    ord("Q"): EscapeAction.UNRESCUE,
    ord("k"): EscapeAction.KEEP_RESCUED,
    ord("K"): EscapeAction.KEEP_RESCUED,
    ord("s"): EscapeAction.SYNC,
    ord("S"): EscapeAction.SYNC,
    ord("?"): EscapeAction.HELP,
    ord("h"): EscapeAction.HELP,
    ord("H"): EscapeAction.HELP,
}


def escape_help(keys: EscapeKeys = DEFAULT_ESCAPE) -> str:
    """The escape keys, one per line (``--help`` prints them, and so does ``Ctrl-] ?``)."""
    p = keys.name
    return "\n".join(
        [
            "Escape keys (when stdin is a terminal; anywhere in a line, letters in either case):",
            f"  {p} .  (or q)  leave the shell, then unrescue the instance",
            f"  {p} k          leave the shell, keep the instance in rescue",
            f"  {p} s          sync the guest's disk",
            f"  {p} ?  (or h)  show these keys",
            f"  {p} {p}     send {p} itself",
            "Any other key after the prefix shows these keys and sends nothing.",
        ]
    )


ESCAPE_HELP = escape_help()


class EscapeParser:
    """Splits typed bytes into bytes to send and escape actions; the prefix may end one read
    and its key start the next."""

    def __init__(self, keys: EscapeKeys = DEFAULT_ESCAPE) -> None:
        self._prefix = keys.prefix
        self._armed = False  # the last byte seen was the prefix

    def feed(self, data: bytes) -> list[bytes | EscapeAction]:
        """The events of ``data`` in order: runs of bytes to send, and actions."""
        events: list[bytes | EscapeAction] = []
        plain = bytearray()
        i = 0
        while i < len(data):
            if self._armed:
                self._armed = False
                key = data[i]
                i += 1
                if key == self._prefix:
                    plain.append(key)
                    continue
                if plain:
                    events.append(bytes(plain))
                    plain.clear()
                events.append(KEYS.get(key, EscapeAction.HELP))
                continue
            found = data.find(self._prefix, i)
            if found < 0:
                plain += data[i:]
                break
            plain += data[i:found]
            self._armed = True
            i = found + 1
        if plain:
            events.append(bytes(plain))
        return events
