"""Turning what the user typed into parameter values, before the cloud is touched.

Values come as text (``--param key=value`` or a short command's options); secrets come
separately (prompt or stdin), never as text from the command line. Key files are read and
validated here. A default that is a fact stays a ``FactDefault`` until the guest is mounted.
Several playbooks of one run share the assignments: ``route`` gives each its part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import InvalidInputError
from cloudrescue.keys import PublicKey, load_public_keys
from cloudrescue.playbook.paramtypes import PARAM_TYPES, Secret, Value, key_files
from cloudrescue.playbook.schema import ParameterSpec, Playbook


@dataclass(frozen=True)
class FactDefault:
    """A parameter left to its default, which is a fact (``facts.default_user``)."""

    fact: str


Resolved = Value | FactDefault


def parse_assignments(items: Sequence[str]) -> dict[str, list[str]]:
    """``["key=a.pub", "key=b.pub", "user=debian"]`` grouped by name."""
    given: dict[str, list[str]] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise InvalidInputError(f"--param {item!r}: expected NAME=VALUE")
        given.setdefault(name.strip(), []).append(value)
    return given


def check_distinct(playbooks: Sequence[Playbook]) -> None:
    """``InvalidInputError`` unless there is at least one playbook and no name twice."""
    if not playbooks:
        raise InvalidInputError("no playbook to run")
    names = [playbook.name for playbook in playbooks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInputError(
            f"playbook {', '.join(twice)} given twice: each playbook runs once in a rescue"
        )


def _unknown(playbook: Playbook, name: str) -> InvalidInputError:
    known = ", ".join(playbook.parameters) or "none"
    return InvalidInputError(
        f"playbook {playbook.name} has no parameter {name!r} (parameters: {known})"
    )


def route(
    playbooks: Sequence[Playbook], given: Mapping[str, Sequence[str]]
) -> list[dict[str, Sequence[str]]]:
    """Each playbook's share of the ``--param`` assignments, in the playbooks' order.

    ``NAME`` goes to every playbook that declares it; ``PLAYBOOK:NAME`` to that playbook only,
    where it replaces a plain ``NAME``. A name no playbook declares is refused.
    """
    check_distinct(playbooks)
    by_name = {playbook.name: index for index, playbook in enumerate(playbooks)}
    shares: list[dict[str, Sequence[str]]] = [{} for _ in playbooks]
    for key, texts in given.items():
        target, colon, name = key.rpartition(":")
        if colon:
            if target not in by_name:
                raise InvalidInputError(
                    f"--param {key}=...: no playbook {target!r} in this run "
                    f"(playbooks: {', '.join(by_name)})"
                )
            playbook = playbooks[by_name[target]]
            if name not in playbook.parameters:
                raise _unknown(playbook, name)
            shares[by_name[target]][name] = texts
            continue
        takers = [index for index, playbook in enumerate(playbooks) if name in playbook.parameters]
        if not takers and len(playbooks) == 1:
            raise _unknown(playbooks[0], name)
        if not takers:
            declared = "; ".join(
                f"{playbook.name}: {', '.join(playbook.parameters) or 'none'}"
                for playbook in playbooks
            )
            raise InvalidInputError(
                f"none of these playbooks has a parameter {name!r} ({declared})"
            )
        for index in takers:
            shares[index].setdefault(name, texts)
    return shares


def _keys(name: str, files: Sequence[str]) -> tuple[PublicKey, ...]:
    keys = tuple(key for file in files for key in load_public_keys(Path(file).expanduser()))
    if not keys:
        raise InvalidInputError(f"parameter {name!r}: no public key in {', '.join(files)}")
    return keys


def _default(name: str, spec: ParameterSpec) -> Resolved:
    if spec.fact_default is not None:
        return FactDefault(spec.fact_default)
    if spec.type == "public_keys":
        candidates = key_files(spec.default)
        for candidate in candidates:
            if Path(candidate).expanduser().is_file():
                return _keys(name, [candidate])
        raise InvalidInputError(
            f"parameter {name!r} not given and none of {', '.join(candidates)} exists"
        )
    value: Value = spec.default
    return value


def _parse(name: str, spec: ParameterSpec, texts: Sequence[str]) -> Value:
    kind = PARAM_TYPES[spec.type]
    if len(texts) > 1 and not kind.repeatable:
        raise InvalidInputError(f"parameter {name!r} given {len(texts)} times")
    try:
        values = [kind.parse(text) for text in texts]
    except ValueError as error:
        raise InvalidInputError(f"parameter {name!r}: {error}") from None
    if spec.type == "public_keys":
        return _keys(name, [str(value) for value in values])
    if spec.choices is not None and values[0] not in spec.choices:
        raise InvalidInputError(
            f"parameter {name!r}: {values[0]!r} is not one of {', '.join(spec.choices)}"
        )
    return values[0]


def resolve(
    playbook: Playbook,
    given: Mapping[str, Sequence[str]],
    secret: Callable[[str, ParameterSpec], Secret],
) -> dict[str, Resolved]:
    """Every parameter's value, in declaration order: given, default, or (for a secret) asked
    of ``secret``; ``InvalidInputError`` for unknown names and bad values."""
    for name in given:
        if name not in playbook.parameters:
            raise _unknown(playbook, name)
    values: dict[str, Resolved] = {}
    for name, spec in playbook.parameters.items():
        texts = given.get(name, [])
        if spec.type == "secret":
            if texts:
                raise InvalidInputError(
                    f"parameter {name!r} is a secret: it is never taken from the command "
                    "line (it is asked for, or read from stdin)"
                )
            values[name] = secret(name, spec)
        elif texts:
            values[name] = _parse(name, spec, texts)
        elif spec.required:
            raise InvalidInputError(f"missing parameter {name!r}: {spec.description}")
        else:
            values[name] = _default(name, spec)
    return values
