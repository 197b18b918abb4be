"""Kinds of action fields, and their template-aware validation.

Every field of an action's parameter model is annotated with a ``FieldKind``:
``path: Annotated[str, PATH]``. The kind says which parameter types may fill the field as a
whole reference (``"{{ key }}"``), whether references may sit inside a longer string, whether
secrets may reach it, and how a value is checked. Validation runs twice: when the playbook is
loaded (a ``LoadContext`` is given: references are checked against the declared parameters
and facts, then stand in as a placeholder), and when a step is rendered with the real values.
Docs show each field's kind by name.

A reference to a parameter whose own declaration is invalid cannot be checked (its type is
unknown): at load time it fails with the error type ``UNCHECKED``, which the loader drops, so
that one bad declaration is one error, not one more for every use of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import GetCoreSchemaHandler, ValidationInfo
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from cloudrescue.phase import MountMode
from cloudrescue.playbook.facts import FACTS
from cloudrescue.playbook.paramtypes import (
    PARAM_TYPES,
    ParamTypeName,
    Secret,
    Value,
    guest_path,
    user_name,
)
from cloudrescue.playbook.template import references, substitute, whole_reference

SCALARS: frozenset[ParamTypeName] = frozenset({"string", "int", "bool", "choice", "path", "user"})
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")
UNCHECKED = "unchecked_reference"
"""Error type of a reference that cannot be checked (see the module docstring)."""


def as_text(value: Value) -> str:
    """A value as it reads inside a string (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, tuple):
        raise ValueError("a list of public keys cannot be part of a text")
    return str(value)


@dataclass(frozen=True)
class LoadContext:
    """What load-time validation knows: parameter and fact types, the playbook's phase."""

    types: Mapping[str, ParamTypeName]
    samples: Mapping[str, Value]
    choices: Mapping[str, tuple[str, ...]]
    mount: MountMode
    chroot: bool
    unavailable: Mapping[str, str] = field(default_factory=dict)
    unchecked: frozenset[str] = frozenset()
    """Parameters declared with an invalid type: their uses cannot be checked."""
    any_parameter: bool = False
    """The parameters could not be read at all: no parameter reference can be checked."""

    def checkable(self, name: str) -> bool:
        """Whether a reference to ``name`` can be checked (see ``unchecked``)."""
        if name in self.types or name.startswith("facts."):
            return True
        return name not in self.unchecked and not self.any_parameter

    def type_of(self, name: str) -> ParamTypeName:
        """Type of a parameter or ``facts.<name>``; ``ValueError`` says what exists (an
        ``UNCHECKED`` error when the parameter's declaration is itself invalid)."""
        found = self.types.get(name)
        if found is not None:
            return found
        if name in self.unavailable:
            raise ValueError(self.unavailable[name])
        if name.startswith("facts."):
            raise ValueError(f"unknown fact {name!r} (known: {', '.join(sorted(FACTS))})")
        if not self.checkable(name):
            raise PydanticCustomError(UNCHECKED, "{name}: its declaration is invalid",
                                      {"name": name})
        declared = {k for k in self.types if not k.startswith("facts.")} | self.unchecked
        known = ", ".join(sorted(declared)) or "none"
        raise ValueError(f"unknown parameter {name!r} (parameters: {known})")


def load_context(info: ValidationInfo) -> LoadContext | None:
    """The ``LoadContext`` when validating at load time, ``None`` when rendering."""
    return info.context if isinstance(info.context, LoadContext) else None


@dataclass(frozen=True)
class FieldKind:
    """How one kind of field is filled and checked (see the module docstring)."""

    name: str
    accepts: frozenset[ParamTypeName]
    placeholder: Any
    convert: Callable[[Any], Any] | None = None
    embeds: bool = True
    secrets: bool = False
    literal: bool = True

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_before_validator_function(self.validate, handler(source))

    def validate(self, value: Any, info: ValidationInfo) -> Any:
        context = load_context(info)
        if context is not None and isinstance(value, str):
            whole = whole_reference(value)
            if whole is not None:
                self._check_whole(whole, context)
                return self.placeholder
            value = self._check_embedded(value, context)
        elif context is not None and not self.literal:
            raise ValueError(self._reference_only())
        if value is None or self.convert is None:
            return value
        return self.convert(value)

    def _reference_only(self) -> str:
        wanted = " or ".join(sorted(self.accepts))
        return f"must be a reference to a {wanted} parameter, e.g. '{{{{ name }}}}'"

    def _check_whole(self, name: str, context: LoadContext) -> None:
        kind = context.type_of(name)
        if kind == "secret" and not self.secrets:
            raise ValueError(
                f"the secret {name!r} cannot go into {self.name}: secrets only go to stdin "
                "or secret fields, never into command lines, files or messages"
            )
        if kind not in self.accepts:
            raise ValueError(f"{name!r} is a {kind} value; this field takes {self.name}")

    def _check_embedded(self, value: str, context: LoadContext) -> str:
        names = references(value)
        if not names:
            if not self.literal:
                raise ValueError(self._reference_only())
            return value
        if not self.embeds or not self.literal:
            raise ValueError(f"takes one whole reference or a literal {self.name}, not a mix")
        for name in names:
            if not context.checkable(name):
                continue
            kind = context.type_of(name)
            if kind == "secret" and not self.secrets:
                raise ValueError(
                    f"the secret {name!r} cannot go into {self.name}: secrets only go to "
                    "stdin or secret fields, never into command lines, files or messages"
                )
            if not PARAM_TYPES[kind].embeddable:
                raise ValueError(f"{name!r} ({kind}) cannot be part of a text")
        for name in names:
            context.type_of(name)  # the UNCHECKED error: the text cannot be built
        return substitute(value, lambda name: as_text(context.samples[name]))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    if "\0" in value:
        raise ValueError("text cannot contain NUL")
    return value


def _line(value: Any) -> str:
    text = _text(value)
    if "\n" in text:
        raise ValueError("expected one line (no newline)")
    return text


def _regex(value: Any) -> str:
    text = _text(value)
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"invalid regular expression {text!r}: {error}") from None
    return text


def _mode(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("write modes as quoted octal strings like '0644' (YAML reads 0644 as 420)")
    text = _text(value)
    if not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ValueError(f"{text!r} is not an octal mode like '0644'")
    return int(text, 8)


def _argument(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _command(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "a command is a list of arguments, not a shell string: write e.g. "
            "[systemctl, enable, ssh.service]"
        )
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of arguments")
    return value


def _unit(value: Any) -> str:
    text = _text(value)
    if not UNIT_NAME.match(text):
        raise ValueError(f"{text!r} is not a systemd unit name")
    return text if "." in text else f"{text}.service"


def _ports(value: Any) -> list[int]:
    ports = [value] if isinstance(value, int) else value
    if not isinstance(ports, list) or not ports:
        raise ValueError("expected a TCP port or a list of them")
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{port!r} is not a TCP port")
    return ports


def _interface(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", text):
        raise ValueError(f"{text!r} is not a network interface name")
    return text


def one_of(name: str, options: tuple[str, ...]) -> FieldKind:
    """A kind whose value is one of ``options`` (a choice parameter may fill it)."""

    def check(value: Any) -> str:
        text = _text(value)
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return FieldKind(name, frozenset({"choice", "string"}), options[0], check)


PATH = FieldKind("guest path", frozenset({"path", "string"}), "/", guest_path)
TEXT = FieldKind("text", SCALARS, "text", _text)
LINE = FieldKind("line", SCALARS, "line", _line)
REGEX = FieldKind("regex", frozenset({"string", "choice"}), "x", _regex)
MODE = FieldKind("octal mode", frozenset({"string", "choice"}), 0o644, _mode)
USER = FieldKind("user name", frozenset({"user", "string", "choice"}), "root", user_name)
GROUP = FieldKind("group name", frozenset({"user", "string", "choice"}), "root", user_name)
FLAG = FieldKind("true/false", frozenset({"bool"}), False, embeds=False)
COUNT = FieldKind("integer", frozenset({"int"}), 0, embeds=False)
ARGUMENT = FieldKind("argument", SCALARS, "arg", _argument)
COMMAND = FieldKind("command (list of arguments)", frozenset(), ["true"], _command, embeds=False)
STDIN = FieldKind("stdin text", SCALARS | {"secret"}, "text", _text, secrets=True)
UNIT = FieldKind("systemd unit", frozenset({"string", "choice"}), "ssh.service", _unit)
PORTS = FieldKind("TCP ports", frozenset({"int"}), [22], _ports, embeds=False)
INTERFACE = FieldKind("interface name", frozenset({"string", "choice"}), "eth0", _interface)
EXIT_CODES = FieldKind("exit codes", frozenset(), [0], embeds=False)
KEYS = FieldKind("public keys", frozenset({"public_keys"}), PARAM_TYPES["public_keys"].sample,
                 embeds=False, literal=False)
SECRET = FieldKind("secret", frozenset({"secret"}), PARAM_TYPES["secret"].sample, embeds=False,
                   secrets=True, literal=False)


def kind_of(metadata: list[Any]) -> FieldKind | None:
    """The ``FieldKind`` in a pydantic field's metadata (for docs)."""
    return next((item for item in metadata if isinstance(item, FieldKind)), None)
