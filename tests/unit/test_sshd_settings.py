"""The sshd configuration reader on guest trees under tmp (neither root nor the lab needed).

``CASES`` are configurations with what the reader must answer; ``test_sshd_settings_vs_sshd``
puts the same trees in front of a real (the lab guest's) sshd, ``sshd -T``, to prove that
sshd answers the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudrescue.fixes.sshd_config import _includes, config_files, ssh_ports, static_errors
from cloudrescue.fixes.sshd_settings import (
    MAX_INCLUDE_DEPTH,
    ConfigSyntaxError,
    Connection,
    SshdConfig,
    Words,
    address_match_list,
    match_pattern_list,
    split_line,
)
from cloudrescue.guestfs import GuestFS
from tests.guests import guest_fs

# The accounts of the lab's Debian guest (so the cross-check against its sshd agrees).
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "debian:x:1000:1000::/home/debian:/bin/bash\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nadm:x:4:debian\nsudo:x:27:debian\ndebian:x:1000:\n"
DEBIAN = Connection(user="debian")
ROOT = Connection(user="root")
DAEMON = Connection(user="daemon")
FROM_LAN = Connection(
    user="debian",
    host="laptop.example.com",
    address="10.1.2.3",
    local_address="10.0.0.5",
    local_port=22,
)
AT_HOME = Connection(user="debian", address="192.168.1.7", local_port=2222)


@dataclass(frozen=True)
class Check:
    """``values(keyword)`` for ``connection`` (``None``: the global value) must be ``expected``."""

    keyword: str
    expected: tuple[str, ...]
    connection: Connection | None = None


@dataclass(frozen=True)
class Case:
    """A configuration (guest path -> text) and what the reader answers about it."""

    id: str
    files: dict[str, str]
    checks: tuple[Check, ...]
    sshd_accepts: bool = True  # the real sshd starts with it (so it can be cross-checked)


CASES = [
    Case(
        "equals-quotes-case",
        {
            "/etc/ssh/sshd_config": (
                'authorizedkeysfile="/etc/ssh/keys dir/%u" .ssh/authorized_keys\n'
                'Banner = "/etc/issue net"\n'
                "MaxAuthTries=4 # a comment\n"
                "  PasswordAuthentication   no\n"
            )
        },
        (
            Check("AuthorizedKeysFile", ("/etc/ssh/keys dir/%u", ".ssh/authorized_keys")),
            Check("banner", ("/etc/issue net",)),
            Check("MaxAuthTries", ("4",)),
            Check("passwordauthentication", ("no",)),
        ),
    ),
    Case(
        "first-value-wins-and-accumulation",
        {
            "/etc/ssh/sshd_config": (
                "Include /etc/ssh/sshd_config.d/*.conf\n"
                "Port 22\nPasswordAuthentication yes\nAcceptEnv LANG\nAllowUsers root\n"
            ),
            "/etc/ssh/sshd_config.d/50-cloud.conf": (
                "PasswordAuthentication no\nPort 2222\nAcceptEnv LC_* TZ\nAllowUsers debian\n"
            ),
        },
        (
            Check("PasswordAuthentication", ("no",)),
            Check("Port", ("2222", "22")),
            Check("AcceptEnv", ("LC_*", "TZ", "LANG")),
            Check("AllowUsers", ("debian", "root")),
            Check("PasswordAuthentication", ("no",), DEBIAN),
        ),
    ),
    Case(
        "include-glob-sorted-relative-nested",
        {
            "/etc/ssh/sshd_config": "Include sshd_config.d/*.conf extra.conf\nMaxAuthTries 9\n",
            "/etc/ssh/sshd_config.d/20-b.conf": "Banner /b\nMaxSessions 2\n",
            "/etc/ssh/sshd_config.d/10-a.conf": "Include /etc/ssh/nested/*.conf\nBanner /a\n",
            "/etc/ssh/sshd_config.d/.00-hidden.conf": "MaxSessions 1\nBanner /hidden\n",
            "/etc/ssh/sshd_config.d/README": "MaxSessions 3\n",
            "/etc/ssh/nested/x.conf": "LoginGraceTime 33\n",
            "/etc/ssh/extra.conf": "MaxAuthTries 5\nMaxSessions 7\nClientAliveInterval 11\n",
        },
        (
            Check("Banner", ("/a",)),
            Check("MaxSessions", ("2",)),
            Check("LoginGraceTime", ("33",)),
            Check("MaxAuthTries", ("5",)),
            Check("ClientAliveInterval", ("11",)),
        ),
    ),
    Case(
        "match-user-overrides-global",
        {
            "/etc/ssh/sshd_config": (
                "AuthorizedKeysFile .ssh/authorized_keys\n"
                "PasswordAuthentication no\n"
                "Match User debian\n"
                "    AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"
                "    PasswordAuthentication yes\n"
                "Match User debian,root\n"
                "    PasswordAuthentication no\n"
                "    MaxAuthTries 2\n"
            )
        },
        (
            Check("AuthorizedKeysFile", (".ssh/authorized_keys",)),
            Check("AuthorizedKeysFile", ("/etc/ssh/authorized_keys/%u",), DEBIAN),
            Check("AuthorizedKeysFile", (".ssh/authorized_keys",), ROOT),
            Check("PasswordAuthentication", ("no",)),
            Check("PasswordAuthentication", ("yes",), DEBIAN),
            Check("PasswordAuthentication", ("no",), ROOT),
            Check("MaxAuthTries", ("2",), DEBIAN),
        ),
    ),
    Case(
        "match-negation-wildcards-group-all",
        {
            "/etc/ssh/sshd_config": (
                "Match User *,!root\n"
                "    MaxAuthTries 3\n"
                "Match Group sudo,!wheel\n"
                "    Banner /etc/banner.sudo\n"
                "Match Group debian\n"  # the primary group counts
                "    MaxSessions 4\n"
                "Match User d?bi*\n"
                "    ClientAliveInterval 5\n"
                "Match all\n"
                "LoginGraceTime 44\n"
            )
        },
        (
            Check("MaxAuthTries", ("3",), DEBIAN),
            Check("MaxAuthTries", ("3",), DAEMON),
            Check("MaxAuthTries", (), ROOT),
            Check("Banner", ("/etc/banner.sudo",), DEBIAN),
            Check("Banner", (), DAEMON),
            Check("MaxSessions", ("4",), DEBIAN),
            Check("ClientAliveInterval", ("5",), DEBIAN),
            Check("ClientAliveInterval", ()),
            Check("LoginGraceTime", ("44",)),  # after Match all: global again
            Check("LoginGraceTime", ("44",), ROOT),
        ),
    ),
    Case(
        "match-address-host-localport",
        {
            "/etc/ssh/sshd_config": (
                "Match Address !10.1.9.0/24,10.0.0.0/8\n"
                "    Banner /etc/banner.lan\n"
                "Match Address 192.168.*\n"
                "    Banner /etc/banner.home\n"
                "Match Host *.EXAMPLE.com\n"
                "    MaxAuthTries 2\n"
                "Match LocalPort 22 LocalAddress 10.0.0.0/24\n"
                "    MaxSessions 3\n"
                "Match LocalPort 2222\n"
                "    MaxSessions 4\n"
            )
        },
        (
            Check("Banner", ("/etc/banner.lan",), FROM_LAN),
            Check("Banner", (), Connection(user="debian", address="10.1.9.9")),
            Check("Banner", ("/etc/banner.home",), AT_HOME),
            Check("MaxSessions", ("4",), AT_HOME),
            Check("MaxAuthTries", ("2",), FROM_LAN),
            Check("MaxSessions", ("3",), FROM_LAN),
            Check("MaxSessions", (), DEBIAN),  # unknown address, host, port: not matching
        ),
    ),
    Case(
        "include-inside-match",
        {
            "/etc/ssh/sshd_config": (
                "Match User debian\n"
                "    Include /etc/ssh/debian.conf\n"
                "    MaxAuthTries 3\n"
                "Match all\n"
                "Include /etc/ssh/global.conf\n"
                "PasswordAuthentication no\n"
                "MaxSessions 6\n"
            ),
            "/etc/ssh/debian.conf": (
                "PasswordAuthentication yes\n"  # still in Match User debian
                "Match User root\n"  # needs debian too: never
                "    PermitRootLogin yes\n"
                "Match User debian\n"
                "    Banner /etc/banner.debian\n"
            ),
            "/etc/ssh/global.conf": "Match User root\n    MaxSessions 1\n",  # ends: global again
        },
        (
            Check("PasswordAuthentication", ("no",)),
            Check("PasswordAuthentication", ("yes",), DEBIAN),
            Check("PasswordAuthentication", ("no",), ROOT),
            Check("PermitRootLogin", (), ROOT),
            Check("Banner", ("/etc/banner.debian",), DEBIAN),
            Check("MaxAuthTries", ("3",), DEBIAN),  # after the Include: Match User debian again
            Check("MaxSessions", ("6",)),
            Check("MaxSessions", ("1",), ROOT),
            Check("MaxSessions", ("6",), DEBIAN),
        ),
    ),
    Case(
        "keywords-not-allowed-in-match",
        {
            "/etc/ssh/sshd_config": "Port 22\nMatch all\nPort 2200\nMatch User debian\n"
            "    AcceptEnv LANG\n",
        },
        (
            Check("Port", ("22", "2200")),  # Match all lines are global: sshd listens on both
            Check("Port", ("22", "2200"), DEBIAN),
            Check("AcceptEnv", ("LANG",), DEBIAN),
            Check("AcceptEnv", ()),
        ),
    ),
    Case(
        "match-all-overrides-and-replaces-lists",
        {
            "/etc/ssh/sshd_config": (
                "PasswordAuthentication no\nAcceptEnv LANG\nMaxAuthTries 3\n"
                "Match all\nPasswordAuthentication yes\nAcceptEnv TZ\n"
                "Match User debian\n    MaxAuthTries 4\n    AcceptEnv LC_*\n"
            ),
        },
        (
            Check("PasswordAuthentication", ("yes",)),
            Check("PasswordAuthentication", ("yes",), ROOT),
            Check("AcceptEnv", ("TZ",)),  # a matching block's list replaces the global one
            Check("AcceptEnv", ("TZ", "LC_*"), DEBIAN),  # ... and matching blocks add up
            Check("MaxAuthTries", ("3",)),
            Check("MaxAuthTries", ("4",), DEBIAN),
        ),
    ),
    Case(
        "aliases",
        {
            "/etc/ssh/sshd_config": (
                "ChallengeResponseAuthentication no\nKbdInteractiveAuthentication yes\n"
            )
        },
        (Check("KbdInteractiveAuthentication", ("no",)),),
    ),
    Case(
        "include-cycle",
        {
            "/etc/ssh/sshd_config": "Include /etc/ssh/a.conf\nMaxSessions 9\n",
            "/etc/ssh/a.conf": "Include /etc/ssh/b.conf\nBanner /a\n",
            "/etc/ssh/b.conf": "Include /etc/ssh/a.conf /etc/ssh/sshd_config\nMaxAuthTries 4\n",
        },
        (Check("Banner", ("/a",)), Check("MaxAuthTries", ("4",)), Check("MaxSessions", ("9",))),
        sshd_accepts=False,  # sshd recurses until its include depth limit and refuses to start
    ),
    Case(
        "unknown-criteria",
        {
            "/etc/ssh/sshd_config": (
                "PasswordAuthentication no\n"
                "Match User debian\n"
                "    MaxAuthTries 3\n"
                "Match Host *.example.com\n"
                "    PasswordAuthentication yes\n"
                "    MaxAuthTries 6\n"
                "Match Frobnicate x\n"
                "    MaxSessions 2\n"
            )
        },
        (
            Check("PasswordAuthentication", ("no",), DEBIAN),
            Check("PasswordAuthentication", ("yes",), FROM_LAN),
            Check("MaxSessions", (), FROM_LAN),
            Check("MaxAuthTries", ("3",), DEBIAN),
        ),
        sshd_accepts=False,  # Frobnicate
    ),
]


def write_guest(root: Path, files: dict[str, str]) -> GuestFS:
    """A guest tree at ``root`` with the lab guest's accounts and ``files``."""
    for path, text in {"/etc/passwd": PASSWD, "/etc/group": GROUP, **files}.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return guest_fs(root)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return tmp_path / "g"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_reader_answers(tree: Path, case: Case) -> None:
    config = SshdConfig.read(write_guest(tree, case.files))
    for check in case.checks:
        assert tuple(config.values(check.keyword, connection=check.connection)) == check.expected, (
            check
        )


def test_values_come_with_their_file_and_line(tree: Path) -> None:
    case = CASES[1]  # first-value-wins-and-accumulation
    config = SshdConfig.read(write_guest(tree, case.files))
    setting = config.setting("passwordauthentication")
    assert setting.value == "no" and setting.certain
    assert setting.source is not None
    assert (setting.source.path, setting.source.line) == ("/etc/ssh/sshd_config.d/50-cloud.conf", 1)
    assert setting.source.where == "/etc/ssh/sshd_config.d/50-cloud.conf line 1"
    ports = config.setting("Port")
    assert [(d.path, d.line) for d in ports.directives] == [
        ("/etc/ssh/sshd_config.d/50-cloud.conf", 2),
        ("/etc/ssh/sshd_config", 2),
    ]
    assert config.setting("Banner").source is None and config.value("Banner") is None


def test_files_are_in_the_order_sshd_reads_them(tree: Path) -> None:
    case = CASES[2]  # include-glob-sorted-relative-nested
    files = write_guest(tree, case.files)
    assert list(SshdConfig.read(files).files) == [
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/10-a.conf",
        "/etc/ssh/nested/x.conf",
        "/etc/ssh/sshd_config.d/20-b.conf",
        "/etc/ssh/extra.conf",
    ]
    assert config_files(files) == SshdConfig.read(files).files
    planned = config_files(files, {"/etc/ssh/sshd_config": "Port 1\n"})
    assert planned == {"/etc/ssh/sshd_config": "Port 1\n"}


def test_include_cycle_is_cut_and_reported(tree: Path) -> None:
    case = next(c for c in CASES if c.id == "include-cycle")
    config = SshdConfig.read(write_guest(tree, case.files))
    assert list(config.files) == ["/etc/ssh/sshd_config", "/etc/ssh/a.conf", "/etc/ssh/b.conf"]
    cycles = [p for p in config.problems if "cycle" in p.message]
    assert {p.message for p in cycles} == {
        "Include cycle back to /etc/ssh/a.conf: cut",
        "Include cycle back to /etc/ssh/sshd_config: cut",
    }


def test_includes_nest_only_to_sshds_depth(tree: Path) -> None:
    chain = {
        f"/etc/ssh/{n}.conf": f"Include /etc/ssh/{n + 1}.conf\nMaxAuthTries {n + 1}\n"
        for n in range(MAX_INCLUDE_DEPTH + 3)
    }
    config = SshdConfig.read(
        write_guest(tree, {"/etc/ssh/sshd_config": "Include 0.conf\n", **chain})
    )
    assert config.value("MaxAuthTries") == str(MAX_INCLUDE_DEPTH)  # the deepest file read
    assert any("too many recursive Includes" in p.message for p in config.problems)


def test_unknown_match_blocks_are_exposed(tree: Path) -> None:
    case = next(c for c in CASES if c.id == "unknown-criteria")
    config = SshdConfig.read(write_guest(tree, case.files))
    password = config.setting("PasswordAuthentication", user="debian")
    assert password.value == "no" and not password.certain
    [unknown] = password.uncertain
    assert (unknown.line, str(unknown.condition[-1])) == (
        5,
        "Match host *.example.com (/etc/ssh/sshd_config line 4)",
    )
    # The first matching block wins: an unknown block after it cannot change the value.
    assert config.setting("MaxAuthTries", user="debian").certain
    assert not config.setting("MaxSessions", user="debian").certain
    # Globally nothing in a Match block counts, so nothing is uncertain.
    assert config.setting("PasswordAuthentication").certain
    # A connection that says what the host is decides.
    lan = config.setting("PasswordAuthentication", connection=FROM_LAN)
    assert lan.value == "yes" and lan.certain  # the Frobnicate block does not set it
    assert [d.line for d in lan.directives] == [5]


def test_group_match_without_etc_group_is_unknown(tree: Path) -> None:
    files = write_guest(tree, {"/etc/ssh/sshd_config": "Match Group sudo\n  MaxAuthTries 2\n"})
    (tree / "etc/group").unlink()
    setting = SshdConfig.read(files).setting("MaxAuthTries", user="debian")
    assert setting.value is None and not setting.certain
    # A user the guest does not have never matches a Group (as sshd).
    other = SshdConfig.read(files).setting("MaxAuthTries", user="nobody-here")
    assert other.value is None and other.certain


def test_invalid_user_and_user_criteria(tree: Path) -> None:
    text = "Match invalid-user\n  MaxAuthTries 1\nMatch user=debian\n  MaxAuthTries 5\n"
    config = SshdConfig.read(write_guest(tree, {"/etc/ssh/sshd_config": text}))
    assert config.value("MaxAuthTries", user="mallory") == "1"
    assert config.value("MaxAuthTries", user="debian") == "5"
    assert config.value("MaxAuthTries") is None


def test_bad_lines_are_problems_not_values(tree: Path) -> None:
    text = 'Banner "/etc/issue\nMatch all User x\n  MaxAuthTries 2\nMaxSessions 3\n'
    config = SshdConfig.read(write_guest(tree, {"/etc/ssh/sshd_config": text}))
    assert [(p.line, p.message) for p in config.problems] == [
        (1, "invalid quotes"),
        (2, "'all' cannot be combined with other criteria"),
    ]
    assert config.value("Banner") is None
    assert config.value("MaxSessions") is None  # after a Match line sshd rejects
    assert not config.setting("MaxAuthTries", user="x").certain


def test_overrides_replace_what_is_on_disk(tree: Path) -> None:
    files = write_guest(tree, {"/etc/ssh/sshd_config": "Port 22\n"})
    planned = {
        "/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPort 23\n",
        "/etc/ssh/sshd_config.d/new.conf": "Port 24\n",
    }
    assert SshdConfig.read(files, planned).values("Port") == ["24", "23"]
    assert SshdConfig.read(files).values("Port") == ["22"]


def test_missing_config_reads_as_empty(tree: Path) -> None:
    config = SshdConfig.read(write_guest(tree, {}))
    assert config.files == {} and config.directives == ()
    assert [p.message for p in config.problems] == ["missing"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Port 22", Words("Port", ("22",))),
        ("Port=22", Words("Port", ("22",))),
        ("Port = 22", Words("Port", ("22",))),
        ("\tPort\t22  # two", Words("Port", ("22",))),
        ("Port 22#x", Words("Port", ("22#x",))),
        ("Banner \"/a b\" '/c d' e\\ f", Words("Banner", ("/a b", "/c d", "e f"))),
        ('AcceptEnv a"b c"d', Words("AcceptEnv", ("ab cd",))),
        ("Port", Words("Port", ())),
        ("Port  # nothing", Words("Port", ())),
        ("# Port 22", None),
        ("   ", None),
        ("", None),
    ],
)
def test_lines_split_like_sshd(line: str, expected: Words | None) -> None:
    assert split_line(line) == expected


def test_unbalanced_quotes_are_refused() -> None:
    with pytest.raises(ConfigSyntaxError):
        split_line('Banner "/etc/issue')


@pytest.mark.parametrize(
    ("string", "patterns", "expected"),
    [
        ("debian", "debian", 1),
        ("debian", "deb*", 1),
        ("debian", "d?bian", 1),
        ("debian", "root,admin", 0),
        ("debian", "*,!debian", -1),
        ("Debian", "debian", 0),  # users and groups: case-sensitive
    ],
)
def test_pattern_lists(string: str, patterns: str, expected: int) -> None:
    assert match_pattern_list(string, patterns) == expected


@pytest.mark.parametrize(
    ("address", "patterns", "expected"),
    [
        ("10.1.2.3", "10.0.0.0/8", 1),
        ("10.1.2.3", "10.1.2.3", 1),
        ("10.1.2.3", "192.168.0.0/16,10.1.*", 1),
        ("10.1.2.3", "!10.1.0.0/16,10.0.0.0/8", -1),
        ("2001:db8::1", "2001:db8::/32", 1),
        ("2001:db8::1", "10.0.0.0/8", 0),
        ("10.1.2.3", "10.1.2.3/8", None),  # host bits set: sshd rejects the list
    ],
)
def test_address_lists(address: str, patterns: str, expected: int | None) -> None:
    assert address_match_list(address, patterns) == expected


def test_ssh_ports_follow_accumulation_and_ignore_match(tree: Path) -> None:
    files = write_guest(
        tree,
        {
            "/etc/ssh/sshd_config": (
                "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n"
                "Match User debian\n    Port 9999\n    ListenAddress 0.0.0.0:9998\n"
            ),
            "/etc/ssh/sshd_config.d/a.conf": (
                "port=2222\nListenAddress [::1]:2200\nListenAddress ::1\n"
                "Match User root\n  Port 9997\n"
            ),
        },
    )
    assert ssh_ports(files) == [22, 2200, 2222]


def test_password_drop_in_counts_only_when_included_unconditionally(tree: Path) -> None:
    drop_in = "/etc/ssh/sshd_config.d/05-cloudrescue-password-debian.conf"
    files = write_guest(
        tree, {"/etc/ssh/sshd_config": "Match User x\nInclude /etc/ssh/sshd_config.d/*.conf\n"}
    )
    assert not _includes(files, drop_in)
    (tree / "etc/ssh/sshd_config").write_text("Include sshd_config.d/*.conf\nMatch User x\n")
    assert _includes(files, drop_in)


def test_static_errors_use_the_same_splitting() -> None:
    configs = {"/c": 'Port=22\nBanner "/x\nBogus=1\nUsePAM # no value\n'}
    assert [(e.line, e.message) for e in static_errors(configs)] == [
        (2, "invalid quotes"),
        (3, "Bad configuration option: Bogus"),
        (4, "missing argument."),
    ]
