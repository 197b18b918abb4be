"""The registry of playbook actions, each declared once in its module: generic file and
command actions, then the domain actions wrapping ``cloudrescue.fixes``."""

from __future__ import annotations

from cloudrescue.playbook.actions import access, boot, checks, commands, diagnose, files, metadata
from cloudrescue.playbook.actions.base import AnyAction

ACTIONS: dict[str, AnyAction] = {
    action.name: action
    for module in (files, metadata, commands, checks, access, boot, diagnose)
    for action in module.ACTIONS
}
