"""Reading a playbook's YAML while keeping where each value is, so errors name the line.

The text is composed into YAML nodes (``yaml.SafeLoader``: plain data only, no tags that build
objects), checked for duplicate keys (which ``safe_load`` silently merges: the last one is
kept, and reported), then constructed. ``Document.line_of`` maps a field path such as
``("steps", 1, "action")`` to its line.

A ``PlaybookError`` carries every error found in the file (``.errors``, ordered by line);
its ``.message`` is the first one, ``<file>:<line>: <field>: <message>``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cloudrescue.errors import InvalidInputError

Loc = Sequence[str | int]


@dataclass(frozen=True)
class PlaybookProblem:
    """One error in a playbook file: where it is (file, line, field) and what is wrong."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " + (f"{self.field}: " if self.field else "")
        return where + self.message


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class PlaybookError(InvalidInputError):
    """An invalid playbook: every error found (``.errors``, by line, each
    ``<file>:<line>: <field>: <message>``); ``.message`` is the first of them."""

    def __init__(self, errors: Sequence[PlaybookProblem]) -> None:
        if not errors:
            raise ValueError("a PlaybookError needs at least one error")
        ordered = tuple(sorted(errors, key=lambda problem: problem.line))
        first = ordered[0]
        hint = None
        if len(ordered) > 1:
            hint = (
                f"{_plural(len(ordered) - 1, 'more error')} in this playbook: "
                f"`cloudrescue playbooks validate {shlex.quote(first.source)}` lists them all"
            )
        super().__init__(str(first), hint=hint)
        self.errors = ordered
        self.source = first.source
        self.line = first.line
        self.field = first.field

    @classmethod
    def one(cls, source: str, line: int, field: str, message: str) -> PlaybookError:
        """The error for a file with a single problem."""
        return cls([PlaybookProblem(source, line, field, message)])

    @property
    def summary(self) -> str:
        """``<file>: <n> errors`` when there are several, else the one error."""
        if len(self.errors) == 1:
            return self.message
        return f"{self.source}: {_plural(len(self.errors), 'error')}"

    def lines(self) -> list[str]:
        """Every error, one line each, in line order."""
        return [str(problem) for problem in self.errors]


def format_loc(loc: Loc) -> str:
    """``steps[1].action`` for ``("steps", 1, "action")`` (a repeated name counts once)."""
    text = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != previous:
            text += f".{part}" if text else part
        previous = part
    return text


@dataclass(frozen=True)
class Document:
    """A parsed playbook file: its data, the node tree the data came from, and the problems
    found while parsing that did not stop it (duplicate keys)."""

    source: str
    data: Any
    node: yaml.Node
    problems: tuple[PlaybookProblem, ...] = ()

    def node_at(self, loc: Loc) -> yaml.Node:
        """The deepest node ``loc`` reaches (unknown parts are skipped; for a duplicated key,
        the last value, the one the data holds)."""
        node = self.node
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = [value for key, value in node.value if key.value == part]
                if found:
                    node = found[-1]
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node = node.value[part]
        return node

    def line_of(self, loc: Loc) -> int:
        """1-based line of the deepest node ``loc`` reaches."""
        return self.node_at(loc).start_mark.line + 1

    def problem(self, loc: Loc, message: str) -> PlaybookProblem:
        """The problem at ``loc``: its line and field name."""
        return PlaybookProblem(self.source, self.line_of(loc), format_loc(loc), message)

    def error(self, loc: Loc, message: str) -> PlaybookError:
        """The one-line error for ``loc``."""
        return PlaybookError([self.problem(loc, message)])


def _duplicates(node: yaml.Node, source: str) -> list[PlaybookProblem]:
    """Every duplicate key; ``PlaybookError`` for an alias that contains itself (an anchor
    is walked once, however many aliases repeat it)."""
    found: list[PlaybookProblem] = []
    done: set[int] = set()
    inside: set[int] = set()

    def walk(node: yaml.Node, loc: tuple[str | int, ...]) -> None:
        if id(node) in inside:
            raise PlaybookError.one(
                source, node.start_mark.line + 1, format_loc(loc),
                "a YAML alias that contains itself (recursive data)",
            )
        if id(node) in done:
            return
        inside.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key, value in node.value:
                if key.value in seen:
                    found.append(
                        PlaybookProblem(
                            source, key.start_mark.line + 1, format_loc(loc),
                            f"duplicate key {key.value!r}",
                        )
                    )
                seen.add(key.value)
                walk(value, (*loc, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))
        inside.discard(id(node))
        done.add(id(node))

    walk(node, ())
    return found


def parse(text: str, source: str) -> Document:
    """Parse playbook text; ``PlaybookError`` for YAML errors (nothing can be read after one).
    Duplicate keys are in ``Document.problems``: validation goes on and reports them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PlaybookError.one(source, 1, "", "the file is empty")
        duplicates = _duplicates(node, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PlaybookError.one(source, line, "", f"invalid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PlaybookError.one(source, 1, "", f"invalid YAML: {error}") from None
    finally:
        loader.dispose()
    return Document(source, data, node, tuple(duplicates))
