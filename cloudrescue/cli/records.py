"""What each command prints for scripts (``-f json|yaml|value|csv``): every field declared
once, with its meaning.

The commands build their rows and records with these names; ``docs/output.md`` is generated
from here (``python -m cloudrescue.cli.records > docs/output.md``), and
``tests/unit/test_records.py`` fails when the document, or a command's record, drifts.
A field keeps its name and meaning once released: scripts read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Record:
    """The fields of one kind of record, in the order they are printed."""

    title: str
    shape: Literal["list", "record", "item"]  # a list of records, one record, or nested
    fields: dict[str, str]  # name -> meaning

    @property
    def names(self) -> tuple[str, ...]:
        """The field names, in order (the columns ``-c`` chooses from)."""
        return tuple(self.fields)


STATUS = Record(
    "`cloudrescue status`",
    "list",
    {
        "run": "the cloudrescue run that rescued the instance (null: rescued by someone else)",
        "instance": "the instance's name",
        "id": "the instance's ID",
        "cloud": "the cloud (clouds.yaml entry, or `envvars`; `@REGION` when one was chosen)",
        "state": "the journal's state (`rescue-requested`, `rescued`, `unrescue-requested`, "
        "`left-in-rescue`, `held`, `restored`), or the cloud's `STATUS[/task_state]` for a "
        "`cloud` row",
        "started": "when the rescue was requested (UTC, ISO 8601); for a `cloud` row, the "
        "time of cloudrescue's mark",
        "command": "the command that rescued it (`fix-ssh-keys`, `rescue`...)",
        "pid": "the process that rescued it, on this machine",
        "alive": "whether that process still runs (false: `cloudrescue resume` restores it)",
        "note": "the journal's last note (what failed, why it is held)",
        "source": "`journal` (this machine's journal) or `cloud` (in rescue or marked in the "
        "cloud, unknown to this journal)",
    },
)

RUN = Record(
    "`cloudrescue run`, `fix-ssh-keys`, `reset-password`",
    "record",
    {
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "playbook": "the playbook run",
        "dry_run": "true with `--dry-run`: nothing was changed",
        "changed": "how many steps changed something (would have, in a dry run)",
        "ok": "how many steps found nothing to change",
        "skipped": "how many steps did not apply (their `when` was false)",
        "status": "the instance's status at the end (`ACTIVE` after a run)",
        "message": "the playbook's closing message (null in a dry run)",
        "root": "the device of the guest's root filesystem (null: the playbook mounts nothing)",
        "skipped_mounts": "guest fstab entries left unmounted: `mountpoint`, `spec`, `reason`",
        "unmount_problems": "what could not be unmounted cleanly (empty when all went well)",
        "steps": "each step, in order (fields below)",
    },
)

STEP = Record(
    "each of `steps`",
    "item",
    {
        "name": "the step's name",
        "action": "its action (`docs/playbooks.md`)",
        "status": "`changed`, `ok`, `skipped` or `failed`",
        "note": "why it was skipped, or what it noticed",
        "changes": "what it changed (or would): `kind`, `path`, `detail`, `diff` (a unified "
        "diff in a dry run; null for secrets)",
        "commands": "what it ran (or would): `where` (`chroot` or `rescue`), `argv`, `ran`, "
        "`exit_code`, `output`",
        "report": "what a read-only step found (diagnostics, benchmarks), else empty",
    },
)

PLAYBOOKS = Record(
    "`cloudrescue playbooks list`",
    "list",
    {
        "name": "the playbook's name (`cloudrescue run INSTANCE NAME`)",
        "command": "true when it is also a command of its own (`cloudrescue NAME INSTANCE`)",
        "mount": "what it does with the guest's disk: `root` (mounted, with its fstab), "
        "`unmounted` (left unmounted: fsck, benchmarks) or `none` (the rescue system only)",
        "description": "one line: what it repairs",
    },
)

PLAYBOOK = Record(
    "`cloudrescue playbooks show`",
    "record",
    {
        "name": "the playbook's name",
        "description": "one line: what it repairs",
        "details": "more text (null when there is none)",
        "mount": "as in `playbooks list`",
        "chroot": "whether its steps run programs of the guest (in the sandbox)",
        "parameters": "each parameter: `name`, `type`, `description`, `choices`, `default`, "
        "`flag`",
        "steps": "each step: `name`, `action`, `when`, `params` (the action's parameters)",
        "message": "what it prints after a successful run (`{{ }}` references unrendered)",
        "source": "where it was read from (`playbooks/NAME.yaml`, or the user's file)",
    },
)

LAB = Record(
    "`cloudrescue lab status`",
    "record",
    {
        "lab_id": "the lab's ID (its network namespaces and processes carry it)",
        "api": "the lab's OpenStack API (Keystone at `/identity/v3`)",
        "network": "the instances' network",
        "cloud": "its clouds.yaml entry (`export OS_CLOUD=...`)",
        "daemon_pid": "the lab daemon's process (null: not running)",
        "daemon_answers": "whether the daemon answers (false: instances as the disk says)",
        "instances": "each instance: `name`, `id`, `address`, `variant`, `family`, `status`, "
        "`user`...",
    },
)

RECORDS = (STATUS, RUN, STEP, PLAYBOOKS, PLAYBOOK, LAB)


def markdown() -> str:
    """``docs/output.md``."""
    parts = [
        "# Output for scripts",
        "",
        "<!-- Generated by `python -m cloudrescue.cli.records > docs/output.md`: edit "
        "cloudrescue/cli/records.py, not this file. -->",
        "",
        "Every command that lists or reports takes `-f table|json|yaml|value|csv` and `-c "
        "COLUMN` (repeatable), as `openstack` does. `table` is for people; the other formats "
        "never depend on the terminal (no colour, no wrapping, nothing cut). Errors go to "
        "stderr, one line, and the exit status says what failed (README, *Exit codes*).",
        "",
        "```sh",
        "cloudrescue status -f json | jq -r '.[] | select(.alive == false) | .instance'",
        "cloudrescue fix-ssh-keys web-1 --key ~/.ssh/id_ed25519.pub --yes -f json | jq .changed",
        "cloudrescue playbooks list -f value -c name",
        "```",
        "",
        "The field names below are stable: a field keeps its name and meaning once released.",
    ]
    for record in RECORDS:
        shape = {"list": "a list of records", "record": "one record", "item": "nested"}
        parts += ["", f"## {record.title} ({shape[record.shape]})", ""]
        parts += ["| field | meaning |", "| --- | --- |"]
        parts += [f"| `{name}` | {meaning} |" for name, meaning in record.fields.items()]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
