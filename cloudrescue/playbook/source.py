"""Reading a playbook's YAML while keeping where each value is, so errors name the line.

The text is composed into YAML nodes (``yaml.SafeLoader``: plain data only, no tags that build
objects), checked for duplicate keys (which ``safe_load`` silently merges), then constructed.
``Document.line_of`` maps a field path such as ``("steps", 1, "action")`` to its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cloudrescue.errors import InvalidInputError

Loc = Sequence[str | int]


class PlaybookError(InvalidInputError):
    """An invalid playbook: ``<file>:<line>: <field>: <message>``."""

    def __init__(self, source: str, line: int, field: str, message: str) -> None:
        where = f"{source}:{line}: " + (f"{field}: " if field else "")
        super().__init__(where + message)
        self.source = source
        self.line = line
        self.field = field


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
    """A parsed playbook file: its data and the node tree the data came from."""

    source: str
    data: Any
    node: yaml.Node

    def line_of(self, loc: Loc) -> int:
        """1-based line of the deepest node ``loc`` reaches (unknown parts are skipped)."""
        node = self.node
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = [value for key, value in node.value if key.value == part]
                if found:
                    node = found[0]
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node = node.value[part]
        return node.start_mark.line + 1

    def error(self, loc: Loc, message: str) -> PlaybookError:
        """The one-line error for ``loc``."""
        return PlaybookError(self.source, self.line_of(loc), format_loc(loc), message)


def _check_duplicates(node: yaml.Node, source: str, loc: tuple[str | int, ...] = ()) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, value in node.value:
            if key.value in seen:
                raise PlaybookError(
                    source,
                    key.start_mark.line + 1,
                    format_loc(loc),
                    f"duplicate key {key.value!r}",
                )
            seen.add(key.value)
            _check_duplicates(value, source, (*loc, str(key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, source, (*loc, index))


def parse(text: str, source: str) -> Document:
    """Parse playbook text; ``PlaybookError`` for YAML errors and duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PlaybookError(source, 1, "", "the file is empty")
        _check_duplicates(node, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PlaybookError(source, line, "", f"invalid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PlaybookError(source, 1, "", f"invalid YAML: {error}") from None
    finally:
        loader.dispose()
    return Document(source, data, node)
