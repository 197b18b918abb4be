"""Playbooks: declarative repairs in YAML, run by a registry of typed actions.

A playbook (``playbooks/*.yaml``, shipped as ``cloudrescue.playbooks``, or a user's file) names
typed parameters, a mount phase and steps; each step is one declared action. The engine runs
the steps in a phase of a rescue session (``cloudrescue.phase``; ``runner.run_playbooks``), on
the mounted guest through ``GuestFS``, in check mode (``--dry-run``) only computing diffs.
This module stays import-light: the CLI reads ``SHORT_COMMANDS`` while it registers commands,
before pydantic or YAML are imported.
"""

SHORT_COMMANDS: tuple[str, ...] = ("fix-ssh-keys", "reset-password")
"""Shipped playbooks that are also top-level commands (``cloudrescue fix-ssh-keys``)."""
