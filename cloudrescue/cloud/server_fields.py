"""What nova accepts as a server's tags and metadata items, checked before anything is sent
(the fleet's selectors, the lab's ``--tag`` / ``--metadata``)."""

from __future__ import annotations

from cloudrescue.errors import InvalidInputError

TAG_MAX_LENGTH = 60  # nova's limit on a server tag


def tag_problem(tag: str) -> str | None:
    """Why nova would refuse ``tag`` as a server tag (1 to 60 characters, no ``,`` or ``/``:
    nova splits filter values at commas), or None when it is a valid tag."""
    if not tag:
        return "a tag cannot be empty"
    if len(tag) > TAG_MAX_LENGTH:
        return f"a tag has at most {TAG_MAX_LENGTH} characters"
    if "," in tag or "/" in tag:
        return "a tag cannot contain ',' or '/'"
    return None


def checked_tags(option: str, tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``tags`` as given to ``option``, once each; ``InvalidInputError`` for one nova refuses."""
    for tag in tags:
        problem = tag_problem(tag)
        if problem is not None:
            raise InvalidInputError(f"{option} {tag!r}: {problem}")
    return tuple(dict.fromkeys(tags))


def metadata_items(option: str, items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` words of ``option`` as a mapping (``InvalidInputError`` for a word without
    ``=`` or with an empty key, or a key given twice with different values)."""
    found: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InvalidInputError(f"{option} {item!r}: expected KEY=VALUE")
        if found.get(key, value) != value:
            raise InvalidInputError(f"{option}: {key!r} given twice with different values")
        found[key] = value
    return found
