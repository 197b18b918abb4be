"""Which instances a fleet command acts on (docs/fleet.md, "Selection").

A ``Selection`` is checked when it is made, before the cloud is asked. ``resolve`` lists the
project's servers (every page), with what nova can filter sent along, then checks every server
it got against every selector itself: nova ignores filter keys it does not know (a cloud below
microversion 2.26 ignores the tag filters), so its answer may hold more than was asked. It is a
first cut, never the selection: a typo can only select fewer instances. Names and IDs are
resolved against the whole project, so a name two servers share is refused even when a filter
would hide one of them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.cloud.server_fields import checked_tags, metadata_items
from cloudrescue.errors import AmbiguousNameError, CloudError, InvalidInputError, NotFoundError

GLOB_CHARACTERS = frozenset("*?[")
# What nova shows as a server's status, and accepts as a ``status`` filter (a project member:
# DELETED is refused, UNKNOWN is no state one can ask for).
STATUSES = (
    "ACTIVE", "BUILD", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD", "PAUSED", "REBOOT",
    "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED", "SHELVED_OFFLOADED", "SHUTOFF",
    "SOFT_DELETED", "SUSPENDED", "VERIFY_RESIZE",
)  # fmt: skip
# A regex nova's database reads as Python does: no escapes, no (?...), no POSIX classes.
# Others are checked here only (MySQL's REGEXP has no \d before 8.0: it would narrow wrongly).
_NOT_PORTABLE = re.compile(r"\\|\(\?|\[[:=.]")


@dataclass(frozen=True)
class Listed:
    """A name or ID read from ``--from-file``, and where: ``source`` (``-``: stdin), ``line``."""

    word: str
    source: str
    line: int


def listing(text: str, source: str) -> tuple[Listed, ...]:
    """The names or IDs of a ``--from-file`` text, one a line (``source``: its name, ``-`` for
    stdin); blank lines and lines starting with ``#`` are skipped, spaces around are not kept."""
    found = tuple(
        Listed(word, source, number)
        for number, line in enumerate(text.splitlines(), start=1)
        if (word := line.strip()) and not word.startswith("#")
    )
    if not found:
        raise InvalidInputError(f"--from-file {source}: no instance name or ID in it")
    return found


@dataclass(frozen=True)
class Selection:
    """The selectors of one fleet command, checked (make it with ``Selection.parse``).

    ``patterns`` and ``listed`` name instances (their union); every other selector is a
    filter each instance must pass; ``everything`` (``--all``) names every instance."""

    patterns: tuple[str, ...] = ()
    listed: tuple[Listed, ...] = ()
    name_regex: str | None = None
    tags: tuple[str, ...] = ()
    any_tags: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    statuses: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def parse(
        cls,
        *,
        patterns: Iterable[str] = (),
        listed: tuple[Listed, ...] = (),
        name_regex: str | None = None,
        tags: Iterable[str] = (),
        any_tags: Iterable[str] = (),
        not_tags: Iterable[str] = (),
        metadata: Iterable[str] = (),
        statuses: Iterable[str] = (),
        everything: bool = False,
    ) -> Selection:
        """The selection the options give (``InvalidInputError`` for one that cannot be
        used: nothing selected without ``everything``, ``everything`` with other selectors,
        a bad regex, tag, ``KEY=VALUE`` or status)."""
        words = tuple(patterns)
        for word in words:
            if not word.strip():
                raise InvalidInputError("an instance name, ID or glob cannot be empty")
        if name_regex is not None:
            _compile(name_regex)
        selection = cls(
            patterns=tuple(dict.fromkeys(words)),
            listed=listed,
            name_regex=name_regex,
            tags=checked_tags("--tag", tuple(tags)),
            any_tags=checked_tags("--any-tag", tuple(any_tags)),
            not_tags=checked_tags("--not-tag", tuple(not_tags)),
            metadata=tuple(metadata_items("--metadata", tuple(metadata)).items()),
            statuses=tuple(dict.fromkeys(_status(value) for value in statuses)),
            everything=everything,
        )
        others = [said for said in selection.selectors() if said != "--all"]
        if everything and others:
            raise InvalidInputError(
                f"--all selects every instance: it cannot go with {others[0]}",
                hint="drop --all to select by the other selectors",
            )
        if not (everything or others):
            raise InvalidInputError(
                "nothing is selected: name instances (names, IDs, globs, --from-file), "
                "filter them (--tag, --any-tag, --not-tag, --metadata, --status, --name-regex) "
                "or pass --all"
            )
        return selection

    @property
    def names_instances(self) -> bool:
        """Whether instances are named (arguments or ``--from-file``)."""
        return bool(self.patterns or self.listed)

    def selectors(self) -> list[str]:
        """Each selector as the command line says it (``web-*``, ``--tag prod``...)."""
        said = list(self.patterns)
        said += [f"--from-file {self.listed[0].source}"] if self.listed else []
        said += [f"--name-regex {self.name_regex}"] if self.name_regex is not None else []
        said += [f"--tag {tag}" for tag in self.tags]
        said += [f"--any-tag {tag}" for tag in self.any_tags]
        said += [f"--not-tag {tag}" for tag in self.not_tags]
        said += [f"--metadata {key}={value}" for key, value in self.metadata]
        said += [f"--status {status}" for status in self.statuses]
        said += ["--all"] if self.everything else []
        return said

    def cloud_filters(self) -> dict[str, Any]:
        """What to ask the cloud to filter (``CloudBackend.list_servers``'s keywords)."""
        portable = self.name_regex is not None and not _NOT_PORTABLE.search(self.name_regex)
        return {
            "name_regex": self.name_regex if portable else None,
            "tags": self.tags,
            "any_tags": self.any_tags,
            "not_any_tags": self.not_tags,
            "statuses": self.statuses,
        }

    def passes(self, server: ServerInfo) -> tuple[str, ...] | None:
        """The filters ``server`` passes, as said on the command line; None when it fails one.

        ``CloudError`` when a tag selector meets a server whose tags the cloud does not show."""
        if (self.tags or self.any_tags or self.not_tags) and server.tags is None:
            raise CloudError(
                "the cloud does not show server tags (nova microversion 2.26 or later): "
                "--tag, --any-tag and --not-tag cannot be checked",
                hint="select by names, --metadata, --status or --name-regex instead",
            )
        tags = set(server.tags or ())
        why: list[str] = []
        if self.name_regex is not None:
            if not _compile(self.name_regex).search(server.name):
                return None
            why.append(f"--name-regex {self.name_regex}")
        if not set(self.tags) <= tags:
            return None
        why += [f"--tag {tag}" for tag in self.tags]
        if self.any_tags:
            found = [tag for tag in self.any_tags if tag in tags]
            if not found:
                return None
            why += [f"--any-tag {tag}" for tag in found]
        if set(self.not_tags) & tags:
            return None
        why += [f"--not-tag {tag}" for tag in self.not_tags]
        for key, value in self.metadata:
            if server.metadata.get(key) != value:
                return None
            why.append(f"--metadata {key}={value}")
        if self.statuses:
            if server.status not in self.statuses:
                return None
            why.append(f"--status {server.status}")
        return tuple(why)


@dataclass(frozen=True)
class Selected:
    """An instance a selection chose, and why (the selectors it matched, as said)."""

    server: ServerInfo
    why: tuple[str, ...]


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as error:
        raise InvalidInputError(
            f"--name-regex {regex!r}: not a valid regular expression ({error})"
        ) from None


def _status(value: str) -> str:
    status = value.strip().upper()
    if status not in STATUSES:
        raise InvalidInputError(
            f"--status {value!r}: not a server status (one of {', '.join(STATUSES)})"
        )
    return status


def _by_name(servers: Iterable[ServerInfo]) -> list[ServerInfo]:
    return sorted(servers, key=lambda server: (server.name, server.id))


def _named(servers: list[ServerInfo], selection: Selection) -> list[tuple[ServerInfo, str]]:
    """Each instance the arguments and ``--from-file`` name, with the word that named it
    first, in the order given (a glob's instances by name); every word must name one."""
    words = [(word, word, True) for word in selection.patterns]
    words += [
        (item.word, f"--from-file {item.source}:{item.line}", False) for item in selection.listed
    ]
    found: list[tuple[ServerInfo, str]] = []
    missing: list[str] = []
    ambiguous: list[str] = []
    for word, said, may_glob in words:
        if may_glob and GLOB_CHARACTERS & set(word):
            matches = _by_name(s for s in servers if fnmatch.fnmatchcase(s.name, word))
            if not matches:
                missing.append(f"no instance name matches {word!r}")
        else:
            matches = [s for s in servers if s.id == word] or [s for s in servers if s.name == word]
            if not matches:
                missing.append(f"no instance named or with id {word!r}")
            elif len(matches) > 1:
                listed = ", ".join(f"{s.id} ({s.status})" for s in matches)
                ambiguous.append(f"{len(matches)} instances are named {word!r}: {listed}")
                continue
        found += [(server, said) for server in matches]
    if missing:
        raise NotFoundError("; ".join(missing))
    if ambiguous:
        raise AmbiguousNameError("; ".join(ambiguous) + "; use an id")
    return found


def resolve(backend: CloudBackend, selection: Selection) -> list[Selected]:
    """The instances ``selection`` chooses, each once, with why: named ones in the order
    named, else by name. ``NotFoundError`` when none (or a name matches none),
    ``AmbiguousNameError`` for a name several instances share."""
    named: dict[str, tuple[ServerInfo, list[str]]] = {}
    if selection.names_instances:
        for server, said in _named(backend.list_servers(), selection):
            words = named.setdefault(server.id, (server, []))[1]
            words += [] if said in words else [said]
    else:
        everyone = ["--all"] if selection.everything else []
        for server in _by_name(backend.list_servers(**selection.cloud_filters())):
            named[server.id] = (server, everyone)
    chosen = [
        Selected(server, (*words, *passed))
        for server, words in named.values()
        if (passed := selection.passes(server)) is not None
    ]
    if not chosen:
        raise NotFoundError(f"no instance matches {', '.join(selection.selectors())}")
    return chosen
