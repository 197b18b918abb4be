"""What one step of a playbook works on: the phase, and the playbook's values as it sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloudrescue.phase import Phase
from cloudrescue.playbook.paramtypes import Value


@dataclass(frozen=True)
class Target:
    """The phase (rescue host, disk, guest, check mode) and ``lookup`` for the playbook's
    parameters and facts (``param_equals``, ``assert``)."""

    phase: Phase
    lookup: Callable[[str], Value]
