"""What the guest's sshd will do: its configuration read the way sshd reads it.

The one reader of the guest's sshd configuration for every fix that asks what its sshd will
use (``AuthorizedKeysFile``, ``Port``, ``PasswordAuthentication``...). ``SshdConfig.read``
reads ``/etc/ssh/sshd_config`` and every file it ``Include``s through the root-anchored
``GuestFS``; ``setting``/``value``/``values`` answer what sshd uses globally or for one login
(``Match`` blocks evaluated against the guest's own passwd and group), with the file and line
every value came from.

Semantics, as OpenSSH's ``servconf.c``:

* a line is ``Keyword value...``, ``Keyword=value`` or ``Keyword = value``; keywords are
  case-insensitive (a few old names are aliases of their new one); values are split like
  sshd's ``argv_split`` (double and single quotes, backslash escapes, ``#`` starting a word
  ends the line); blank and ``#`` lines are ignored;
* ``Include`` takes globs (matches sorted, dot files only by a pattern starting with a dot),
  relative paths are under ``/etc/ssh``, nested up to sshd's depth (16); an ``Include``
  inside a ``Match`` block includes conditionally: the included file's lines belong to that
  block until the file's own ``Match`` line (which then also needs the outer block), and
  when the file ends the context is again what it was at the ``Include`` line;
* global values: the first line wins, except for the keywords that accumulate
  (``ACCUMULATING``: ``Port``, ``ListenAddress``, ``HostKey``, ``AcceptEnv``, ``Subsystem``
  (first per name), ``Allow``/``Deny`` ``Users``/``Groups``...); lines of a ``Match All``
  block count as global too, as in sshd, and (as for any matching block, below) override
  the lines outside Match for the keywords allowed in Match: the global value is what
  ``sshd -T`` prints without ``-C``;
* for a login (``user=`` or a ``Connection``) the keywords allowed in ``Match``
  (``MATCH_KEYWORDS``) set in a matching block override the global value; among matching
  blocks the first line wins (accumulating keywords collect every matching block's lines
  and replace the global list). Criteria: ``All``, ``User``, ``Group`` (the guest's
  ``/etc/group``, primary group included), ``Host``, ``Address`` and ``LocalAddress``
  (CIDR or wildcards), ``LocalPort``, ``RDomain``, ``Invalid-User``; pattern lists with
  ``,``, ``!`` negation and ``*``/``?`` like sshd's ``match_pattern_list``.

Deliberate differences:

* a criterion that cannot be evaluated (the connection does not say: ``Host``/``Address``
  when only a user is given; ``Version``; an unknown criterion; a malformed ``Match`` line;
  ``Group`` without a readable ``/etc/group``) makes its block *unknown*: its lines do not
  apply, and ``Setting.uncertain`` lists those that could have changed the answer;
* an ``Include`` cycle is cut where it loops (sshd recurses until its depth limit and refuses
  to start) and recorded in ``problems`` with other things sshd would reject (bad quotes,
  unreadable files, too deep includes); the rest of the configuration is still read;
* defaults are not filled in: an unset keyword has no value (callers know their defaults).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from cloudrescue.guestfs import MAX_READ, GuestFS, GuestPathError, GuestUser, parse_passwd

MAIN_CONFIG = "/etc/ssh/sshd_config"
SSH_DIR = "/etc/ssh"
MAX_INCLUDE_DEPTH = 16  # servconf.c SERVCONF_MAX_DEPTH
WHITESPACE = " \t\r\n"

# Keywords whose lines add to a list instead of the first one winning (servconf.c).
ACCUMULATING = frozenset(
    {
        "port",
        "listenaddress",
        "hostkey",
        "hostcertificate",
        "acceptenv",
        "subsystem",
        "allowusers",
        "denyusers",
        "allowgroups",
        "denygroups",
    }
)
_FIRST_PER_NAME = frozenset({"subsystem"})  # a second ``Subsystem sftp`` is ignored
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
}
# The keywords sshd_config(5) allows in a Match block (others there make sshd -t fail).
_MATCH_KEYWORD_NAMES = """
    AcceptEnv AllowAgentForwarding AllowGroups AllowStreamLocalForwarding AllowTcpForwarding
    AllowUsers AuthenticationMethods AuthorizedKeysCommand AuthorizedKeysCommandUser
    AuthorizedKeysFile AuthorizedPrincipalsCommand AuthorizedPrincipalsCommandUser
    AuthorizedPrincipalsFile Banner CASignatureAlgorithms ChannelTimeout ChrootDirectory
    ClientAliveCountMax ClientAliveInterval DenyGroups DenyUsers DisableForwarding
    ExposeAuthInfo ForceCommand GatewayPorts GSSAPIAuthentication HostbasedAcceptedAlgorithms
    HostbasedAuthentication HostbasedUsesNameFromPacketOnly IgnoreRhosts IPQoS
    KbdInteractiveAuthentication KerberosAuthentication LogLevel LogVerbose MaxAuthTries
    MaxSessions PAMServiceName PasswordAuthentication PermitEmptyPasswords PermitListen
    PermitOpen PermitRootLogin PermitTTY PermitTunnel PermitUserRC PubkeyAcceptedAlgorithms
    PubkeyAuthentication PubkeyAuthOptions RDomain RefuseConnection RekeyLimit
    RequiredRSASize RevokedKeys SetEnv StreamLocalBindMask StreamLocalBindUnlink Subsystem
    TrustedUserCAKeys UnusedConnectionTimeout X11DisplayOffset X11Forwarding X11UseLocalhost
"""
MATCH_KEYWORDS = frozenset(keyword.lower() for keyword in _MATCH_KEYWORD_NAMES.split())
# Criteria that may be written ``name=pattern`` (servconf.c match_cfg_line).
_EQUALS_CRITERIA = frozenset(
    {"user", "group", "host", "address", "localaddress", "localport", "rdomain", "version"}
)
_GLOB_MAGIC = re.compile(r"[*?\[]")


class ConfigSyntaxError(ValueError):
    """A line sshd cannot even split (unbalanced quotes)."""


# -- lines --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """One configuration line split as sshd splits it."""

    keyword: str  # as written
    args: tuple[str, ...]


def canonical(keyword: str) -> str:
    """The lower-case name sshd knows ``keyword`` by (aliases resolved)."""
    lowered = keyword.lower()
    return ALIASES.get(lowered, lowered)


def _keyword(line: str) -> tuple[str, str]:
    """sshd's ``strdelim``: the keyword, and the rest after whitespace or one ``=``."""
    text = line.lstrip(WHITESPACE)
    index = next((i for i, char in enumerate(text) if char in WHITESPACE + '"='), None)
    if index is None:
        return text, ""
    if text[index] == '"':
        text = text[:index] + text[index + 1 :]
        end = text.find('"', index)
        if end < 0:
            raise ConfigSyntaxError("invalid quotes")
        return text[:end], text[end + 1 :].lstrip(WHITESPACE)
    equals = text[index] == "="
    rest = text[index + 1 :].lstrip(WHITESPACE)
    if not equals and rest.startswith("="):
        rest = rest[1:].lstrip(WHITESPACE)
    return text[:index], rest


def argv_split(text: str) -> list[str]:
    """sshd's ``argv_split`` (comments end the line): quotes, backslash escapes."""
    args: list[str] = []
    i, size = 0, len(text)
    while i < size:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote = ""
        word: list[str] = []
        while i < size:
            char = text[i]
            following = text[i + 1] if i + 1 < size else ""
            if char == "\\" and (following in ("'", '"', "\\") or (not quote and following == " ")):
                word.append(following)
                i += 2
                continue
            if not quote and char in " \t":
                break
            if not quote and char in "\"'":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            i += 1
        if quote:
            raise ConfigSyntaxError("invalid quotes")
        args.append("".join(word))
    return args


def split_line(line: str) -> Words | None:
    """A configuration line as sshd splits it; ``None`` for blank lines and comments.

    Raises ``ConfigSyntaxError`` for a line sshd rejects as unsplittable.
    """
    stripped = line.rstrip(WHITESPACE + "\f")
    keyword, rest = _keyword(stripped)
    if not keyword or keyword.startswith("#"):
        return None
    return Words(keyword, tuple(argv_split(rest)))


def config_lines(text: str) -> list[str]:
    """The lines of a configuration file as sshd numbers them (split at ``\\n`` only)."""
    return text.split("\n")


# -- Match --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One ``Match`` criterion: lower-case name and its pattern list (``""`` for All)."""

    name: str
    patterns: str = ""


@dataclass(frozen=True)
class MatchBlock:
    """A ``Match`` line; ``error`` when sshd would reject it (the block is then unknown)."""

    path: str
    line: int
    criteria: tuple[Criterion, ...]
    error: str | None = None

    @property
    def is_all(self) -> bool:
        """``Match All``: active for every connection and at sshd's startup."""
        return self.error is None and self.criteria == (Criterion("all"),)

    def __str__(self) -> str:
        words = " ".join(f"{c.name} {c.patterns}".strip() for c in self.criteria)
        return f"Match {words} ({self.path} line {self.line})"


def parse_match(path: str, line: int, args: Iterable[str]) -> MatchBlock:
    """The criteria of a ``Match`` line, as ``match_cfg_line`` reads them."""
    words = list(args)
    criteria: list[Criterion] = []
    i = 0
    while i < len(words):
        attribute = words[i]
        i += 1
        lowered = attribute.lower()
        if lowered == "all":
            if criteria or (i < len(words) and not words[i].startswith("#")):
                return MatchBlock(path, line, (), "'all' cannot be combined with other criteria")
            return MatchBlock(path, line, (Criterion("all"),))
        if lowered == "invalid-user":
            criteria.append(Criterion(lowered))
            continue
        name, equals, value = attribute.partition("=")
        if equals and name.lower() in _EQUALS_CRITERIA:
            lowered, pattern = name.lower(), value
        else:
            pattern = words[i] if i < len(words) else ""
            i += 1
        if not pattern or pattern.startswith("#"):
            return MatchBlock(
                path, line, tuple(criteria), f"missing Match criteria for {attribute}"
            )
        criteria.append(Criterion(lowered, pattern))
    if not criteria:
        return MatchBlock(path, line, (), "one or more criteria required for Match")
    return MatchBlock(path, line, tuple(criteria))


def match_pattern(string: str, pattern: str) -> bool:
    """sshd's ``match_pattern``: ``*`` and ``?`` wildcards, nothing else special."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, string, re.DOTALL) is not None


def match_pattern_list(string: str, patterns: str, *, lower: bool = False) -> int:
    """sshd's ``match_pattern_list``: 1 on a match, -1 on a negated match, 0 otherwise."""
    found = 0
    for item in patterns.split(","):
        negated = item.startswith("!")
        sub = item[1:] if negated else item
        if lower:
            sub = sub.lower()
        if match_pattern(string, sub):
            if negated:
                return -1
            found = 1
    return found


def address_match_list(address: str, patterns: str) -> int | None:
    """sshd's ``addr_match_list``: 1, -1 (negated match), 0; ``None`` for a bad list."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    result = 0
    for item in patterns.split(","):
        negated = item.startswith("!")
        entry = item[1:] if negated else item
        if not entry:
            return None
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            if "/" in entry:
                return None  # a network with host bits set, or a bad mask
            hit = match_pattern(address, entry)
        else:
            hit = ip.version == network.version and ip in network
        if hit:
            if negated:
                return -1
            result = 1
    return result


@dataclass(frozen=True)
class Connection:
    """What a login looks like to ``Match``; ``None`` fields are not known."""

    user: str | None = None
    host: str | None = None
    address: str | None = None
    local_address: str | None = None
    local_port: int | None = None
    rdomain: str | None = None


@dataclass(frozen=True)
class Accounts:
    """The guest's users and groups (``groups``: name, gid, members), for ``Match``."""

    users: Mapping[str, GuestUser]
    groups: tuple[tuple[str, int, tuple[str, ...]], ...] | None  # None: no readable /etc/group

    @classmethod
    def read(cls, files: GuestFS) -> Accounts:
        """From the guest's own /etc/passwd and /etc/group."""
        passwd = _read(files, "/etc/passwd")
        group = _read(files, "/etc/group")
        groups = None if group is None else tuple(_parse_groups(group))
        return cls(parse_passwd(passwd or ""), groups)

    def groups_of(self, user: GuestUser) -> list[str] | None:
        """Names of the user's groups (primary and supplementary), ``None`` when unknown."""
        if self.groups is None:
            return None
        return [
            name for name, gid, members in self.groups if gid == user.gid or user.name in members
        ]


def _parse_groups(text: str) -> Iterable[tuple[str, int, tuple[str, ...]]]:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and not line.startswith("#"):
            members = tuple(member for member in fields[3].split(",") if member)
            yield fields[0], int(fields[2]), members


def _criterion(criterion: Criterion, connection: Connection, accounts: Accounts) -> bool | None:
    """Whether one criterion matches; ``None`` when it cannot be told."""
    name, patterns = criterion.name, criterion.patterns
    if name == "all":
        return True
    if name in ("user", "group", "invalid-user") and connection.user is None:
        return None
    user = connection.user or ""
    if name == "user":
        return match_pattern_list(user, patterns) == 1
    if name == "invalid-user":
        return user not in accounts.users
    if name == "group":
        account = accounts.users.get(user)
        if account is None:
            return False  # sshd: "Can't match group ... user does not exist"
        groups = accounts.groups_of(account)
        if groups is None:
            return None
        results = [match_pattern_list(group, patterns) for group in groups]
        return -1 not in results and 1 in results
    if name == "host":
        if connection.host is None:
            return None
        return match_pattern_list(connection.host.lower(), patterns, lower=True) == 1
    if name in ("address", "localaddress"):
        address = connection.address if name == "address" else connection.local_address
        if address is None:
            return None
        result = address_match_list(address, patterns)
        return None if result is None else result == 1
    if name == "localport":
        if connection.local_port is None or not patterns.isdigit():
            return None
        return int(patterns) == connection.local_port
    if name == "rdomain":
        if connection.rdomain is None:
            return None
        return match_pattern_list(connection.rdomain, patterns) == 1
    return None  # Version, or a criterion this reader does not know


def block_matches(block: MatchBlock, connection: Connection, accounts: Accounts) -> bool | None:
    """Whether a ``Match`` block applies to ``connection`` (``None``: cannot be told)."""
    if block.error is not None:
        return None
    results = [_criterion(criterion, connection, accounts) for criterion in block.criteria]
    if False in results:
        return False
    return None if None in results else True


# -- the configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Directive:
    """One setting line: where it is, what it says, and the Match blocks it depends on.

    ``condition`` is every ``Match`` block that must apply for the line to count: the block
    it is in and, for a line of a file included inside a block, that block too (outermost
    first). An empty condition is a global line.
    """

    path: str
    line: int
    keyword: str  # canonical lower-case name
    name: str  # as written
    args: tuple[str, ...]
    condition: tuple[MatchBlock, ...] = ()

    @property
    def is_global(self) -> bool:
        """Whether sshd takes the line at startup (outside Match, or in ``Match All``)."""
        return all(block.is_all for block in self.condition)

    @property
    def where(self) -> str:
        """``<path> line <n>``, for messages."""
        return f"{self.path} line {self.line}"

    def __str__(self) -> str:
        return " ".join((self.name, *self.args)) + f" ({self.where})"


@dataclass(frozen=True)
class Include:
    """An ``Include`` line: its patterns as absolute paths, and its Match context."""

    path: str
    line: int
    patterns: tuple[str, ...]
    condition: tuple[MatchBlock, ...] = ()

    @property
    def is_global(self) -> bool:
        """Whether the files it names are read unconditionally."""
        return all(block.is_all for block in self.condition)


@dataclass(frozen=True)
class Problem:
    """Something sshd would reject or could not read (the reader went on without it)."""

    path: str
    line: int  # 0: the whole file
    message: str


@dataclass(frozen=True)
class Setting:
    """The value sshd uses for a keyword, where it comes from, and what could change it."""

    keyword: str
    args: tuple[str, ...]
    directives: tuple[Directive, ...]  # the lines that give it (several when accumulating)
    uncertain: tuple[Directive, ...] = ()  # lines of unknown Match blocks that could change it

    @property
    def value(self) -> str | None:
        """The first argument (what sshd uses for a single-valued keyword), if set."""
        return self.args[0] if self.args else None

    @property
    def source(self) -> Directive | None:
        """The (first) line the value comes from; ``None`` when unset."""
        return self.directives[0] if self.directives else None

    @property
    def certain(self) -> bool:
        """Whether no Match block that could not be evaluated could change the value."""
        return not self.uncertain


def _read(files: GuestFS, path: str) -> str | None:
    try:
        return files.read_text(path)
    except GuestPathError:
        return None


@dataclass(frozen=True)
class SshdConfig:
    """The guest's sshd configuration: every file read, every setting line in sshd's order."""

    files: dict[str, str]  # path -> text, main config first, in the order sshd reads them
    directives: tuple[Directive, ...]
    includes: tuple[Include, ...] = ()
    problems: tuple[Problem, ...] = ()
    accounts: Accounts = field(default_factory=lambda: Accounts({}, ()))
    main: str = MAIN_CONFIG
    unusable: tuple[str, ...] = ()  # files sshd would open that are no config (FIFO, huge)

    @classmethod
    def read(
        cls,
        files: GuestFS,
        overrides: Mapping[str, str] | None = None,
        *,
        main: str = MAIN_CONFIG,
    ) -> SshdConfig:
        """Read ``main`` and what it includes from the guest (``overrides``: path -> text
        used instead of the file's content, e.g. a planned but unwritten change)."""
        reader = _Reader(files, dict(overrides or {}))
        reader.visit(main, (), 0, ())
        return cls(
            reader.texts,
            tuple(reader.directives),
            tuple(reader.includes),
            tuple(reader.problems),
            Accounts.read(files),
            main,
            tuple(dict.fromkeys(reader.unusable)),
        )

    # -- questions ---------------------------------------------------------------------------

    def setting(
        self, keyword: str, *, user: str | None = None, connection: Connection | None = None
    ) -> Setting:
        """What sshd uses for ``keyword`` for a login of ``user`` / ``connection`` (Match
        blocks evaluated); with neither, its global value: what ``sshd -T`` prints without
        ``-C`` (the lines outside Match, overridden by ``Match All`` blocks for keywords
        allowed in Match)."""
        key = canonical(keyword)
        if user is not None:
            connection = replace(connection or Connection(), user=user)
        lines = [(index, d) for index, d in enumerate(self.directives) if d.keyword == key]
        global_lines = [d for _, d in lines if d.is_global]
        if key not in MATCH_KEYWORDS:
            return self._pick(key, global_lines, [])
        matching: list[tuple[int, Directive]] = []
        unknown: list[tuple[int, Directive]] = []
        for index, directive in lines:
            if not directive.condition:
                continue
            if connection is None:  # a login that no criterion but All matches
                state: bool | None = directive.is_global
            else:
                state = self.applies(directive, connection)
            if state is True:
                matching.append((index, directive))
            elif state is None:
                unknown.append((index, directive))
        if matching and key not in ACCUMULATING:
            first = matching[0][0]
            unknown = [(index, d) for index, d in unknown if index < first]
            matching = matching[:1]
        chosen = [d for _, d in matching] if matching else global_lines
        return self._pick(key, chosen, [d for _, d in unknown])

    def value(
        self, keyword: str, *, user: str | None = None, connection: Connection | None = None
    ) -> str | None:
        """The first argument of the effective ``keyword`` line (``None`` when unset)."""
        return self.setting(keyword, user=user, connection=connection).value

    def values(
        self, keyword: str, *, user: str | None = None, connection: Connection | None = None
    ) -> list[str]:
        """Every argument of the effective line (of every line, for accumulating keywords)."""
        return list(self.setting(keyword, user=user, connection=connection).args)

    def applies(self, directive: Directive | Include, connection: Connection) -> bool | None:
        """Whether every Match block the line depends on applies (``None``: cannot tell)."""
        results = [block_matches(b, connection, self.accounts) for b in directive.condition]
        if False in results:
            return False
        return None if None in results else True

    def lines(self, keyword: str) -> list[Directive]:
        """Every line setting ``keyword``, in sshd's order, whatever its Match context."""
        key = canonical(keyword)
        return [d for d in self.directives if d.keyword == key]

    def _pick(self, key: str, chosen: list[Directive], unknown: list[Directive]) -> Setting:
        if not chosen:
            return Setting(key, (), (), tuple(unknown))
        if key not in ACCUMULATING:
            return Setting(key, chosen[0].args, (chosen[0],), tuple(unknown))
        if key in _FIRST_PER_NAME:
            names: set[str] = set()
            unique = []
            for directive in chosen:
                name = directive.args[0] if directive.args else ""
                if name not in names:
                    names.add(name)
                    unique.append(directive)
            chosen = unique
        args = tuple(arg for directive in chosen for arg in directive.args)
        return Setting(key, args, tuple(chosen), tuple(unknown))


class _Reader:
    """Walks the configuration like sshd: depth first through Includes, in order."""

    def __init__(self, files: GuestFS | None, overrides: dict[str, str]) -> None:
        self.files = files
        self.overrides = overrides
        self.texts: dict[str, str] = {}
        self.directives: list[Directive] = []
        self.includes: list[Include] = []
        self.problems: list[Problem] = []
        self.unusable: list[str] = []

    def _text(self, path: str) -> str | None:
        if path in self.overrides:
            return self.overrides[path]
        if self.files is None:
            return None
        try:
            return self.files.read_text(path)
        except GuestPathError as error:
            self.problems.append(Problem(path, 0, f"cannot read it: {error}"))
            if self._unusable(path):
                self.unusable.append(path)
            return None

    def _unusable(self, path: str) -> bool:
        """Whether sshd, opening ``path``, would block or read without end: a FIFO, a
        device, a socket, or a file too large to be a configuration (a sparse 100 GB)."""
        assert self.files is not None
        try:
            info = self.files.stat(path)
        except GuestPathError:
            return False
        if info is None or info.is_dir:
            return False
        return not info.is_file or info.size > MAX_READ

    def visit(
        self, path: str, outer: tuple[MatchBlock, ...], depth: int, stack: tuple[str, ...]
    ) -> None:
        """Read ``path`` with the Match context ``outer`` (``stack``: the including files)."""
        if path in stack:
            self.problems.append(Problem(stack[-1], 0, f"Include cycle back to {path}: cut"))
            return
        if depth > MAX_INCLUDE_DEPTH:
            self.problems.append(Problem(path, 0, "too many recursive Includes: not read"))
            return
        text = self._text(path)
        if text is None:
            if depth == 0:
                self.problems.append(Problem(path, 0, "missing"))
            return
        self.texts.setdefault(path, text)
        condition = outer
        for number, raw in enumerate(config_lines(text), start=1):
            try:
                words = split_line(raw)
            except ConfigSyntaxError as error:
                self.problems.append(Problem(path, number, str(error)))
                continue
            if words is None:
                continue
            keyword = canonical(words.keyword)
            if keyword == "match":
                block = parse_match(path, number, words.args)
                if block.error:
                    self.problems.append(Problem(path, number, block.error))
                condition = (*outer, block)
            elif keyword == "include":
                self._include(path, number, words.args, condition, depth, (*stack, path))
            else:
                self.directives.append(
                    Directive(path, number, keyword, words.keyword, words.args, condition)
                )

    def _include(
        self,
        path: str,
        number: int,
        args: tuple[str, ...],
        condition: tuple[MatchBlock, ...],
        depth: int,
        stack: tuple[str, ...],
    ) -> None:
        patterns = tuple(arg if arg.startswith(("/", "~")) else f"{SSH_DIR}/{arg}" for arg in args)
        self.includes.append(Include(path, number, patterns, condition))
        if not patterns:
            self.problems.append(Problem(path, number, "Include without a file name"))
        for pattern in patterns:
            for included in self._glob(pattern):
                self.visit(included, condition, depth + 1, stack)

    def _glob(self, pattern: str) -> list[str]:
        """The guest files ``pattern`` names, sorted (glob(3) without tilde expansion)."""
        planned = [p for p in self.overrides if _glob_match(p, pattern)]
        if self.files is None or pattern.startswith("~"):
            return sorted(planned)
        found = ["/"]
        for part in [p for p in pattern.split("/") if p]:
            following: list[str] = []
            for base in found:
                if not _GLOB_MAGIC.search(part):
                    following.append(posixpath.join(base, part))
                    continue
                try:
                    names = self.files.listdir(base)
                except GuestPathError:
                    continue
                following += [
                    posixpath.join(base, name)
                    for name in names
                    if fnmatch.fnmatchcase(name, part)
                    and (part.startswith(".") or not name.startswith("."))
                ]
            found = following
        existing = [p for p in found if self._is_file(p)]
        self.unusable += [p for p in sorted(found) if p not in planned and self._unusable(p)]
        return sorted(set(existing) | set(planned))

    def _is_file(self, path: str) -> bool:
        assert self.files is not None
        try:
            info = self.files.stat(path)
        except GuestPathError:
            return False
        return info is not None and info.is_file


def _glob_match(path: str, pattern: str) -> bool:
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, want) and (want.startswith(".") or not part.startswith("."))
        for part, want in zip(parts, wanted, strict=True)
    )
