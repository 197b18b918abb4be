"""``{{ name }}`` substitution: the only templating playbooks have (no filters, no code).

A reference names a parameter (``{{ user }}``) or a fact (``{{ facts.ssh_port }}``). A string
that is exactly one reference takes the referenced value with its type (a list of keys, an
int); references inside a longer string are replaced by their text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}")
WHOLE = re.compile(rf"^{REFERENCE.pattern}$")


class TemplateError(ValueError):
    """A string holds ``{{`` or ``}}`` that is not a plain reference."""


def references(text: str) -> list[str]:
    """Names referenced in ``text``, in order; ``TemplateError`` on anything else in braces."""
    rest = REFERENCE.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise TemplateError(
            f"{text!r}: only plain references like '{{{{ name }}}}' or "
            "'{{ facts.ssh_port }}' are supported (no filters, expressions or code)"
        )
    return REFERENCE.findall(text)


def whole_reference(text: str) -> str | None:
    """The name when ``text`` is exactly one reference (its value keeps its type)."""
    match = WHOLE.match(text)
    return match.group(1) if match else None


def substitute(text: str, lookup: Callable[[str], str]) -> str:
    """``text`` with every reference replaced by ``lookup(name)``."""
    return REFERENCE.sub(lambda match: lookup(match.group(1)), text)
