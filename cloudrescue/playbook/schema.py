"""The playbook schema and loader: YAML in, a validated ``Playbook`` out.

The problems are one ``PlaybookError`` that lists every error found in one pass, each naming
the file, the line and the field, in line order::

    bad.yaml:7: steps[1].action: unknown action 'rm_rf' (known: ensure_line, ...)
    bad.yaml:12: steps[2].path: expected an absolute guest path, got 'etc/motd'

Errors do not cascade: a value that is invalid gives one error, and what depends on it is not
checked (the parameters of a step whose action is unknown, the uses of a parameter whose
declaration is invalid, the phase checks when ``mount`` is invalid, a missing field that a
misspelt key beside it explains).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
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
from cloudrescue.playbook.fields import TEXT, UNCHECKED, LoadContext
from cloudrescue.playbook.paramtypes import PARAM_TYPES, ParamTypeName, Value
from cloudrescue.playbook.source import Document, Loc, PlaybookError, PlaybookProblem, parse
from cloudrescue.playbook.symptoms import NO_SYMPTOMS, Symptoms
from cloudrescue.playbook.template import TemplateError, references, whole_reference

PLAYBOOK_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FLAG_SPELLING = re.compile(r"^--[a-z][a-z0-9-]*(/--[a-z][a-z0-9-]*)?$")
STEP_KEYS = ("name", "action", "when")
MESSAGE = TypeAdapter(Annotated[str, TEXT])
CLOSE = 0.6
"""How alike two names must be to be taken for a typo of one another (``difflib``)."""
WANTS = "input should be "


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
        kind = info.data.get("type")
        if value is not None and kind is not None and kind != "choice":
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
        kind = info.data.get("type")
        if value is not None and "/" in value and kind is not None and kind != "bool":
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
            fact = FACTS.get(self.fact_default.removeprefix("facts."))
            # An unknown fact is the default's error: the type's sample stands in meanwhile.
            return fact.sample if fact is not None else PARAM_TYPES[self.type].sample
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
    symptoms: Symptoms = Field(
        NO_SYMPTOMS,
        description="what it cures as `cloudrescue diagnose` sees it: console patterns, "
        "observations, deep checks (see below)",
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
    symptoms: Symptoms = NO_SYMPTOMS


def _message(error: ErrorDetails, known: list[str]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        return f"unknown field (known: {', '.join(known)})" if known else "unknown field"
    text = str(error["msg"]).removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


@dataclass(frozen=True)
class _Found:
    """An error found in one validation, before it is given a line."""

    loc: tuple[str | int, ...]
    kind: str
    message: str


def _found(error: ValidationError, loc: Loc, known: list[str] | None = None) -> list[_Found]:
    """Every error pydantic reports, under ``loc`` (``known``: the model's keys, listed for an
    unknown top-level key). References that cannot be checked are not errors of their own."""
    return [
        _Found(
            (*loc, *detail["loc"]),
            detail["type"],
            _message(detail, (known or []) if len(detail["loc"]) == 1 else []),
        )
        for detail in error.errors()
        if detail["type"] != UNCHECKED
    ]


def _explained(found: list[_Found]) -> list[_Found]:
    """``found`` without the missing fields a misspelt key beside them explains."""
    unknown: dict[tuple[str | int, ...], list[str]] = {}
    for item in found:
        if item.kind == "extra_forbidden" and item.loc:
            unknown.setdefault(item.loc[:-1], []).append(str(item.loc[-1]))
    missing: dict[tuple[str | int, ...], list[str]] = {}
    for item in found:
        if item.kind == "missing" and item.loc:
            missing.setdefault(item.loc[:-1], []).append(str(item.loc[-1]))
    explained: set[tuple[str | int, ...]] = set()
    for parent, keys in unknown.items():
        left = list(missing.get(parent, []))
        for key in keys:
            match = get_close_matches(key, left, n=1, cutoff=CLOSE)
            if match:
                left.remove(match[0])
                explained.add((*parent, match[0]))
    return [item for item in found if not (item.kind == "missing" and item.loc in explained)]


class _Problems:
    """The errors found so far in a document: at most one per YAML value, plus one per missing
    field. A value that every member of a union rejects is one error that says what each
    member wanted."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.found: list[PlaybookProblem] = list(document.problems)
        self._seen: dict[tuple[int, str], tuple[int, list[str]]] = {}

    def _shown(self, loc: Loc, kind: str) -> tuple[str | int, ...]:
        """``loc`` without the parts no YAML node has (the tags of a union's members, the
        ``all`` a ``when`` list stands for); a missing field keeps its name."""
        parts = tuple(loc)
        last = parts[-1:] if kind == "missing" else ()
        shown: tuple[str | int, ...] = ()
        node = self.document.node
        for part in parts[: len(parts) - len(last)]:
            deeper = self.document.node_at((*shown, part))
            if deeper is not node:
                shown, node = (*shown, part), deeper
        return (*shown, *last)

    def add(self, loc: Loc, message: str, kind: str = "") -> None:
        shown = self._shown(loc, kind)
        key = (id(self.document.node_at(shown)), str(shown[-1]) if kind == "missing" else "")
        seen = self._seen.get(key)
        if seen is None:
            wants = [message.removeprefix(WANTS)] if message.startswith(WANTS) else []
            self._seen[key] = (len(self.found), wants)
            self.found.append(self.document.problem(shown, message))
            return
        index, wants = seen
        if wants and message.startswith(WANTS) and message.removeprefix(WANTS) not in wants:
            wants.append(message.removeprefix(WANTS))
            text = WANTS + ", ".join(wants[:-1]) + " or " + wants[-1]
            self.found[index] = self.document.problem(shown, text)

    def add_found(self, found: list[_Found]) -> None:
        for item in _explained(found):
            self.add(item.loc, item.message, item.kind)

    def raise_any(self) -> None:
        if self.found:
            raise PlaybookError(self.found)


@dataclass(frozen=True)
class _Outline:
    """What the rest of the checks need from the top-level keys, with what could not be read
    set aside: ``head`` holds the valid keys (the invalid ones at their defaults), ``broken``
    the raw declarations of the parameters that are invalid."""

    head: PlaybookHead
    broken: Mapping[str, Any]
    bad: frozenset[str]

    @property
    def mount(self) -> MountMode | None:
        """The mount phase, ``None`` when it is invalid."""
        return None if "mount" in self.bad else self.head.mount


PLACEHOLDERS: dict[str, Any] = {"name": "invalid", "description": "invalid", "steps": [None]}


def _outline(problems: _Problems, data: dict[Any, Any]) -> _Outline:
    try:
        return _Outline(PlaybookHead.model_validate(data), {}, frozenset())
    except ValidationError as error:
        problems.add_found(_found(error, (), list(PlaybookHead.model_fields)))
        failed = error.errors()
    bad: set[str | int] = set()
    broken: dict[str | int, Any] = {}
    parameters = data.get("parameters")
    for detail in failed:
        loc = detail["loc"]
        if loc[:1] == ("parameters",) and len(loc) > 1 and isinstance(parameters, dict):
            broken[loc[1]] = parameters.get(loc[1])
        elif loc:
            bad.add(loc[0])
    # A misspelt optional key (``mout: none``) leaves that key unknown, not at its default.
    absent = [name for name in PlaybookHead.model_fields if name not in data]
    for key in [key for key in bad if key not in PlaybookHead.model_fields]:
        bad.update(get_close_matches(str(key), absent, n=1, cutoff=CLOSE))
    repaired = {key: value for key, value in data.items() if key not in bad}
    for key in bad & set(PLACEHOLDERS):
        repaired[key] = PLACEHOLDERS[str(key)]
    if isinstance(parameters, dict) and broken:
        repaired["parameters"] = {k: v for k, v in parameters.items() if k not in broken}
    try:
        head = PlaybookHead.model_validate(repaired)
    except ValidationError:  # pragma: no cover - every invalid key was set aside above
        problems.raise_any()
        raise
    return _Outline(
        # A parameter whose name is not text (its error is reported) is not one at all.
        head,
        {name: raw for name, raw in broken.items() if isinstance(name, str)},
        frozenset(map(str, bad)),
    )


def _context(outline: _Outline) -> LoadContext:
    head = outline.head
    types: dict[str, ParamTypeName] = {n: s.param_type for n, s in head.parameters.items()}
    samples: dict[str, Value] = {n: s.sample() for n, s in head.parameters.items()}
    unchecked: set[str] = set()
    for name, raw in outline.broken.items():
        kind = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind in PARAM_TYPES:
            types[name] = PARAM_TYPES[kind].name
            samples[name] = PARAM_TYPES[kind].sample
        else:
            unchecked.add(name)
    unavailable: dict[str, str] = {}
    for fact in FACTS.values():
        key = f"facts.{fact.name}"
        if outline.mount is None or outline.mount in fact.phases:
            types[key] = fact.kind
            samples[key] = fact.sample
        else:
            phases = ", ".join(mode for mode in MOUNT_MODES if mode in fact.phases)
            unavailable[key] = f"{key} is not known with mount: {head.mount} (only with {phases})"
    return LoadContext(
        types=types,
        samples=samples,
        choices={n: tuple(s.choices) for n, s in head.parameters.items() if s.choices},
        # An invalid mount or chroot: the checks that depend on it are not made.
        mount=outline.mount or "root",
        chroot=head.chroot or "chroot" in outline.bad,
        unavailable=unavailable,
        unchecked=frozenset(unchecked),
        any_parameter="parameters" in outline.bad,
    )


def _check_parameters(problems: _Problems, data: dict[Any, Any], outline: _Outline,
                      context: LoadContext) -> None:
    declared = data.get("parameters")
    if not isinstance(declared, dict):
        return
    for name in declared:
        if not isinstance(name, str) or not PARAMETER_NAME.match(name) or name == "facts":
            problems.add(
                ("parameters", name), "parameter names are lower_case identifiers (not 'facts')"
            )
    for name, spec in outline.head.parameters.items():
        if spec.fact_default is None:
            continue
        loc = ("parameters", name, "default")
        try:
            kind = context.type_of(spec.fact_default)
        except ValueError as error:
            problems.add(loc, str(error))
            continue
        if kind != spec.type and spec.type != "string":
            problems.add(loc, f"{spec.fact_default} is a {kind}, not a {spec.type}")


def _check_head(problems: _Problems, outline: _Outline, context: LoadContext) -> bool:
    """The checks of the top-level keys that need the context; whether the message is valid."""
    head = outline.head
    if head.chroot and outline.mount not in ("root", None):
        problems.add(("chroot",), "chroot: true needs mount: root")
    if head.message is not None:
        try:
            MESSAGE.validate_python(head.message, context=context)
        except ValidationError as error:
            problems.add_found(_found(error, ("message",)))
            return False
    return "message" not in outline.bad


def _action(found: list[_Found], loc: Loc, name: str, context: LoadContext) -> AnyAction | None:
    """The step's action, or ``None`` (with the error) when there is no such action."""
    action = ACTIONS.get(name)
    where = (*loc, "action")
    if action is None:
        found.append(_Found(where, "", f"unknown action {name!r} (known: {', '.join(ACTIONS)})"))
        return None
    if action.runs_on in ("guest", "chroot") and context.mount != "root":
        found.append(_Found(
            where,
            "",
            f"{action.name} works on the mounted guest: it needs mount: root "
            f"(this playbook has mount: {context.mount})",
        ))
    elif action.runs_on == "chroot" and not context.chroot:
        found.append(_Found(
            where, "", f"{action.name} needs chroot: true (binds /dev, /proc, /sys, /run)"
        ))
    return action


def _step(problems: _Problems, index: int, raw: Any, context: LoadContext) -> Step | None:
    """The step, or ``None`` when it is invalid (its errors are in ``problems``)."""
    loc = ("steps", index)
    if not isinstance(raw, dict):
        problems.add(loc, "a step is a mapping: name, action, the action's parameters")
        return None
    found: list[_Found] = []
    failed: set[str | int] = set()
    head: StepHead | None = None
    try:
        head = StepHead.model_validate(
            {k: v for k, v in raw.items() if k in STEP_KEYS}, context=context
        )
    except ValidationError as error:
        found += _found(error, loc)
        failed = {detail["loc"][0] for detail in error.errors() if detail["loc"]}
    action = None
    if "action" not in failed:
        action = _action(found, loc, raw["action"], context)
    params = {k: v for k, v in raw.items() if k not in STEP_KEYS}
    if action is not None:
        try:
            action.params.model_validate(params, context=context)
        except ValidationError as error:
            found += _found(error, loc, [*STEP_KEYS, *action.params.model_fields])
    problems.add_found(found)
    if head is None or action is None or found:
        return None
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


def _step_name(raw: Any) -> str | None:
    """A step's name when it is valid."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        return None
    try:
        return _one_line(name)
    except ValueError:
        return None


def _check_steps(problems: _Problems, raw_steps: list[Any]) -> None:
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_steps):
        name = _step_name(raw)
        if name is None:
            continue
        if name in seen:
            problems.add(
                ("steps", index, "name"),
                f"duplicate step name {name!r} (also steps[{seen[name]}])",
            )
        else:
            seen[name] = index


def _check_used(problems: _Problems, outline: _Outline, steps: list[Step]) -> None:
    """Every declared parameter is used; only asked when the message and every step are
    valid (an invalid one may be where the use was meant: "unused" would be a guess)."""
    used = _used_names(outline.head.message or "")
    for step in steps:
        used |= _used_names(dict(step.params)) | _used_names(step.when)
    for name in [*outline.head.parameters, *outline.broken]:
        if name not in used:
            problems.add(("parameters", name), "declared but no step uses it")


def load_document(document: Document) -> Playbook:
    """Validate a parsed playbook file; ``PlaybookError`` holds every error found."""
    problems = _Problems(document)
    data = document.data
    if not isinstance(data, dict):
        problems.add((), "a playbook is a mapping: name, description, steps...")
        problems.raise_any()
    outline = _outline(problems, data)
    context = _context(outline)
    _check_parameters(problems, data, outline, context)
    message_valid = _check_head(problems, outline, context)
    raw_steps = [] if "steps" in outline.bad else outline.head.steps
    read = [_step(problems, index, raw, context) for index, raw in enumerate(raw_steps)]
    _check_steps(problems, raw_steps)
    steps = [step for step in read if step is not None]
    if message_valid and raw_steps and len(steps) == len(read) and "parameters" not in outline.bad:
        _check_used(problems, outline, steps)
    problems.raise_any()
    head = outline.head
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
        symptoms=head.symptoms,
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
