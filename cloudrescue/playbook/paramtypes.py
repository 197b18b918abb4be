"""The types a playbook parameter can have: how each is parsed, checked and documented."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cloudrescue.keys import PublicKey

ParamTypeName = Literal["string", "int", "bool", "choice", "path", "user", "public_keys", "secret"]
USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class Secret:
    """A secret (a password): its text never shows in ``repr``, reports or logs."""

    value: str = field(repr=False)

    def reveal(self) -> str:
        """The secret text, for the one place that needs it."""
        return self.value

    def __str__(self) -> str:
        return "***"


Scalar = str | int | bool
"""A parameter value as typed on the command line (a key *file* for public_keys)."""
Value = str | int | bool | tuple[PublicKey, ...] | Secret
"""A parameter value as steps see it (loaded keys, the secret)."""


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    if "\0" in value:
        raise ValueError("a string cannot contain NUL")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _parse_integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _parse_boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def guest_path(value: object) -> str:
    """An absolute path as the guest sees it."""
    text = _text(value)
    if not text.startswith("/") or "\n" in text:
        raise ValueError(f"expected an absolute guest path, got {text!r}")
    return text


def user_name(value: object) -> str:
    """A user or group name as passwd/group files allow."""
    text = _text(value)
    if not USER_NAME.match(text):
        raise ValueError(f"{text!r} is not a valid user or group name")
    return text


def key_files(value: object) -> tuple[str, ...]:
    """The key file paths of a public_keys default (one path or a list)."""
    items = value if isinstance(value, list) else [value]
    return tuple(_text(item) for item in items)


def _no_default(value: object) -> object:
    raise ValueError("a secret parameter cannot have a default")


def _not_on_command_line(text: str) -> Scalar:
    raise ValueError("secrets are never taken from the command line")


@dataclass(frozen=True)
class ParamType:
    """One parameter type: what its values are and how they are read."""

    name: ParamTypeName
    summary: str
    check: Callable[[object], object]
    parse: Callable[[str], Scalar]
    sample: Value
    embeddable: bool = True
    repeatable: bool = False


PARAM_TYPES: dict[str, ParamType] = {
    spec.name: spec
    for spec in (
        ParamType("string", "any text (no NUL)", _text, _text, "text"),
        ParamType("int", "a whole number", _integer, _parse_integer, 0),
        ParamType(
            "bool", "true or false (also yes/no, on/off, 1/0)", _boolean, _parse_boolean, False
        ),
        ParamType("choice", "one of the parameter's `choices`", _text, _text, ""),
        ParamType("path", "an absolute path in the guest", guest_path, guest_path, "/"),
        ParamType(
            "user", "a user name of the guest (checked in its /etc/passwd)", user_name,
            user_name, "root",
        ),
        ParamType(
            "public_keys",
            "local OpenSSH public key files, read and validated before the cloud is touched; "
            "repeatable; a default list means the first of its files that exists",
            key_files,
            _text,
            (PublicKey("ssh-ed25519", b"", "sample"),),
            embeddable=False,
            repeatable=True,
        ),
        ParamType(
            "secret",
            "a secret (password): read from a hidden prompt (asked twice) or stdin, never "
            "from the command line, never shown",
            _no_default,
            _not_on_command_line,
            Secret("sample"),
        ),
    )
}
