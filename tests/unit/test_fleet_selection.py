"""The fleet's selection (issue 10): every selector against an in-memory nova (``FakeCloud``),
what is asked of the cloud, and that nothing the cloud answers widens the set."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.options import SelectionOptions
from cloudrescue.errors import (
    AmbiguousNameError,
    CloudError,
    ExitStatus,
    InvalidInputError,
    NotFoundError,
)
from cloudrescue.fleet.selection import Selection, listing, resolve
from tests.fakes import FakeClock, FakeCloud


@pytest.fixture
def cloud() -> FakeCloud:
    """Seven instances: two twins, tags, metadata, one in ERROR, one SHUTOFF."""
    fake = FakeCloud(FakeClock())
    fake.add("web-1", tags=("prod", "web"), metadata={"role": "web"})
    fake.add("web-2", status="ERROR", tags=("prod", "web"), metadata={"role": "web"})
    fake.add("Web-3", tags=("staging", "web"))
    fake.add("db-1", tags=("prod", "db"), metadata={"role": "db", "tier": "1"})
    fake.add("cache-1", status="SHUTOFF", metadata={"role": "cache"})
    fake.add("twin", tags=("prod",))
    fake.add("twin", status="ERROR")
    return fake


def names(cloud: FakeCloud, **selectors: Any) -> list[str]:
    return [item.server.name for item in resolve(cloud, Selection.parse(**selectors))]


def why(cloud: FakeCloud, **selectors: Any) -> dict[str, tuple[str, ...]]:
    return {item.server.name: item.why for item in resolve(cloud, Selection.parse(**selectors))}


def test_names_ids_and_globs_in_the_order_given(cloud: FakeCloud) -> None:
    db = next(s.info for s in cloud.servers.values() if s.info.name == "db-1")
    assert names(cloud, patterns=["db-1", "web-*"]) == ["db-1", "web-1", "web-2"]
    assert names(cloud, patterns=[db.id]) == ["db-1"]
    assert names(cloud, patterns=["[Ww]eb-?", "web-1"]) == ["Web-3", "web-1", "web-2"]
    assert why(cloud, patterns=["web-*", "web-1"])["web-1"] == ("web-*", "web-1")
    assert why(cloud, patterns=[db.id])["db-1"] == (db.id,)
    assert cloud.calls == ["list"] * 5  # names: resolved in the whole project, unfiltered


def test_filters_are_sent_to_the_cloud_and_checked_again(cloud: FakeCloud) -> None:
    chosen = why(cloud, tags=["prod", "web"], statuses=["error"])
    assert chosen == {"web-2": ("--tag prod", "--tag web", "--status ERROR")}
    assert cloud.calls[-1] == "list tags=prod,web status=ERROR"
    assert names(cloud, any_tags=["db", "staging"]) == ["Web-3", "db-1"]
    assert why(cloud, any_tags=["db", "staging"])["db-1"] == ("--any-tag db",)
    assert cloud.calls[-1] == "list tags-any=db,staging"
    assert names(cloud, not_tags=["prod", "staging"]) == ["cache-1", "twin"]
    assert cloud.calls[-1] == "list not-tags-any=prod,staging"
    assert names(cloud, statuses=["ERROR", "SHUTOFF"]) == ["cache-1", "twin", "web-2"]


def test_the_name_regex_is_case_sensitive_here_whatever_the_cloud_does(cloud: FakeCloud) -> None:
    # The fake matches case-insensitively, as MySQL's REGEXP: Web-3 comes back, and is dropped.
    assert names(cloud, name_regex="^web") == ["web-1", "web-2"]
    assert cloud.calls[-1] == "list name=^web"
    assert names(cloud, name_regex="(?i)^web-[13]") == ["Web-3", "web-1"]
    assert cloud.calls[-1] == "list"  # (?i) is Python's: not sent, checked here only
    assert names(cloud, name_regex=r"-\d$") == [
        "Web-3", "cache-1", "db-1", "web-1", "web-2"
    ]  # fmt: skip
    assert cloud.calls[-1] == "list"


def test_metadata_is_checked_here(cloud: FakeCloud) -> None:
    assert names(cloud, metadata=["role=web"]) == ["web-1", "web-2"]
    assert cloud.calls[-1] == "list"  # nova has no metadata filter
    assert why(cloud, metadata=["role=db", "tier=1"]) == {
        "db-1": ("--metadata role=db", "--metadata tier=1")
    }
    with pytest.raises(NotFoundError, match="no instance matches --metadata role=dba"):
        names(cloud, metadata=["role=dba"])


def test_a_cloud_that_ignores_the_filters_never_widens_the_set(cloud: FakeCloud) -> None:
    cloud.ignore_filters = True
    assert names(cloud, tags=["prod"], not_tags=["web"]) == ["db-1", "twin"]
    assert names(cloud, statuses=["SHUTOFF"]) == ["cache-1"]
    assert names(cloud, name_regex="^db") == ["db-1"]
    with pytest.raises(NotFoundError) as typo:
        names(cloud, tags=["prdo"])
    assert typo.value.exit_status == ExitStatus.NOT_FOUND
    assert typo.value.message == "no instance matches --tag prdo"


def test_filters_narrow_named_instances(cloud: FakeCloud) -> None:
    assert why(cloud, patterns=["web-*"], statuses=["ERROR"]) == {
        "web-2": ("web-*", "--status ERROR")
    }
    with pytest.raises(NotFoundError, match="no instance matches web-1, --status ERROR"):
        names(cloud, patterns=["web-1"], statuses=["ERROR"])


def test_a_shared_name_is_refused_even_when_a_filter_would_hide_one(cloud: FakeCloud) -> None:
    with pytest.raises(AmbiguousNameError) as shared:
        names(cloud, patterns=["twin"], statuses=["ERROR"])
    assert shared.value.exit_status == ExitStatus.CONFLICT
    assert "2 instances are named 'twin'" in shared.value.message
    assert shared.value.message.endswith("; use an id")
    assert names(cloud, patterns=["tw*"]) == ["twin", "twin"]  # a glob may match both


def test_what_names_nothing_is_refused_whole(cloud: FakeCloud) -> None:
    with pytest.raises(NotFoundError) as missing:
        names(cloud, patterns=["web-1", "web-9", "db-*9"])
    assert missing.value.message == (
        "no instance named or with id 'web-9'; no instance name matches 'db-*9'"
    )


def test_all_is_explicit(cloud: FakeCloud) -> None:
    with pytest.raises(InvalidInputError, match="nothing is selected"):
        Selection.parse()
    with pytest.raises(InvalidInputError, match="--all selects every instance: it cannot go with"):
        Selection.parse(everything=True, tags=["prod"])
    chosen = resolve(cloud, Selection.parse(everything=True))
    assert len(chosen) == 7 and {item.why for item in chosen} == {("--all",)}
    assert cloud.calls[-1] == "list"


def test_tags_the_cloud_does_not_show_are_an_error_not_a_guess() -> None:
    old = FakeCloud(FakeClock())
    old.add("web-1", tags=None)
    for selectors in ({"tags": ["prod"]}, {"not_tags": ["prod"]}):
        with pytest.raises(CloudError, match="does not show server tags"):
            names(old, **selectors)
    assert names(old, patterns=["web-1"]) == ["web-1"]


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        ({"name_regex": "("}, "--name-regex '(': not a valid regular expression"),
        ({"metadata": ["role"]}, "--metadata 'role': expected KEY=VALUE"),
        ({"metadata": ["=web"]}, "--metadata '=web': expected KEY=VALUE"),
        ({"metadata": ["a=1", "a=2"]}, "--metadata: 'a' given twice with different values"),
        ({"statuses": ["SLEEPY"]}, "--status 'SLEEPY': not a server status (one of ACTIVE,"),
        ({"tags": ["a,b"]}, "--tag 'a,b': a tag cannot contain ',' or '/'"),
        ({"any_tags": [""]}, "--any-tag '': a tag cannot be empty"),
        ({"not_tags": ["x" * 61]}, "a tag has at most 60 characters"),
        ({"patterns": [" "]}, "an instance name, ID or glob cannot be empty"),
    ],
)
def test_bad_selectors_are_refused_before_the_cloud(
    selectors: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        Selection.parse(**selectors)
    assert message in refused.value.message


def test_a_listing_names_one_instance_a_line(cloud: FakeCloud) -> None:
    listed = listing("# hosts to fix\nweb-1\n\n  db-1  \n", "hosts.txt")
    assert [(item.word, item.line) for item in listed] == [("web-1", 2), ("db-1", 4)]
    chosen = why(cloud, listed=listed, patterns=["cache-*"])
    assert chosen == {
        "cache-1": ("cache-*",),
        "web-1": ("--from-file hosts.txt:2",),
        "db-1": ("--from-file hosts.txt:4",),
    }
    assert listing("web-*\n", "-")[0].word == "web-*"  # no globs in a listing: a name
    with pytest.raises(NotFoundError, match="no instance named or with id 'web-\\*'"):
        names(cloud, listed=listing("web-*\n", "-"))
    with pytest.raises(InvalidInputError, match="--from-file -: no instance name or ID in it"):
        listing("\n# nothing\n", "-")


def env_with(stdin: str) -> Environment:
    return Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())


def test_from_file_reads_a_file_or_stdin(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("web-1\nweb-2\n")
    given = SelectionOptions(from_file=str(hosts)).selection(env_with(""))
    assert [item.word for item in given.listed] == ["web-1", "web-2"]
    assert given.selectors() == [f"--from-file {hosts}"]
    piped = SelectionOptions(from_file="-", status=["active"]).selection(env_with("db-1\n"))
    assert [item.source for item in piped.listed] == ["-"] and piped.statuses == ("ACTIVE",)
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    for name, message in (
        ("nope.txt", "no such file"),
        ("", "cannot read it (Is a directory)"),
        ("latin1.txt", "cannot read it (not UTF-8 text)"),
    ):
        with pytest.raises(
            InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            SelectionOptions(from_file=str(tmp_path / name)).selection(env_with(""))
