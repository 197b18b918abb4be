"""Conditions for a step's ``when`` and the ``assert`` action.

A condition is a mapping with one key::

    file_exists: /etc/ufw/ufw.conf
    file_contains: {path: /etc/ssh/sshd_config, regex: '^PasswordAuthentication no'}
    family: [debian, suse]          # from os-release ID / ID_LIKE
    service_enabled: ssh            # a systemd *.wants link, not masked
    param_equals: {param: mode, value: strict}
    not: {file_exists: /etc/nologin}
    all: [...]   any: [...]

A ``when`` may also be a list, meaning ``all``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    model_validator,
)

from cloudrescue.fixes.common import os_release, unit_enabled
from cloudrescue.playbook.facts import FAMILIES, family_of
from cloudrescue.playbook.fields import PATH, REGEX, UNIT, FieldKind, as_text, load_context
from cloudrescue.playbook.target import Target


def _families(value: Any) -> tuple[str, ...]:
    names = value if isinstance(value, list) else [value]
    for name in names:
        if name not in FAMILIES:
            raise ValueError(f"{name!r} is not a family (known: {', '.join(FAMILIES)})")
    return tuple(names)


FAMILY = FieldKind("distribution family", frozenset({"choice", "string"}), ("debian",), _families)


class ConditionModel(BaseModel, ABC):
    """Base of every condition: strict, one key, knows how to test and describe itself."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)
    key: ClassVar[str]
    needs_guest: ClassVar[bool] = False

    @model_validator(mode="after")
    def _phase(self, info: ValidationInfo) -> ConditionModel:
        context = load_context(info)
        if self.needs_guest and context is not None and context.mount != "root":
            raise ValueError(
                f"{self.key} looks at the guest's files: it needs mount: root "
                f"(this playbook has mount: {context.mount})"
            )
        return self

    @abstractmethod
    def holds(self, target: Target) -> bool:
        """Whether the condition is true now."""

    @abstractmethod
    def describe(self) -> str:
        """The condition in words (reports, docs)."""


class FileExists(ConditionModel):
    """`file_exists: PATH`: the path exists in the guest."""

    key: ClassVar[str] = "file_exists"
    needs_guest: ClassVar[bool] = True
    file_exists: Annotated[str, PATH]

    def holds(self, target: Target) -> bool:
        return target.phase.need_guest().files.exists(self.file_exists)

    def describe(self) -> str:
        return f"{self.file_exists} exists"


class PathRegex(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    path: Annotated[str, PATH]
    regex: Annotated[str, REGEX]


class FileContains(ConditionModel):
    """`file_contains: {path: PATH, regex: REGEX}`: a line of the file matches."""

    key: ClassVar[str] = "file_contains"
    needs_guest: ClassVar[bool] = True
    file_contains: PathRegex

    def holds(self, target: Target) -> bool:
        text = target.phase.need_guest().files.read_text(self.file_contains.path)
        return text is not None and re.search(self.file_contains.regex, text, re.M) is not None

    def describe(self) -> str:
        return f"{self.file_contains.path} matches /{self.file_contains.regex}/"


class FamilyIs(ConditionModel):
    """`family: debian|rhel|suse` (or a list): the distribution family, from os-release."""

    key: ClassVar[str] = "family"
    needs_guest: ClassVar[bool] = True
    family: Annotated[tuple[str, ...], FAMILY]

    def holds(self, target: Target) -> bool:
        return family_of(os_release(target.phase.need_guest().files)) in self.family

    def describe(self) -> str:
        return f"the guest's family is {' or '.join(self.family)}"


class ServiceEnabled(ConditionModel):
    """`service_enabled: UNIT`: a systemd `*.wants` link starts it and it is not masked."""

    key: ClassVar[str] = "service_enabled"
    needs_guest: ClassVar[bool] = True
    service_enabled: Annotated[str, UNIT]

    def holds(self, target: Target) -> bool:
        return unit_enabled(target.phase.need_guest().files, self.service_enabled)

    def describe(self) -> str:
        return f"{self.service_enabled} is enabled"


class ParamValue(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    param: str
    value: str | int | bool

    @model_validator(mode="after")
    def _declared(self, info: ValidationInfo) -> ParamValue:
        context = load_context(info)
        if context is None:
            return self
        kind = context.type_of(self.param)
        if kind in ("secret", "public_keys"):
            raise ValueError(f"{self.param!r} is {kind}: it cannot be compared")
        choices = context.choices.get(self.param)
        if choices and self.value not in choices:
            raise ValueError(f"{self.value!r} is not one of {self.param}'s choices")
        return self


class ParamEquals(ConditionModel):
    """`param_equals: {param: NAME, value: VALUE}`: a parameter has this value."""

    key: ClassVar[str] = "param_equals"
    param_equals: ParamValue

    def holds(self, target: Target) -> bool:
        actual = target.lookup(self.param_equals.param)
        return as_text(actual) == as_text(self.param_equals.value)

    def describe(self) -> str:
        return f"{self.param_equals.param} is {as_text(self.param_equals.value)}"


class Not(ConditionModel):
    """`not: CONDITION`: the condition does not hold."""

    key: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")

    def holds(self, target: Target) -> bool:
        return not self.not_.holds(target)

    def describe(self) -> str:
        return f"not ({self.not_.describe()})"


class All(ConditionModel):
    """`all: [CONDITION, ...]`: every condition holds (a `when` list means the same)."""

    key: ClassVar[str] = "all"
    all: list[Condition] = Field(min_length=1)

    def holds(self, target: Target) -> bool:
        return all(item.holds(target) for item in self.all)

    def describe(self) -> str:
        return " and ".join(f"({item.describe()})" for item in self.all)


class AnyOf(ConditionModel):
    """`any: [CONDITION, ...]`: at least one condition holds."""

    key: ClassVar[str] = "any"
    any: list[Condition] = Field(min_length=1)

    def holds(self, target: Target) -> bool:
        return any(item.holds(target) for item in self.any)

    def describe(self) -> str:
        return " or ".join(f"({item.describe()})" for item in self.any)


CONDITIONS: dict[str, type[ConditionModel]] = {
    model.key: model
    for model in (FileExists, FileContains, FamilyIs, ServiceEnabled, ParamEquals, Not, All, AnyOf)
}


def _tag(value: Any) -> str | None:
    if isinstance(value, ConditionModel):
        return value.key
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in CONDITIONS else None
    return None


Condition = Annotated[
    Annotated[FileExists, Tag("file_exists")]
    | Annotated[FileContains, Tag("file_contains")]
    | Annotated[FamilyIs, Tag("family")]
    | Annotated[ServiceEnabled, Tag("service_enabled")]
    | Annotated[ParamEquals, Tag("param_equals")]
    | Annotated[Not, Tag("not")]
    | Annotated[All, Tag("all")]
    | Annotated[AnyOf, Tag("any")],
    Discriminator(
        _tag,
        custom_error_type="condition",
        custom_error_message=(
            "a condition is a mapping with one key among: " + ", ".join(CONDITIONS)
        ),
    ),
]

for _model in (Not, All, AnyOf):
    _model.model_rebuild()


def when_condition(value: Any) -> Any:
    """A ``when`` list means all of its conditions."""
    return {"all": value} if isinstance(value, list) else value
