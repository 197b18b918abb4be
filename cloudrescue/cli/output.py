"""One renderer for every command that lists or reports: ``-f table|json|yaml|value|csv``
and ``-c COLUMN``, as python-openstackclient does.

A command hands over rows (a list of records) or one record, with its column names; the
names are the JSON/YAML keys (stable, documented in docs/output.md) and the table headings.
``table`` on a terminal is for people (a command may draw its own, richer table); ``json``,
``yaml``, ``csv`` and ``value`` are for scripts and never depend on the terminal.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.render import printable, safe

Format = Literal["table", "json", "yaml", "value", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "yaml", "value", "csv")
Record = Mapping[str, Any]


@dataclass(frozen=True)
class OutputOptions:
    """How to print the result (every command that lists or reports takes these)."""

    format: Annotated[
        str,
        typer.Option(
            "--format", "-f", metavar="FORMAT", help=f"Output format: {', '.join(FORMATS)}."
        ),
    ] = "table"
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--column", "-c", metavar="COLUMN", help="Show only this column (repeatable)."
        ),
    ] = None

    def chosen(self) -> Format:
        """The format, checked (``InvalidInputError`` for an unknown one)."""
        from cloudrescue.errors import InvalidInputError

        for known in FORMATS:
            if self.format == known:
                return known
        raise InvalidInputError(f"--format {self.format!r}: one of {', '.join(FORMATS)}")

    def selected(self, columns: Sequence[str]) -> list[str]:
        """The columns to show: ``-c`` ones (checked, in the order given), else all."""
        from cloudrescue.errors import InvalidInputError

        if not self.columns:
            return list(columns)
        unknown = [name for name in self.columns if name not in columns]
        if unknown:
            raise InvalidInputError(
                f"no column {unknown[0]!r} here (columns: {', '.join(columns)})"
            )
        return list(dict.fromkeys(self.columns))

    @property
    def for_people(self) -> bool:
        """A plain ``table`` with every column: a command may draw its own report."""
        return self.format == "table" and not self.columns


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def _yaml(data: Any) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


def _csv(columns: Sequence[str], rows: Sequence[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_text(row.get(name)) for name in columns] for row in rows])
    return buffer.getvalue()


def _pick(record: Record, columns: Sequence[str]) -> dict[str, Any]:
    return {name: record.get(name) for name in columns}


def _plain(env: Environment, text: str, *, end: str = "\n") -> None:
    """Unformatted output, control characters shown as text even in a pipe: what a guest wrote
    may reach a terminal later (``| less -R``, a CI log); ``json`` has the exact string."""
    env.out.out(printable(text), end=end, highlight=False)


def _table(env: Environment, table: Table) -> None:
    """A table; in a pipe its lines carry no padding at their ends (``cut``/``awk`` read it)."""
    if env.stdout_isatty:
        env.out.print(table)
        return
    with env.out.capture() as captured:
        env.out.print(table)
    lines = captured.get().splitlines()
    env.out.out("\n".join(line.rstrip() for line in lines), highlight=False)


def show_list(
    env: Environment,
    output: OutputOptions,
    columns: Sequence[str],
    rows: Sequence[Record],
    *,
    empty: str = "",
) -> None:
    """Print ``rows`` (each a record with at least ``columns``) in the chosen format."""
    kind = output.chosen()
    shown = output.selected(columns)
    if kind == "json":
        _plain(env, json.dumps([_pick(row, shown) for row in rows], indent=2, default=str))
    elif kind == "yaml":
        _plain(env, _yaml([_pick(row, shown) for row in rows]), end="")
    elif kind == "csv":
        _plain(env, _csv(shown, rows), end="")
    elif kind == "value":
        for row in rows:
            _plain(env, " ".join(_text(row.get(name)) for name in shown))
    elif not rows and empty:
        env.out.print(empty)
    elif rows:
        table = Table(*shown, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*(safe(_text(row.get(name))) for name in shown))
        _table(env, table)


def show_record(
    env: Environment,
    output: OutputOptions,
    record: Record,
    *,
    for_people: Callable[[], None] | None = None,
) -> None:
    """Print one record; ``for_people`` draws the plain table (a report, a document)."""
    kind = output.chosen()
    shown = output.selected(list(record))
    if kind == "table" and for_people is not None and output.for_people:
        for_people()
    elif kind == "json":
        _plain(env, json.dumps(_pick(record, shown), indent=2, default=str))
    elif kind == "yaml":
        _plain(env, _yaml(_pick(record, shown)), end="")
    elif kind == "csv":
        _plain(env, _csv(shown, [record]), end="")
    elif kind == "value":
        for name in shown:
            _plain(env, _text(record.get(name)))
    else:
        table = Table("field", "value", box=None, header_style="bold", pad_edge=False)
        for name in shown:
            table.add_row(name, safe(_text(record.get(name))))
        _table(env, table)
