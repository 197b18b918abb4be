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
        "playbook": "the playbook run (several: their names in order, separated by spaces)",
        "dry_run": "true with `--dry-run`: nothing was changed",
        "changed": "how many steps changed something (would have, in a dry run; a failed "
        "playbook's steps count too, though its changes were restored)",
        "ok": "how many steps found nothing to change",
        "skipped": "how many steps did not apply (their `when` was false)",
        "status": "the instance's status at the end (`ACTIVE` after a run)",
        "message": "the playbook's closing message (several: one line each; null in a dry run "
        "or when none has one)",
        "root": "the device of the guest's root filesystem (null: the playbook mounts nothing)",
        "skipped_mounts": "guest fstab entries left unmounted: `mountpoint`, `spec`, `reason`",
        "unmount_problems": "what could not be unmounted cleanly (empty when all went well)",
        "steps": "each step of every playbook that ran, in order (fields below)",
        "result": "`changed`, `ok`, or `failed` (a playbook failed: the exit status is its "
        "error's, and `playbooks` says which)",
        "playbooks": "each playbook, in the order given (fields below)",
    },
)

PLAYBOOK_RUN = Record(
    "each of `playbooks`",
    "item",
    {
        "playbook": "the playbook's name",
        "result": "`changed`, `ok`, `failed` (its own changes were restored from backups; what "
        "the playbooks before it changed is kept) or `not-run` (an earlier one failed)",
        "changed": "how many of its steps changed something (would have, in a dry run)",
        "ok": "how many of its steps found nothing to change",
        "skipped": "how many of its steps did not apply",
        "message": "its closing message (null in a dry run, when it failed or has none)",
        "error": "why it failed, one line (null unless `result` is `failed`)",
        "steps": "its steps, in order (as `steps`)",
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
        "symptoms": "what it cures as `cloudrescue diagnose` sees it: `console` (`pattern`, "
        "`cause`, `confidence`), `observations` (`name`, `cause`, `confidence`), `deep` (check "
        "names)",
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

FLEET_PLAN = Record(
    "`cloudrescue fleet plan`",
    "list",
    {
        "name": "the instance's name",
        "id": "the instance's ID",
        "status": "its status as the cloud shows it (`ACTIVE`, `ERROR`, `SHUTOFF`...)",
        "address": "where cloudrescue would reach its rescue system (floating, public, then "
        "fixed IP; null: it has no address)",
        "batch": "the batch it is in, from 1 (`--batches`; one batch without it)",
        "why": "the selectors it matched, as given: the argument (name, ID, glob) or "
        "`--from-file FILE:LINE` that named it, or `--all`, then each filter it passed "
        "(`--tag prod`, `--status ERROR`...), comma-separated",
    },
)

FLEET_RESULT = Record(
    "`cloudrescue fleet run`, `fleet fix-ssh-keys`, `fleet reset-password`, "
    "`fleet resume --continue` (and `--report FILE`)",
    "list",
    {
        "fleet_id": "the fleet run's ID (`fleet show`, `fleet resume`)",
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "batch": "its batch, from 1",
        "result": "`changed`, `ok` (nothing needed changing), `skipped` (no step applied), "
        "`failed`, `interrupted` (Ctrl-C: restored and unrescued) or `not-started`",
        "changes": "what it changed (or would, with `--dry-run`): `kind`, `path`, `detail`",
        "error": "why it failed (one line; null unless `failed`)",
        "exit_status": "the failure's exit status name as a single command would exit with "
        "it (`CONNECTION`, `FIX_FAILED`...; README, *Exit codes*; null unless `failed`)",
        "elapsed": "seconds it took, from its start to its unrescue (0 when not started)",
        "stages": "the seconds each stage took, in order: `stage`, `seconds`",
    },
)

FLEET_RUNS = Record(
    "`cloudrescue fleet list`",
    "list",
    {
        "fleet_id": "the fleet run's ID",
        "started_at": "when it started (UTC, ISO 8601)",
        "command": "what ran: `run PLAYBOOK`, `fix-ssh-keys`, `reset-password`",
        "dry_run": "true for a `--dry-run`",
        "state": "`running`, `finished`, `interrupted` (Ctrl-C), or `died` (its process is "
        "gone while it ran: `fleet resume` it)",
        "instances": "how many instances it selected",
        "results": "how many instances have each result, e.g. `changed=10 failed=1`",
    },
)

FLEET_MEMBERS = Record(
    "`cloudrescue fleet show RUN`",
    "list",
    {
        "position": "its place in the run's order, from 1",
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "result": "as in `fleet run`'s `result` (`not-started` also for one in flight when "
        "its run died)",
        "error": "why it failed (null unless `failed`)",
        "exit_status": "the failure's exit status name (null unless `failed`)",
        "rescue": "the state of its rescue still open in the journal (`rescued`, "
        "`unrescue-requested`...; null: none is open)",
    },
)

CONSOLE_URL = Record(
    "`cloudrescue console url`",
    "record",
    {
        "type": "nova's console type (`novnc`, `serial`, `spice-html5`...; `--type spice` is "
        "`spice-html5`)",
        "protocol": "the console's protocol: `vnc`, `serial`, `spice`, `rdp` or `mks`",
        "url": "the URL to open, in one click for a web page (noVNC: `vnc_lite.html?path=...`, "
        "or `vnc.html?autoconnect=1&path=...` with `--vnc-html`, the token kept); it carries "
        "the console's token, a short-lived credential",
        "page": "the web page `url` opens (`vnc_lite.html`, `vnc.html`, `spice_auto.html`...); "
        "null when it names none, as a serial console's `ws://` URL (a websocket client opens "
        "it)",
        "cloud_url": "the URL as the cloud answered it",
    },
)

VNC_CONSOLE = Record(
    "`cloudrescue console url --vnc` (an OVHcloud VPS)",
    "record",
    {
        "instance": "the VPS's service name",
        "protocol": "`VNCOverWebSocket` (what noVNC and browsers speak) or `VNC`",
        "host": "where the VPS's VNC console answers",
        "port": "its port",
        "url": "`wss://host:port` (`VNCOverWebSocket`) or `vnc://host:port`",
        "password": "the console's one-time VNC password; null unless `--show-password`",
    },
)

SHELL = Record(
    "`cloudrescue shell`",
    "record",
    {
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "run": "the cloudrescue run (the journal entry; a reattaching shell keeps the first's)",
        "exit_status": "the shell's (or the command's) exit status; null when it is unknown "
        "(left with Ctrl-], the shell goes on, or the connection took it)",
        "root": "the rescue system's device of the guest's root filesystem (null: mounted by "
        "an earlier shell of the run)",
        "kept_in_rescue": "true when the instance stays in rescue (`--keep-rescued`, Ctrl-] k, "
        "or the answer no)",
        "shell_running": "true when the shell goes on in tmux on the rescue: `cloudrescue "
        "shell` reattaches, `cloudrescue unrescue` ends it",
        "changes": "the watched guest files (under /etc, /home, /root, /boot, /var/spool/cron) "
        "the shell created, changed or removed: `change` (`created`, `changed`, `removed`), "
        "`path` (in the guest), `detail` (what changed: mode, owner, size, modified)",
        "changes_complete": "false when the listing was cut short (time or size bound): "
        "`changes` may miss some",
    },
)

DIAGNOSIS = Record(
    "`cloudrescue diagnose`",
    "record",
    {
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "status": "its status as the cloud reports it (`ACTIVE`, `SHUTOFF`, `ERROR`...)",
        "task_state": "the task nova runs on it (null: none)",
        "fault": "nova's fault of an instance in ERROR, `message (code N)` (null: none)",
        "address": "the address probed (`--address`, else floating, public, then fixed IP; "
        "null: the instance has none)",
        "healthy": "true when no problem was found: then `findings` is empty and nothing is "
        "suggested",
        "playbook": "the top finding's playbook (null: healthy, or no playbook cures it)",
        "command": "the top finding's command to run (null: healthy, or no playbook cures it: "
        "see its `advice`)",
        "findings": "the findings, the likeliest first (fields below)",
        "probes": "each port probed, in order (fields below; empty: not probed)",
        "user": "the user whose keys sshd was asked about (null: none)",
        "user_guessed": "true when `user` was taken from the OS the console names, not given",
        "user_source": "how `user` was told: `--user`, cloud-init's table of authorized keys on "
        "the console (its line), or the cloud image's user of the OS the console names",
        "console_lines": "lines in the console log as read (0: empty or not readable)",
        "boot_line": "the line where the console's last boot starts (what the console is read "
        "for; null: empty log)",
        "notes": "what could not be checked, or is worth knowing (one line each)",
        "seconds": "how long the diagnosis took",
    },
)

FINDING = Record(
    "each of `findings`",
    "item",
    {
        "rank": "its place, from 1 (the likeliest): by confidence, then by the strength of its "
        "evidence (an API fact 3, a probe 2, a console line 1, summed)",
        "cause": "what is wrong, one line",
        "confidence": "`certain` (the cloud API states it), `high`, `medium` or `low`",
        "playbook": "the playbook that cures it (a shipped name, or a `--playbook` file; null: "
        "none does)",
        "command": "the command to run (null without a playbook)",
        "advice": "what to do by hand when no playbook cures it (null with a playbook)",
        "evidence": "what was seen: `source` (`api`, `console`, `probe`, `deep`: what a "
        "playbook would change on the disk, with `--deep`), `line` (a console "
        "line's number in the log as read, else null), `text` (as seen: guest text unescaped "
        "in JSON)",
    },
)

FLEET_DIAGNOSIS = Record(
    "`cloudrescue fleet diagnose`",
    "list",
    {
        "instance": "the instance's name",
        "instance_id": "the instance's ID",
        "status": "its status as the cloud reports it",
        "healthy": "true when no problem was found (nothing to change)",
        "cause": "the top finding's cause, `no problem found`, or `diagnosis failed`",
        "confidence": "the top finding's confidence (null: none)",
        "playbook": "the playbook that cures the top finding (null: none, or none does)",
        "command": "the command to run for it (null without a playbook)",
        "findings": "how many findings the diagnosis has (`diagnose NAME` shows them)",
        "error": "why the diagnosis failed (null: it did not)",
    },
)

PROBE = Record(
    "each of `probes`",
    "item",
    {
        "port": "the TCP port",
        "state": "`open`, `refused`, `no-answer` (no answer in `--connect-timeout` seconds), "
        "`unreachable` (no host or route) or `error`",
        "detail": "the answer in words",
        "seconds": "how long the probe took",
        "banner": "sshd's SSH banner (null: not SSH, or not open)",
        "host_key": "the SHA256 fingerprint of the host key it presented (not checked)",
        "auth_methods": "the authentication methods it offers (null: not known)",
        "keys": "each public key asked about (without logging in): `fingerprint`, `type`, "
        "`file`, `accepted`",
        "error": "where the SSH exchange stopped (null: it went through)",
    },
)

RECORDS = (
    STATUS, RUN, PLAYBOOK_RUN, STEP, PLAYBOOKS, PLAYBOOK, LAB, FLEET_PLAN, FLEET_RESULT, FLEET_RUNS,
    FLEET_MEMBERS, CONSOLE_URL, VNC_CONSOLE, SHELL, DIAGNOSIS, FINDING, PROBE, FLEET_DIAGNOSIS,
)  # fmt: skip


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
