"""Finding playbooks: the shipped ones (``cloudrescue.playbooks``, i.e. ``playbooks/*.yaml``)
and a user's file.

The shipped folder is package data, read through ``importlib.resources``, so it works the same
from a wheel and from an editable checkout (``cloudrescue/playbooks`` links to ``playbooks/``).
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from cloudrescue.errors import NotFoundError
from cloudrescue.playbook.schema import Playbook, load_file, load_text

SUFFIX = ".yaml"


def shipped_folder() -> Traversable:
    """Where the shipped playbooks are."""
    return files("cloudrescue.playbooks")


def shipped_names() -> list[str]:
    """Names of the shipped playbooks, sorted."""
    return sorted(
        entry.name.removesuffix(SUFFIX)
        for entry in shipped_folder().iterdir()
        if entry.name.endswith(SUFFIX) and entry.is_file()
    )


def _shipped_file(name: str) -> Traversable:
    entry = shipped_folder() / f"{name}{SUFFIX}"
    if not entry.is_file():
        names = shipped_names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        raise NotFoundError(
            f"no playbook named {name!r}"
            + (f": did you mean {' or '.join(map(repr, close))}?" if close else ""),
            hint=f"shipped: {', '.join(names)}; or give a path to a .yaml file",
        )
    return entry


def load_shipped(name: str) -> Playbook:
    """A shipped playbook by name."""
    entry = _shipped_file(name)
    return load_text(entry.read_text(encoding="utf-8"), f"playbooks/{entry.name}")


def shipped_description(name: str) -> str:
    """A shipped playbook's one-line description, read without validating the whole file."""
    data = yaml.safe_load(_shipped_file(name).read_text(encoding="utf-8"))
    description = data.get("description") if isinstance(data, dict) else None
    return description if isinstance(description, str) else ""


def is_file_reference(reference: str) -> bool:
    """Whether ``reference`` names a playbook file (a .yaml/.yml name or a path), not a
    shipped playbook."""
    return reference.endswith((".yaml", ".yml")) or "/" in reference


def find(reference: str) -> Playbook:
    """A playbook by shipped name, or from a file when ``reference`` is a path."""
    if is_file_reference(reference):
        return load_file(Path(reference))
    return load_shipped(reference)
