"""The bad input matrix (issue 8): invalid command lines, files and parameters, one row each.

Every row runs the real CLI (``.venv/bin/cloudrescue``) in a subprocess, in its own tmp tree:
``home/`` is ``$HOME``, ``state/`` is ``$CLOUDRESCUE_STATE_DIR`` (with an empty journal in it,
as after an earlier run), ``lab/`` is ``$CLOUDRESCUE_LAB_DIR`` (no lab), and the row's files.
No ``OS_*`` variable comes from the caller; the row's ``cloud`` says what the CLI can find:

* ``dead``: ``clouds.yaml`` (``$OS_CLIENT_CONFIG_FILE``) names cloud ``dead``, ``OS_CLOUD=dead``,
  whose Keystone is a closed local port (127.0.0.1:9: connection refused). Input checks must
  all happen before this cloud is asked, so a check that is missing shows as exit 5.
* ``unknown``: the same ``clouds.yaml``, but ``OS_CLOUD=no-such-cloud`` (no entry for it).
* ``none``: no ``clouds.yaml`` and no ``OS_*`` at all (a first run).

stdin is a pipe (the row's text), never a terminal. Each row must exit with its documented
code (README "Exit codes", ``ExitStatus``); stderr must be exactly one ``cloudrescue: error:``
line holding the row's fragment (a ``hint:`` line may follow), with no traceback; stdout must
be empty; no secret the row gives is echoed; and nothing may change: the tmp tree (home, state
dir, the row's files) hashes the same before and after, and the journal holds no row.
(openstacksdk's entry-point cache, ``$XDG_CACHE_HOME``, is shared and kept out of the tree.)

A row with ``bug`` is a strict xfail: the CLI is wrong there today; ``bug`` says how and where
the fix belongs. The rows run in parallel threads, once per module (``outcomes``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import sqlite3
import stat
import struct
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from cloudrescue.errors import ExitStatus
from cloudrescue.journal import Journal

REPO = Path(__file__).resolve().parents[2]
CLOUDRESCUE = REPO / ".venv/bin/cloudrescue"
INVALID = REPO / "tests/playbook/invalid"

USAGE = ExitStatus.USAGE
NOT_FOUND = ExitStatus.NOT_FOUND
CLOUD = ExitStatus.CLOUD

Cloud = Literal["dead", "unknown", "none"]
File = str | bytes | None  # text, bytes, or None for a directory


def _public_key(comment: str) -> str:
    blob = b"".join(struct.pack(">I", len(part)) + part for part in (b"ssh-ed25519", bytes(32)))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}\n"


def invalid(name: str) -> dict[str, File]:
    """The file ``tests/playbook/invalid/<name>.yaml``, to create in the row's tree."""
    return {f"{name}.yaml": (INVALID / f"{name}.yaml").read_text()}


def expect(name: str) -> str:
    """The error that file's ``# expect:`` line announces, as a fragment (``file:line: …``)."""
    first = (INVALID / f"{name}.yaml").read_text().splitlines()[0]
    return f"/{name}.yaml:" + first.removeprefix("# expect: ").removesuffix("...")


SECRET = "s3cret"  # the password rows give: never echoed back
KEY = {"me.pub": _public_key("me@test")}
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
PORT_PLAYBOOK = {"open-port.yaml": """\
name: open-port
description: Let one more TCP port through the guest's firewalls.
parameters:
  port:
    type: int
    description: The TCP port.
    default: 2222
steps:
  - name: Open it
    action: firewall_allow_ssh
    ports: "{{ port }}"
"""}

@dataclass(frozen=True)
class Case:
    """One row: the command line (shell words; ``{tmp}`` is the row's tree), what it must do."""

    id: str
    argv: str
    code: ExitStatus
    fragment: str
    stdin: str = ""
    files: Mapping[str, File] = field(default_factory=dict)
    cloud: Cloud = "dead"
    bug: str | None = None


# Commands that reach for the cloud, each run with no cloud configured and a refused one (all
# go through CliState.cloud(): a read-only command and a repair cover the path).
CLOUD_COMMANDS = {
    "console-log": "console log web-1",
    "rescue": "rescue web-1",
    "fix-ssh-keys": "fix-ssh-keys web-1 --key {tmp}/me.pub --yes",
    "fleet-plan": "fleet plan --all",
    "diagnose": "diagnose web-1",
}

# fmt: off
CASES: list[Case] = [
    # --- the command line itself ---------------------------------------------------------------
    Case("unknown-command", "fix-ssh-key web-1", USAGE, "No such command 'fix-ssh-key'"),
    Case("unknown-subcommand", "playbooks remove fix-firewall", USAGE, "No such command 'remove'"),
    Case("unknown-option", "fix-ssh-keys web-1 --keys {tmp}/me.pub", USAGE,
         "No such option: --keys", files=KEY),
    Case("missing-instance", "fix-ssh-keys", USAGE, "Missing argument"),
    Case("run-missing-playbook-arg", "run web-1", USAGE, "Missing argument"),
    Case("os-cloud-without-value", "--os-cloud", USAGE, "'--os-cloud' requires an argument"),
    Case("disk-without-value", "fix-ssh-keys web-1 --key {tmp}/me.pub --yes --disk", USAGE,
         "'--disk' requires an argument", files=KEY),
    # --- option values --------------------------------------------------------------------------
    Case("timeout-zero", "fix-ssh-keys web-1 --key {tmp}/me.pub --yes --timeout 0", USAGE,
         "'--timeout'", files=KEY),
    Case("timeout-not-a-number", "unrescue web-1 --timeout abc", USAGE, "'--timeout'"),
    Case("ssh-timeout-negative", "rescue web-1 --ssh-timeout -1", USAGE, "'--ssh-timeout'"),
    Case("host-key-timeout-zero", "rescue web-1 --host-key-timeout 0", USAGE,
         "'--host-key-timeout'"),
    Case("console-lines-zero", "console log web-1 --lines 0", USAGE, "'--lines'"),
    Case("jump-not-a-port", "rescue web-1 --jump bastion:notaport", USAGE,
         "--jump 'bastion:notaport': expected [user@]host[:port]"),
    Case("jump-port-out-of-range", "rescue web-1 --jump bastion:70000", USAGE,
         "--jump 'bastion:70000': expected [user@]host[:port]"),
    Case("jump-empty-host", "rescue web-1 --jump debian@:22", USAGE,
         "--jump 'debian@:22': expected [user@]host[:port]"),
    Case("jump-empty", "rescue web-1 --jump ''", USAGE, "--jump '': expected [user@]host[:port]"),
    Case("jump-key-missing", "rescue web-1 --jump bastion --jump-key {tmp}/nope", USAGE,
         "--jump-key {tmp}/nope: no such file"),
    Case("jump-key-without-jump", "rescue web-1 --jump-key {tmp}/nope", USAGE,
         "--jump-key is for the bastion: it needs --jump"),
    Case("jump-fingerprint-malformed", "rescue web-1 --jump bastion --jump-fingerprint nonsense",
         USAGE, "--jump-fingerprint 'nonsense': expected SHA256:"),
    Case("console-type-unknown", "console url web-1 --type vga", USAGE,
         "--type 'vga': not a console type"),
    Case("image-empty", "rescue web-1 --image ''", USAGE, "--image is empty"),
    Case("address-empty", "rescue web-1 --address ''", USAGE, "--address is empty"),
    Case("disk-empty", "fix-ssh-keys web-1 --key {tmp}/me.pub --yes --disk ''", USAGE,
         "--disk is empty", files=KEY),
    Case("os-cloud-empty", "--os-cloud '' console log web-1", USAGE,
         "--os-cloud (or OS_CLOUD) is empty"),
    Case("instance-empty", "console log ''", USAGE, "an instance name or ID is needed"),
    # --- key files ------------------------------------------------------------------------------
    Case("key-missing", "fix-ssh-keys web-1 --key {tmp}/nope.pub --yes", USAGE,
         "{tmp}/nope.pub: no such key file"),
    Case("key-directory", "fix-ssh-keys web-1 --key {tmp} --yes", USAGE,
         "cannot read the key file"),
    Case("key-empty", "fix-ssh-keys web-1 --key {tmp}/empty.pub --yes", USAGE,
         "{tmp}/empty.pub: no public key in the file", files={"empty.pub": ""}),
    Case("key-not-a-key", "fix-ssh-keys web-1 --key {tmp}/notes.txt --yes", USAGE,
         "{tmp}/notes.txt:1: not an OpenSSH public key line", files={"notes.txt": "hello\n"}),
    Case("key-bad-base64", "fix-ssh-keys web-1 --key {tmp}/k.pub --yes", USAGE,
         "{tmp}/k.pub:1: the key data is not valid base64",
         files={"k.pub": "ssh-ed25519 not-base64! me\n"}),
    Case("key-private", "fix-ssh-keys web-1 --key {tmp}/id_ed25519 --yes", USAGE,
         "{tmp}/id_ed25519: this is a private key; pass the .pub file",
         files={"id_ed25519": PRIVATE_KEY}),
    Case("key-not-utf8", "fix-ssh-keys web-1 --key {tmp}/k.pub --yes", USAGE,
         "cannot read the key file", files={"k.pub": b"\xff\xfe\x00"}),
    Case("key-default-none", "fix-ssh-keys web-1 --yes", USAGE,
         "parameter 'key' not given and none of ~/.ssh/id_ed25519.pub"),
    Case("rescue-key-missing", "rescue web-1 --key {tmp}/nope.pub", USAGE,
         "{tmp}/nope.pub: no such key file"),
    Case("user-invalid", "fix-ssh-keys web-1 --key {tmp}/me.pub --user 'bad user' --yes", USAGE,
         "'bad user' is not a valid user or group name", files=KEY),
    # --- diagnose: its options, checked before the cloud is asked ------------------------------
    Case("diagnose-key-missing", "diagnose web-1 --key {tmp}/nope.pub", USAGE,
         "{tmp}/nope.pub: no such key file"),
    Case("diagnose-key-private", "diagnose web-1 --key {tmp}/id_ed25519", USAGE,
         "{tmp}/id_ed25519: this is a private key; pass the .pub file",
         files={"id_ed25519": PRIVATE_KEY}),
    Case("diagnose-user-invalid", "diagnose web-1 --user 'bad user'", USAGE,
         "'bad user' is not a valid user or group name"),
    Case("diagnose-port-zero", "diagnose web-1 --port 0", USAGE, "'--port'"),
    Case("diagnose-port-too-big", "diagnose web-1 --port 70000", USAGE, "'--port'"),
    Case("diagnose-connect-timeout-zero", "diagnose web-1 --connect-timeout 0", USAGE,
         "'--connect-timeout'"),
    Case("diagnose-address-empty", "diagnose web-1 --address ''", USAGE, "--address is empty"),
    Case("diagnose-rescue-option-alone", "diagnose web-1 --jump bastion --timeout 30",
         USAGE, "--jump, --timeout: only with --deep or --fix (a rescue)"),
    Case("diagnose-deep-bad-image", "diagnose web-1 --deep --image ''", USAGE,
         "--image is empty"),
    Case("diagnose-format-unknown", "diagnose web-1 -f xml", USAGE, "--format 'xml'"),
    Case("diagnose-column-unknown", "diagnose web-1 -c nope", USAGE, "no column 'nope'"),
    Case("diagnose-playbook-missing", "diagnose web-1 --playbook {tmp}/nope.yaml", USAGE,
         "{tmp}/nope.yaml: no such playbook file"),
    Case("diagnose-playbook-invalid", "diagnose web-1 --playbook {tmp}/symptom-bad-pattern.yaml",
         USAGE, expect("symptom-bad-pattern"), files=invalid("symptom-bad-pattern")),
    # --- playbooks: names and files -------------------------------------------------------------
    Case("run-unknown-playbook", "run web-1 no-such-playbook --yes", NOT_FOUND,
         "no playbook named 'no-such-playbook'"),
    Case("run-playbook-file-missing", "run web-1 {tmp}/nope.yaml --yes", USAGE,
         "{tmp}/nope.yaml: no such playbook file"),
    Case("run-playbook-is-directory", "run web-1 {tmp}/book.yaml --yes", USAGE,
         "{tmp}/book.yaml: cannot read the playbook", files={"book.yaml": None}),
    Case("run-playbook-empty", "run web-1 {tmp}/book.yaml --yes", USAGE, "{tmp}/book.yaml",
         files={"book.yaml": ""}),
    Case("run-playbook-not-a-mapping", "run web-1 {tmp}/book.yaml --yes", USAGE, "{tmp}/book.yaml",
         files={"book.yaml": "- name: a list\n- of steps\n"}),
    Case("schema-invalid-yaml", "run web-1 {tmp}/invalid-yaml.yaml --yes", USAGE,
         expect("invalid-yaml"), files=invalid("invalid-yaml")),
    Case("schema-duplicate-key", "run web-1 {tmp}/duplicate-key.yaml --yes", USAGE,
         expect("duplicate-key"), files=invalid("duplicate-key")),
    Case("schema-unknown-action", "run web-1 {tmp}/unknown-action.yaml --yes", USAGE,
         expect("unknown-action"), files=invalid("unknown-action")),
    Case("schema-unknown-step-field", "run web-1 {tmp}/unknown-step-field.yaml --yes", USAGE,
         expect("unknown-step-field"), files=invalid("unknown-step-field")),
    Case("schema-bad-parameter-type", "run web-1 {tmp}/bad-parameter-type.yaml --yes", USAGE,
         expect("bad-parameter-type"), files=invalid("bad-parameter-type")),
    Case("schema-wrong-action-parameter-type",
         "run web-1 {tmp}/wrong-action-parameter-type.yaml --yes", USAGE,
         expect("wrong-action-parameter-type"), files=invalid("wrong-action-parameter-type")),
    Case("schema-secret-in-argv", "run web-1 {tmp}/secret-in-argv.yaml --yes", USAGE,
         expect("secret-in-argv"), files=invalid("secret-in-argv")),
    Case("show-unknown-playbook", "playbooks show no-such-playbook", NOT_FOUND,
         "no playbook named 'no-such-playbook'"),
    Case("show-file-missing", "playbooks show {tmp}/nope.yaml", USAGE,
         "{tmp}/nope.yaml: no such playbook file"),
    Case("validate-file-missing", "playbooks validate {tmp}/nope.yaml", USAGE,
         "{tmp}/nope.yaml: no such playbook file"),
    Case("validate-missing-argument", "playbooks validate", USAGE, "Missing argument"),
    # --- playbook parameters --------------------------------------------------------------------
    Case("param-without-equals", "run web-1 fix-firewall -p mode --yes", USAGE,
         "--param 'mode': expected NAME=VALUE"),
    Case("param-unknown", "run web-1 fix-firewall -p port=22 --yes", USAGE,
         "playbook fix-firewall has no parameter 'port' (parameters: mode)"),
    Case("param-twice", "run web-1 fix-firewall -p mode=allow -p mode=disable --yes", USAGE,
         "parameter 'mode' given 2 times"),
    Case("param-bad-choice", "run web-1 fix-firewall -p mode=open --yes", USAGE,
         "parameter 'mode': 'open' is not one of allow, disable"),
    Case("param-bad-int", "run web-1 network-diagnostics -p count=three --yes", USAGE,
         "parameter 'count': expected an integer, got 'three'"),
    Case("param-bad-bool", "run web-1 fsck -p repair=maybe --yes", USAGE,
         "parameter 'repair': expected true or false, got 'maybe'"),
    Case("param-port-out-of-range", "run web-1 {tmp}/open-port.yaml -p port=70000 --yes", USAGE,
         "ports: 70000 is not a TCP port", files=PORT_PLAYBOOK),
    Case("param-bad-user", "run web-1 reset-password -p user=root:0 --secret-stdin --yes", USAGE,
         "'root:0' is not a valid user or group name", stdin=f"{SECRET}\n"),
    Case("param-secret-on-command-line", f"run web-1 reset-password -p password={SECRET} --yes",
         USAGE,
         "parameter 'password' is a secret: it is never taken from the command line"),
    Case("secret-no-terminal-run", "run web-1 reset-password --yes", USAGE,
         "password is a secret and stdin is not a terminal to ask for it: pass --secret-stdin"),
    Case("secret-no-terminal-reset-password", "reset-password web-1 --yes", USAGE,
         "password is a secret and stdin is not a terminal to ask for it: pass --password-stdin"),
    Case("secret-empty-stdin", "reset-password web-1 --yes --password-stdin", USAGE,
         "no password on stdin (one line expected)"),
    Case("secret-blank-line-stdin", "run web-1 reset-password --yes --secret-stdin", USAGE,
         "no password on stdin (one line expected)", stdin="\n"),
    # --- the cloud: OS_CLOUD has no entry (the same path for every command: two rows) ----------
    Case("console-log-cloud-unknown", "console log web-1", USAGE,
         "cloud configuration: Cloud no-such-cloud was not found", cloud="unknown"),
    Case("fix-ssh-keys-cloud-unknown", "fix-ssh-keys web-1 --key {tmp}/me.pub --yes", USAGE,
         "cloud configuration: Cloud no-such-cloud was not found", files=KEY, cloud="unknown"),
    # --- every cloud command: nothing configured; configured but Keystone refused ---------------
    *(Case(f"{name}-cloud-none", argv, USAGE, "no cloud is configured", files=KEY, cloud="none")
      for name, argv in CLOUD_COMMANDS.items()),
    *(Case(f"{name}-cloud-refused", argv, CLOUD, "cannot reach the cloud API", files=KEY)
      for name, argv in CLOUD_COMMANDS.items()),
    Case("clouds-yaml-unparsable", "console log web-1", USAGE,
         "cloud configuration: {tmp}/clouds.yaml:2 is not valid YAML",
         files={"clouds.yaml": "clouds: [dead\n"}),
    # --- the local journal: unusable ---------------------------------------------------------
    Case("journal-corrupt", "status", USAGE,
         "the rescue journal {tmp}/state/journal.sqlite3 cannot be used",
         files={"state/journal.sqlite3": b"not a database\n"}),
    Case("state-dir-is-a-file", "resume web-1", USAGE,
         "the rescue journal {tmp}/state/journal.sqlite3 cannot be used",
         files={"state": "a file where the state dir should be\n"}),
    # --- fleet selections and pacing: refused before the cloud is asked ------------------------
    Case("fleet-no-selector", "fleet plan", USAGE,
         "nothing is selected: name instances (names, IDs, globs, --from-file), filter them"),
    Case("fleet-all-with-selector", "fleet plan 'web-*' --all", USAGE,
         "--all selects every instance: it cannot go with web-*"),
    Case("fleet-bad-regex", "fleet plan --name-regex '(web'", USAGE,
         "--name-regex '(web': not a valid regular expression (missing ), unterminated"),
    Case("fleet-bad-metadata", "fleet plan --metadata role", USAGE,
         "--metadata 'role': expected KEY=VALUE"),
    Case("fleet-bad-status", "fleet plan --status SLEEPY", USAGE,
         "--status 'SLEEPY': not a server status (one of ACTIVE, BUILD, ERROR,"),
    Case("fleet-bad-tag", "fleet plan --tag prod,web", USAGE,
         "--tag 'prod,web': a tag cannot contain ',' or '/'"),
    Case("fleet-from-file-missing", "fleet plan --from-file {tmp}/hosts.txt", USAGE,
         "--from-file {tmp}/hosts.txt: no such file"),
    Case("fleet-from-file-directory", "fleet plan --from-file {tmp}/hosts", USAGE,
         "--from-file {tmp}/hosts: cannot read it (Is a directory)", files={"hosts": None}),
    Case("fleet-from-file-empty-stdin", "fleet plan --from-file -", USAGE,
         "--from-file -: no instance name or ID in it", stdin="\n# nothing here\n"),
    Case("fleet-bad-batches", "fleet plan --all --batches 1,0", USAGE,
         "--batches '1,0': '0' is not a size"),
    Case("fleet-concurrency-zero", "fleet plan --all --concurrency 0", USAGE, "'--concurrency'"),
    Case("fleet-bad-column", "fleet plan --all -c nope", USAGE,
         "no column 'nope' here (columns: name, id, status, address, batch, why)"),
    # --- the lab: argument errors that fail before anything starts ------------------------------
    Case("lab-break-unknown-scenario", "lab break web-1 no-such-scenario", USAGE,
         "unknown scenario 'no-such-scenario' (known: "),
    Case("lab-up-too-many", "lab up --instances 201", USAGE, "'--instances'"),
    Case("lab-up-unknown-variant", "lab up --variant zfs", USAGE, "'zfs' is not one of"),
    Case("lab-up-bad-tag", "lab up --tag a/b", USAGE, "--tag 'a/b': a tag cannot contain"),
    Case("lab-add-bad-metadata", "lab add --metadata role", USAGE,
         "--metadata 'role': expected KEY=VALUE"),
]
# fmt: on


# --- how a row is run and judged ----------------------------------------------------------------

DEAD_CLOUDS_YAML = """\
clouds:
  dead:
    auth:
      auth_url: http://127.0.0.1:9/v3
      username: nobody
      password: nothing
      project_name: nothing
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
"""


@dataclass(frozen=True)
class Outcome:
    """What one row did (``root``: its tree)."""

    root: Path
    code: int
    stdout: str
    stderr: str
    before: dict[str, str]
    after: dict[str, str]
    journal_rows: int


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type, mode and content hash (or link target)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        mode = stat.filemode(info.st_mode)
        if path.is_symlink():
            what = f"-> {os.readlink(path)}"
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = ""
        found[path.relative_to(root).as_posix()] = f"{mode} {what}"
    return found


def _environment(root: Path, cloud: Cloud, cache: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(root / "home"),
        CLOUDRESCUE_STATE_DIR=str(root / "state"),
        CLOUDRESCUE_LAB_DIR=str(root / "lab"),
        # openstacksdk's plugin loader (stevedore) caches entry points in $XDG_CACHE_HOME:
        # a shared cache outside the hashed tree (it is not cloudrescue's doing).
        XDG_CACHE_HOME=str(cache),
        COLUMNS="200",
    )
    if cloud != "none":
        env.update(OS_CLIENT_CONFIG_FILE=str(root / "clouds.yaml"))
        env.update(OS_CLOUD="dead" if cloud == "dead" else "no-such-cloud")
    return env


def _journal_rows(state_dir: Path) -> int:
    """Rows in the journal; 0 when there is none (or it is the row's garbage: the tree hash
    says whether it changed)."""
    path = state_dir / "journal.sqlite3"
    if not path.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "rescues" not in tables:
                return 0
            count: int = db.execute("SELECT COUNT(*) FROM rescues").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
    return count


def run_case(case: Case, root: Path, cache: Path) -> Outcome:
    """Build the row's tree under ``root``, run the CLI there, and record what it did."""
    (root / "home").mkdir(parents=True)
    if not any(name.split("/")[0] == "state" for name in case.files):
        Journal(root / "state").entries()  # an empty journal, as after an earlier run
    if case.cloud != "none":
        (root / "clouds.yaml").write_text(DEAD_CLOUDS_YAML)
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    argv = [word.replace("{tmp}", str(root)) for word in shlex.split(case.argv)]
    before = tree(root)
    result = subprocess.run(
        [str(CLOUDRESCUE), *argv],
        input=case.stdin,
        capture_output=True,
        text=True,
        env=_environment(root, case.cloud, cache),
        cwd=root,
        timeout=60,
        check=False,
    )
    return Outcome(
        root,
        result.returncode,
        result.stdout,
        result.stderr,
        before,
        tree(root),
        _journal_rows(root / "state"),
    )


def _params(cases: list[Case]) -> Iterator[object]:
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Every selected row, run once, in parallel (each is a subprocess of ~0.3-1 s)."""
    wanted = {
        item.callspec.id
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and hasattr(item, "callspec")
    }
    selected = [case for case in CASES if case.id in wanted]
    base = tmp_path_factory.mktemp("bad-input")
    cache = base / "cache"
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1))) as pool:
        futures = {
            case.id: pool.submit(run_case, case, base / f"case-{number}", cache)
            for number, case in enumerate(selected)
        }
        return {name: future.result() for name, future in futures.items()}


def test_the_matrix_is_big_enough_and_ids_are_unique() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", list(_params(CASES)))
def test_bad_input_is_one_clear_line_and_changes_nothing(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    done = outcomes[case.id]
    shown = f"exit {done.code}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout, shown
    assert done.code == case.code, shown
    lines = done.stderr.splitlines()
    assert lines, shown
    errors = [line for line in lines if line.startswith("cloudrescue: error: ")]
    assert len(errors) == 1, shown
    assert lines[0] == errors[0], f"something before the error line\n{shown}"
    rest = lines[1:]
    assert len(rest) <= 1 and all(line.startswith("hint: ") for line in rest), shown
    assert case.fragment.replace("{tmp}", str(done.root)) in errors[0], shown
    assert done.stdout == "", shown
    assert SECRET not in done.stdout + done.stderr, f"a secret was echoed\n{shown}"
    assert done.after == done.before, f"the tree changed\n{shown}"
    assert done.journal_rows == 0, shown
