"""A playbook's ``symptoms:``: what it cures, as ``cloudrescue diagnose`` can see it.

Declared once, in the playbook's YAML, and validated with it::

    symptoms:
      console:                     # regular expressions searched in each console line
        - pattern: 'Dependency failed for (local-fs\\.target|Local File Systems)'
          cause: a filesystem of /etc/fstab did not mount, so the boot stopped
          confidence: high
          stops_boot: true         # not the cause of a boot that went on to sshd
      observations:                # what diagnose observes without rescue (by name)
        - name: ssh-no-answer
          cause: a firewall drops the packets to sshd's port
          confidence: medium
      deep: [fstab]                # read-only checks on the rescued disk (by name)

Diagnose reads the catalog (the shipped playbooks and the files given to it), so a user's own
playbook adds a diagnosis without Python. A pattern is searched (``re.search``) in each line
of the console's last boot, cut to ``MAX_LINE`` characters; it may not match an empty line (it
would match every line of a healthy console).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from cloudrescue.diagnose.registry import DEEP_CHECKS, OBSERVATIONS

Confidence = Literal["high", "medium", "low"]
MAX_LINE = 2000
"""Console lines are cut to this many characters before patterns are searched in them."""
MAX_PATTERN = 500


def _one_line(value: str) -> str:
    if not value.strip() or "\n" in value.strip():
        raise ValueError("must be one non-empty line")
    return value.strip()


def _pattern(value: str) -> str:
    if not value or "\n" in value:
        raise ValueError("a pattern is one non-empty line")
    if len(value) > MAX_PATTERN:
        raise ValueError(f"a pattern is at most {MAX_PATTERN} characters")
    try:
        compiled = re.compile(value)
    except re.error as error:
        raise ValueError(f"not a regular expression: {error}") from None
    if compiled.search(""):
        raise ValueError("the pattern matches an empty line: it would match every console line")
    return value


Cause = Annotated[str, AfterValidator(_one_line)]


class ConsoleSymptom(BaseModel):
    """A line of the console's last boot that shows what the playbook cures."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pattern: Annotated[str, AfterValidator(_pattern)] = Field(
        description="a Python regular expression searched in each console line "
        "(`(?i)` for any case)"
    )
    cause: Cause = Field(description="one line: what a matching line means")
    confidence: Confidence = Field(
        default="medium",
        description="`high`, `medium` or `low`: how surely a match means the cause",
    )
    stops_boot: bool = Field(
        default=False,
        description="the cause stops the boot: a boot that went on all the same (sshd "
        "started, or a login prompt) is not matched (a repaired fstab entry's device still "
        "times out, now `nofail`, and the boot goes on)",
    )

    def compiled(self) -> re.Pattern[str]:
        """The pattern, compiled."""
        return re.compile(self.pattern)


class ObservedSymptom(BaseModel):
    """An observation of diagnose (a probe, the console against the API) the playbook cures."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(description="one of the observations below")
    cause: Cause = Field(description="one line: what the observation means for this playbook")
    confidence: Confidence = Field(default="medium", description="`high`, `medium` or `low`")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OBSERVATIONS:
            raise ValueError(f"unknown observation {value!r} (known: {', '.join(OBSERVATIONS)})")
        return value


def _deep_check(name: str) -> str:
    if name not in DEEP_CHECKS:
        raise ValueError(f"unknown deep check {name!r} (known: {', '.join(DEEP_CHECKS)})")
    return name


def _once(value: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(value)) != len(value):
        raise ValueError("a deep check is named once")
    return value


class Symptoms(BaseModel):
    """The ``symptoms:`` of a playbook (every key optional)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    console: tuple[ConsoleSymptom, ...] = Field(
        default=(), description="console lines that show the cause (each entry below)"
    )
    observations: tuple[ObservedSymptom, ...] = Field(
        default=(), description="observations of diagnose that show the cause (each entry below)"
    )
    deep: Annotated[
        tuple[Annotated[str, AfterValidator(_deep_check)], ...], AfterValidator(_once)
    ] = Field(
        default=(), description="names of the read-only checks on the rescued disk that show it"
    )

    @field_validator("console", "observations", "deep", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """YAML gives lists; the model keeps tuples (frozen)."""
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, tuple):
            return value
        raise ValueError("expected a list")

    @field_validator("observations")
    @classmethod
    def _named_once(cls, value: tuple[ObservedSymptom, ...]) -> tuple[ObservedSymptom, ...]:
        names = [item.name for item in value]
        if len(set(names)) != len(names):
            raise ValueError("an observation is named once")
        return value

    @property
    def empty(self) -> bool:
        """Nothing declared."""
        return not (self.console or self.observations or self.deep)


NO_SYMPTOMS = Symptoms()
"""A playbook that declares none."""
