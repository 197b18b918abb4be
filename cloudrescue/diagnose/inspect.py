"""The deep checks that read the rescued guest's files themselves (``diagnose --deep``).

Most deep checks are a playbook run in check mode (``deep.py``): what it would change is the
evidence. Two causes have no playbook that can run that way: ``reset-password`` needs the new
password, and ``reset-cloud-init`` would always "change" cloud-init's state (it resets it), so
its dry run says nothing. Their checks read the guest instead (``INSPECTORS``, by the deep
check's name of ``registry.DEEP_CHECKS``); a playbook that declares such a check in its
``symptoms.deep`` is named by the finding.

Everything here reads through ``GuestFS`` (symlinks never leave the guest root, no FIFO or
device is opened, sizes are bounded) and is hostile data: it is parsed defensively and kept
as text for the renderers to escape. No secret is ever put in evidence: of ``/etc/shadow``
only the state of a password is said (locked, none, set, expired), never its hash.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.findings import Confidence, Evidence
from cloudrescue.errors import InvalidInputError
from cloudrescue.fixes.common import load_guest_yaml
from cloudrescue.fixes.ssh_access import default_user
from cloudrescue.guestfs import GuestFS, GuestPathError

SHADOW = "/etc/shadow"
CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d"
DISABLED_MARKER = "/etc/cloud/cloud-init.disabled"
CLOUD_DATA = "/var/lib/cloud/data"
CLOUD_LOG = "/var/log/cloud-init.log"
MAX_STATE_FILE = 1024 * 1024
"""cloud-init's JSON state files are read when at most this large (they are a few KiB)."""
MAX_LOG = 8 * 1024 * 1024
"""cloud-init's log is read when at most this large."""
MAX_ERRORS_SHOWN = 3
MAX_ERROR_TEXT = 200
"""An error of cloud-init's state or log is cut to this many characters in evidence."""
LOG_RUN_STARTS = (  # a boot's first stage: init-local, or init when there is no local stage
    re.compile(r"Cloud-init v\. \S+ running 'init-local'"),
    re.compile(r"Cloud-init v\. \S+ running 'init'"),
)
LOG_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|^Traceback \(most recent call last\)")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
FIRST_REGULAR_UID = 1000
LAST_REGULAR_UID = 60000
NEVER_EXPIRES = 99999


@dataclass(frozen=True)
class Context:
    """What an inspector knows of the instance besides its disk: the server as the API gave
    it, the user ``--user`` named (None: the inspectors find the cloud user themselves),
    today (days since the epoch, as ``/etc/shadow`` counts) and the user sshd was asked
    about without rescue (``probed``)."""

    server: ServerInfo
    user: str | None = None
    today: int = 0
    probed: str | None = None  # the user sshd was asked about without rescue


@dataclass(frozen=True)
class Inspected:
    """What one inspector found: ``evidence`` of a problem (empty: none), its ``cause`` and
    ``confidence``, the playbook parameters it suggests (``params``), whether what it read
    clears the cause (``cleared``: the files that would show it were there and show nothing),
    and ``notes`` (what it saw that is no problem, or what it could not read)."""

    check: str
    cause: str = ""
    confidence: Confidence = "medium"
    evidence: tuple[Evidence, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    cleared: bool = False
    notes: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """A problem was found."""
        return bool(self.evidence)


Inspector = Callable[[GuestFS, Context], Inspected]


def _day(number: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=number)).strftime("%Y-%m-%d")


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


# -- the cloud user --------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudUser:
    """The guest's cloud user and how it was told (``source``, said in notes and records)."""

    name: str
    source: str


def _cloud_cfg_user(files: GuestFS) -> CloudUser | None:
    """``system_info.default_user.name`` of cloud.cfg, then of cloud.cfg.d's ``*.cfg`` in
    cloud-init's order (the last one that sets it wins)."""
    found: CloudUser | None = None
    paths = [CLOUD_CFG, *(
        posixpath.join(CLOUD_CFG_D, name)
        for name in files.listdir(CLOUD_CFG_D)
        if name.endswith(".cfg")
    )]
    for path in paths:
        try:
            text = files.read_text(path)
            config = load_guest_yaml(text) if text else None
        except (GuestPathError, yaml.YAMLError):
            continue
        system = config.get("system_info") if isinstance(config, dict) else None
        default = system.get("default_user") if isinstance(system, dict) else None
        name = default.get("name") if isinstance(default, dict) else None
        if isinstance(name, str) and USER_NAME.match(name):
            found = CloudUser(name, f"cloud-init's default user in {path}")
    return found


def cloud_user(files: GuestFS, given: str | None) -> CloudUser | None:
    """The user the instance is logged in with: ``given`` (``--user``), else cloud-init's
    default user in its configuration (when the guest has that account), else the one
    regular account whose home has an ``authorized_keys`` (the lowest uid when several), else
    a cloud image's usual user name whose home exists (``fixes.ssh_access.default_user``)."""
    if given is not None:
        return CloudUser(given, "--user")
    users = files.users()
    configured = _cloud_cfg_user(files)
    if configured is not None and configured.name in users:
        return configured
    for user in sorted(users.values(), key=lambda item: item.uid):
        regular = FIRST_REGULAR_UID <= user.uid < LAST_REGULAR_UID
        if not regular or not user.home.startswith("/") or not USER_NAME.match(user.name):
            continue  # a system account, or a name no useradd makes (it could forge output)
        keys = posixpath.join(user.home, ".ssh/authorized_keys")
        try:
            if files.stat(keys) is not None:
                return CloudUser(user.name, f"the account with SSH keys, {keys}")
        except GuestPathError:
            continue
    try:
        usual = default_user(files)
    except InvalidInputError:
        return None
    return None if usual.uid == 0 else CloudUser(usual.name, "a cloud image's usual user name")


# -- root-password: /etc/shadow ---------------------------------------------------------------


@dataclass(frozen=True)
class Password:
    """The state of one account's password in ``/etc/shadow``, said without its hash."""

    user: str
    state: str  # "locked", "no password", "set"
    problem: str | None  # what makes it unusable to log in with, if anything
    changed: str  # "password changed on 2026-12-01", "last change 0 (must be changed)"

    def describe(self) -> str:
        """One line of evidence: ``/etc/shadow: root: set, expired ...``."""
        what = f"{self.state}, {self.problem}" if self.problem else self.state
        return f"{SHADOW}: {self.user}: {what} ({self.changed})"


def password_state(fields: list[str], day: int) -> Password:
    """What a shadow entry (its fields) says of its password on ``day``."""
    user, hashed = fields[0], fields[1]
    lastchg = _int(fields[2]) if len(fields) > 2 else None
    maximum = _int(fields[4]) if len(fields) > 4 else None
    inactive = _int(fields[6]) if len(fields) > 6 else None
    expire = _int(fields[7]) if len(fields) > 7 else None
    if hashed == "":
        state = "no password"
    elif hashed[0] in "!*":
        state = "locked"
    else:
        state = "set"
    if lastchg is None:
        changed = "no last change recorded"
    elif lastchg == 0:
        changed = "last change 0"
    else:
        changed = f"password changed on {_day(lastchg)}"
    problem: str | None = None
    if expire is not None and expire <= day:
        problem = f"account expired on {_day(expire)}"
    elif state == "no password":
        problem = "anyone may log in on the console, and sshd refuses an empty password"
    elif state == "set" and lastchg == 0:
        problem = "expired: it must be changed at the next login"
    elif state == "set" and lastchg and maximum is not None and lastchg + maximum < day and (
        maximum < NEVER_EXPIRES
    ):
        problem = f"expired on {_day(lastchg + maximum)}"
        if inactive is not None and lastchg + maximum + inactive < day:
            problem += " and inactive since: it can no longer be changed at login"
    return Password(user, state, problem, changed)


def shadow_check(files: GuestFS, context: Context) -> Inspected:
    """``root-password``: root's and the cloud user's passwords (locked, none, expired)."""
    check = "root-password"
    try:
        text = files.read_text(SHADOW)
    except GuestPathError as error:
        return Inspected(check, notes=(f"{SHADOW} could not be read: {error.message}",))
    if text is None:
        return Inspected(check, notes=(f"the guest has no {SHADOW}",))
    entries = {fields[0]: fields for fields in (line.split(":") for line in text.splitlines())
               if len(fields) >= 2 and fields[0] and not fields[0].startswith("#")}
    found = cloud_user(files, context.user)
    wanted = ["root", *([found.name] if found is not None and found.name != "root" else [])]
    states = [password_state(entries[name], context.today) for name in wanted if name in entries]
    bad = [item for item in states if item.problem]
    notes = [f"deep: the cloud user is {found.name} (from {found.source})"] if found else []
    if found is not None and context.probed is not None and found.name != context.probed:
        notes.append(f"deep: sshd was asked about {context.probed}'s keys, the disk's cloud "
                     f"user is {found.name}: --user {found.name} asks about that one")
    if not bad:
        shown = "; ".join(f"{item.user}: {item.state}" for item in states) or "no entry"
        return Inspected(check, cleared=bool(states),
                         notes=(*notes, f"deep: passwords in {SHADOW}: {shown}"))
    others = [item for item in states if not item.problem]
    named = [] if "root" in {item.user for item in bad} else [("user", bad[0].user)]
    return Inspected(
        check,
        cause="no password to log in with on the console: "
        + "; ".join(
            f"{', '.join(item.user for item in bad if item.problem == problem)}: {problem}"
            for problem in dict.fromkeys(item.problem for item in bad)
        ),
        confidence="medium",
        evidence=tuple(Evidence("deep", item.describe()) for item in [*bad, *others]),
        params=tuple(named),
        notes=tuple(notes),
    )


# -- cloud-init: its state and its last run's errors -------------------------------------------


def _json(files: GuestFS, path: str) -> tuple[Any, str | None]:
    """A JSON state file of the guest (None when absent), and why it could not be read."""
    try:
        info = files.stat(path)
        if info is None:
            return None, None
        if not info.is_file or info.size > MAX_STATE_FILE:
            return None, f"{path} is not a small regular file"
        return json.loads(files.read_text(path) or "null"), None
    except (GuestPathError, ValueError, RecursionError) as error:
        return None, f"{path} could not be read: {getattr(error, 'message', error)}"


def _errors(document: Any) -> list[str]:
    """The ``errors`` of cloud-init's result.json or status.json (``v1``, each stage)."""
    top = document.get("v1") if isinstance(document, dict) else None
    if not isinstance(top, dict):
        return []
    found: list[Any] = list(top.get("errors") or []) if isinstance(top.get("errors"), list) else []
    for stage in top.values():
        if isinstance(stage, dict) and isinstance(stage.get("errors"), list):
            found += stage["errors"]
    return [str(item) for item in dict.fromkeys(str(item) for item in found)]


def _log_errors(files: GuestFS) -> tuple[list[str], str | None]:
    """The error lines of cloud-init's last run in its log (the lines after the last
    ``running 'init-local'`` or ``'init'``), and why the log could not be read."""
    try:
        info = files.stat(CLOUD_LOG)
        if info is None:
            return [], None
        if not info.is_file or info.size > MAX_LOG:
            return [], f"{CLOUD_LOG} is not a regular file of at most {MAX_LOG} bytes"
        lines = (files.read_text(CLOUD_LOG) or "").splitlines()
    except GuestPathError as error:
        return [], f"{CLOUD_LOG} could not be read: {error.message}"
    last = lines
    for start in LOG_RUN_STARTS:
        starts = [number for number, line in enumerate(lines) if start.search(line)]
        if starts:
            last = lines[starts[-1] :]
            break
    return [line for line in last if LOG_ERROR.search(line)], None


def _manual_cache_clean(files: GuestFS) -> bool:
    value = False
    for path in [CLOUD_CFG, *(posixpath.join(CLOUD_CFG_D, name)
                              for name in files.listdir(CLOUD_CFG_D) if name.endswith(".cfg"))]:
        try:
            text = files.read_text(path)
            config = load_guest_yaml(text) if text else None
        except (GuestPathError, yaml.YAMLError):
            continue
        if isinstance(config, dict) and "manual_cache_clean" in config:
            value = config["manual_cache_clean"] is True
    return value


def cloud_init_check(files: GuestFS, context: Context) -> Inspected:
    """``cloud-init``: disabled by its marker, stuck on another instance's data, or its last
    run ended in errors (``result.json`` / ``status.json``, the log's lines as support). A
    guest without cloud-init's state has nothing to say."""
    check = "cloud-init"
    evidence: list[Evidence] = []
    causes: list[str] = []
    notes: list[str] = []
    confidence: Confidence = "medium"
    try:
        disabled = files.exists(DISABLED_MARKER)  # as cloud-init's os.path.exists
    except GuestPathError:
        disabled = False
    if disabled:
        causes.append("cloud-init is disabled: this instance's keys and user data are not "
                      "applied")
        evidence.append(Evidence("deep", f"{DISABLED_MARKER} exists"))
    try:
        recorded = (files.read_text(f"{CLOUD_DATA}/instance-id") or "").strip()
    except GuestPathError as error:
        recorded = ""
        notes.append(f"deep: {CLOUD_DATA}/instance-id could not be read: {error.message}")
    if recorded and recorded != context.server.id:
        stuck = _manual_cache_clean(files)
        if stuck:
            confidence = "high"
        causes.append(
            "cloud-init keeps another instance's data (manual_cache_clean): its keys and user "
            "data are never applied to this one" if stuck else
            "cloud-init has not run as this instance: its state is another instance's"
        )
        evidence.append(Evidence("deep", f"{CLOUD_DATA}/instance-id is {recorded[:80]}, not "
                                         f"{context.server.id}"))
    errors: list[str] = []
    read_any = False
    for name in ("result.json", "status.json"):
        document, why = _json(files, f"{CLOUD_DATA}/{name}")
        if why:
            notes.append(f"deep: {why}")
        if document is not None:
            read_any = True
            errors += [item for item in _errors(document) if item not in errors]
    if errors:
        causes.append(f"cloud-init's last run ended with {len(errors)} "
                      f"error{'s' if len(errors) > 1 else ''}")
        evidence += [Evidence("deep", f"{CLOUD_DATA}: {item[:MAX_ERROR_TEXT]}") for item in
                     errors[:MAX_ERRORS_SHOWN]]
        logged, why = _log_errors(files)
        if why:
            notes.append(f"deep: {why}")
        evidence += [Evidence("deep", f"{CLOUD_LOG}: {line[:MAX_ERROR_TEXT]}") for line in
                     logged[:MAX_ERRORS_SHOWN]]
    if not causes:
        return Inspected(check, cleared=read_any or bool(recorded), notes=tuple(notes))
    return Inspected(check, cause="; ".join(causes), confidence=confidence,
                     evidence=tuple(evidence), notes=tuple(notes))


INSPECTORS: Mapping[str, Inspector] = {
    "root-password": shadow_check,
    "cloud-init": cloud_init_check,
}
"""The deep checks that read the guest (by ``registry.DEEP_CHECKS`` name); the others are
their playbook run in check mode."""
