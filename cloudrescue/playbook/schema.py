"""The playbook schema and loader: YAML in, a validated ``Playbook`` out.

Any problem is one ``PlaybookError`` naming the file, the line and the field::

    bad.yaml:7: steps[1].action: unknown action 'rm_rf' (known: ensure_line, ...)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from cloudrescue.errors import InvalidInputError
from cloudrescue.phase import MOUNT_MODES, MountMode
from cloudrescue.playbook.actions import ACTIONS
from cloudrescue.playbook.actions.base import AnyAction
from cloudrescue.playbook.conditions import Condition, when_condition
from cloudrescue.playbook.facts import FACTS
from cloudrescue.playbook.fields import TEXT, LoadContext
from cloudrescue.playbook.paramtypes import PARAM_TYPES, ParamTypeName, Value
from cloudrescue.playbook.source import Document, Loc, parse
from cloudrescue.playbook.template import TemplateError, references, whole_reference

PLAYBOOK_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FLAG_SPELLING = re.compile(r"^--[a-z][a-z0-9-]*(/--[a-z][a-z0-9-]*)?$")
STEP_KEYS = ("name", "action", "when")
MESSAGE = TypeAdapter(Annotated[str, TEXT])


def _one_line(value: str) -> str:
    if not value.strip() or "\n" in value.strip():
        raise ValueError("must be one non-empty line")
    return value.strip()


def _paragraphs(text: str) -> str:
    """Text reflowed: one line per paragraph (help and docs wrap it themselves)."""
    return "\n\n".join(" ".join(part.split()) for part in text.split("\n\n") if part.strip())


def _playbook_name(value: str) -> str:
    if not PLAYBOOK_NAME.match(value):
        raise ValueError(f"{value!r} is not a playbook name (lowercase words joined by '-')")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]


class ParameterSpec(BaseModel):
    """One declared parameter: type, description, default (a value or a fact), CLI spelling."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: str = Field(description="one of the parameter types below")
    description: OneLine = Field(description="one line, shown in help and docs")
    choices: list[str] | None = Field(None, description="the allowed values of a `choice`")
    default: Any = Field(
        None,
        description="value when not given (none: required); may be a whole fact reference "
        "like `{{ facts.default_user }}`; for `public_keys` a list: the first existing file",
    )
    flag: str | None = Field(
        None,
        description="option of the short command (default `--<name>`; `--yes/--no` for bool)",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PARAM_TYPES:
            raise ValueError(f"unknown type {value!r} (known: {', '.join(PARAM_TYPES)})")
        return value

    @field_validator("choices")
    @classmethod
    def _choices(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None and info.data.get("type") != "choice":
            raise ValueError("only a choice parameter has choices")
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError("choices must be a non-empty list without repeats")
        return value

    @field_validator("default")
    @classmethod
    def _default(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind is None:
            return value
        if isinstance(value, str) and (whole_reference(value) or "{{" in value):
            name = whole_reference(value)
            if name is None or not name.startswith("facts."):
                raise ValueError("a default may only be a whole fact reference, like "
                                 "'{{ facts.default_user }}'")
            return value
        PARAM_TYPES[kind].check(value)
        choices = info.data.get("choices")
        if kind == "choice" and choices and value not in choices:
            raise ValueError(f"{value!r} is not one of the choices")
        return value

    @field_validator("flag")
    @classmethod
    def _flag(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not FLAG_SPELLING.match(value):
            raise ValueError(f"{value!r} is not an option spelling like --name or --yes/--no")
        if value is not None and "/" in value and info.data.get("type") != "bool":
            raise ValueError("only a bool parameter has a --yes/--no flag pair")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ParameterSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice parameter needs choices")
        return self

    @property
    def param_type(self) -> ParamTypeName:
        return PARAM_TYPES[self.type].name

    @property
    def required(self) -> bool:
        """No default: the user must give a value."""
        return "default" not in self.model_fields_set

    @property
    def fact_default(self) -> str | None:
        """``facts.<name>`` when the default is a fact reference."""
        return whole_reference(self.default) if isinstance(self.default, str) else None

    def sample(self) -> Value:
        """A valid value, standing in for the real one while the playbook is checked."""
        if self.fact_default is not None:
            return FACTS[self.fact_default.removeprefix("facts.")].sample
        if self.choices:
            return self.choices[0]
        if not self.required and self.type not in ("public_keys", "secret"):
            value: Value = self.default
            return value
        return PARAM_TYPES[self.type].sample


class PlaybookHead(BaseModel):
    """The top-level keys of a playbook file (steps are checked one by one afterwards)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Annotated[str, AfterValidator(_playbook_name)] = Field(
        description="lowercase words joined by `-`; the file's name in `playbooks/`"
    )
    description: OneLine = Field(description="one line: what it repairs")
    details: str | None = Field(None, description="more text for `--help` and docs")
    parameters: dict[str, ParameterSpec] = Field(
        default_factory=dict, description="typed parameters by name (see below)"
    )
    mount: MountMode = Field(
        "root",
        description="`root`: mount the guest on /mnt; `unmounted`: find its disk, do not mount "
        "(fsck); `none`: the rescue system only (diagnostics)",
    )
    chroot: bool = Field(
        False, description="bind /dev, /proc, /sys, /run into the guest (for `run_chroot`)"
    )
    message: str | None = Field(
        None, description="printed after a successful run; `{{ }}` references allowed"
    )
    steps: list[Any] = Field(min_length=1, description="the steps, run in order")


class StepHead(BaseModel):
    """The keys every step has; the others are the action's parameters."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: OneLine = Field(description="unique in the playbook; shown in reports")
    action: str = Field(description="one of the actions below; its parameters sit beside")
    when: Annotated[Condition | None, BeforeValidator(when_condition)] = Field(
        None, description="run the step only if this condition holds (else `skipped`)"
    )


@dataclass(frozen=True)
class Step:
    """A validated step; ``params`` and ``when`` stay raw until rendered with real values."""

    index: int
    name: str
    action: AnyAction
    params: Mapping[str, Any]
    when: Any = None


@dataclass(frozen=True)
class Playbook:
    """A validated playbook."""

    name: str
    description: str
    details: str | None
    parameters: Mapping[str, ParameterSpec]
    mount: MountMode
    chroot: bool
    message: str | None
    steps: tuple[Step, ...]
    source: str


def _message(error: ErrorDetails, known: list[str]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        return f"unknown field (known: {', '.join(known)})" if known else "unknown field"
    text = str(error["msg"]).removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _first(error: ValidationError) -> ErrorDetails:
    """The error to report: a misspelt key first (it also explains a "missing" one)."""
    errors = error.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _validate(
    document: Document,
    model: type[BaseModel],
    data: Any,
    loc: Loc,
    context: LoadContext | None,
    known: list[str] | None = None,
) -> Any:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        first = _first(error)
        fields = known if len(first["loc"]) == 1 else []
        raise document.error((*loc, *first["loc"]), _message(first, fields or [])) from None


def _context(head: PlaybookHead) -> LoadContext:
    types: dict[str, ParamTypeName] = {n: s.param_type for n, s in head.parameters.items()}
    samples: dict[str, Value] = {n: s.sample() for n, s in head.parameters.items()}
    unavailable: dict[str, str] = {}
    for fact in FACTS.values():
        key = f"facts.{fact.name}"
        if head.mount in fact.phases:
            types[key] = fact.kind
            samples[key] = fact.sample
        else:
            phases = ", ".join(mode for mode in MOUNT_MODES if mode in fact.phases)
            unavailable[key] = f"{key} is not known with mount: {head.mount} (only with {phases})"
    return LoadContext(
        types=types,
        samples=samples,
        choices={n: tuple(s.choices) for n, s in head.parameters.items() if s.choices},
        mount=head.mount,
        chroot=head.chroot,
        unavailable=unavailable,
    )


def _check_parameters(document: Document, head: PlaybookHead, context: LoadContext) -> None:
    for name, spec in head.parameters.items():
        loc = ("parameters", name)
        if not PARAMETER_NAME.match(name) or name == "facts":
            raise document.error(loc, "parameter names are lower_case identifiers (not 'facts')")
        if spec.fact_default is None:
            continue
        try:
            kind = context.type_of(spec.fact_default)
        except ValueError as error:
            raise document.error((*loc, "default"), str(error)) from None
        if kind != spec.type and spec.type != "string":
            raise document.error(
                (*loc, "default"), f"{spec.fact_default} is a {kind}, not a {spec.type}"
            )


def _step(document: Document, index: int, raw: Any, context: LoadContext) -> Step:
    loc = ("steps", index)
    if not isinstance(raw, dict):
        raise document.error(loc, "a step is a mapping: name, action, the action's parameters")
    head = _validate(
        document, StepHead, {k: v for k, v in raw.items() if k in STEP_KEYS}, loc, context
    )
    action = ACTIONS.get(head.action)
    if action is None:
        raise document.error(
            (*loc, "action"), f"unknown action {head.action!r} (known: {', '.join(ACTIONS)})"
        )
    if action.runs_on in ("guest", "chroot") and context.mount != "root":
        raise document.error(
            (*loc, "action"),
            f"{action.name} works on the mounted guest: it needs mount: root "
            f"(this playbook has mount: {context.mount})",
        )
    if action.runs_on == "chroot" and not context.chroot:
        raise document.error(
            (*loc, "action"), f"{action.name} needs chroot: true (binds /dev, /proc, /sys, /run)"
        )
    params = {k: v for k, v in raw.items() if k not in STEP_KEYS}
    known = [*STEP_KEYS, *action.params.model_fields]
    _validate(document, action.params, params, loc, context, known)
    return Step(index, head.name, action, params, raw.get("when"))


def _used_names(value: Any) -> set[str]:
    """Parameter and fact names a raw step value refers to (``{{ }}`` and ``param_equals``)."""
    if isinstance(value, str):
        try:
            return set(references(value))
        except TemplateError:
            return set()
    names: set[str] = set()
    if isinstance(value, dict):
        compared = value.get("param_equals")
        if isinstance(compared, dict) and isinstance(compared.get("param"), str):
            names.add(compared["param"])
        for item in value.values():
            names |= _used_names(item)
    elif isinstance(value, list):
        for item in value:
            names |= _used_names(item)
    return names


def _check_steps(document: Document, head: PlaybookHead, steps: list[Step]) -> None:
    seen: dict[str, int] = {}
    for step in steps:
        if step.name in seen:
            raise document.error(
                ("steps", step.index, "name"),
                f"duplicate step name {step.name!r} (also steps[{seen[step.name]}])",
            )
        seen[step.name] = step.index
    used = _used_names(head.message or "")
    for step in steps:
        used |= _used_names(dict(step.params)) | _used_names(step.when)
    for name in head.parameters:
        if name not in used:
            raise document.error(("parameters", name), "declared but no step uses it")


def load_document(document: Document) -> Playbook:
    """Validate a parsed playbook file."""
    if not isinstance(document.data, dict):
        raise document.error((), "a playbook is a mapping: name, description, steps...")
    head: PlaybookHead = _validate(
        document, PlaybookHead, document.data, (), None, list(PlaybookHead.model_fields)
    )
    context = _context(head)
    _check_parameters(document, head, context)
    if head.chroot and head.mount != "root":
        raise document.error(("chroot",), "chroot: true needs mount: root")
    if head.message is not None:
        try:
            MESSAGE.validate_python(head.message, context=context)
        except ValidationError as error:
            raise document.error(("message",), _message(error.errors()[0], [])) from None
    steps = [_step(document, index, raw, context) for index, raw in enumerate(head.steps)]
    _check_steps(document, head, steps)
    return Playbook(
        name=head.name,
        description=head.description,
        details=_paragraphs(head.details) if head.details else None,
        parameters=head.parameters,
        mount=head.mount,
        chroot=head.chroot,
        message=head.message,
        steps=tuple(steps),
        source=document.source,
    )


def load_text(text: str, source: str) -> Playbook:
    """Parse and validate playbook text; ``source`` names it in errors."""
    return load_document(parse(text, source))


def load_file(path: Path) -> Playbook:
    """Load a user's playbook file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such playbook file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: cannot read the playbook ({error})") from None
    return load_text(text, str(path))
