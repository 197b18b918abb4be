"""Shell completion of values: playbook names, and the instances the journal knows.

Typer completes commands and options itself (``cloudrescue --install-completion``); these
complete arguments. They run in the shell's completion request, so they read only local files
and never fail: no answer is better than an error in the middle of a command line.
"""

from __future__ import annotations


def _words(candidates: list[str], incomplete: str) -> list[str]:
    # A name with a control character or a space is left out: the shell would split it, or
    # print what the cloud (or a guest's user) put there.
    return [
        word
        for word in dict.fromkeys(candidates)
        if word.startswith(incomplete) and word.isprintable() and " " not in word
    ]


def playbook_names(incomplete: str) -> list[str]:
    """The shipped playbooks whose name starts with ``incomplete``."""
    from cloudrescue.playbook.catalog import shipped_names

    return _words(shipped_names(), incomplete)


def instance_names(incomplete: str) -> list[str]:
    """Instances of the journal (newest first, finished rescues too) matching ``incomplete``;
    none when there is no journal yet (completing never creates one)."""
    from cloudrescue.errors import CloudRescueError
    from cloudrescue.journal import Journal

    journal = Journal()
    if not journal.path.is_file():
        return []
    try:
        entries = journal.entries(include_restored=True)
    except CloudRescueError:
        return []
    return _words([entry.server_name for entry in entries], incomplete)
