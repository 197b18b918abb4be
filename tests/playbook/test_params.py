"""Turning command-line text into parameter values (before the cloud is touched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.playbook.params import FactDefault, parse_assignments, resolve
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.schema import ParameterSpec
from tests.playbook.conftest import load, no_secret, write_public_key

PLAYBOOK = load(
    """\
name: t
description: Every parameter type.
parameters:
  count: {type: int, description: A count., default: 3}
  enabled: {type: bool, description: On or off., default: false}
  mode: {type: choice, choices: [a, b], description: A mode., default: a}
  where: {type: path, description: A guest path., default: /etc/motd}
  who: {type: user, description: A user., default: "{{ facts.default_user }}"}
  text: {type: string, description: Some text.}
  keys: {type: public_keys, description: Keys., default: [~/.ssh/none.pub, ~/.ssh/id.pub]}
  password: {type: secret, description: A password.}
steps:
  - name: use them
    action: run_rescue
    argv: [echo, "{{ count }}", "{{ enabled }}", "{{ mode }}", "{{ where }}", "{{ who }}",
           "{{ text }}"]
    stdin: "{{ password }}"
  - name: keys
    action: authorized_keys
    keys: "{{ keys }}"
"""
)


def _secret(name: str, spec: ParameterSpec) -> Secret:
    return Secret("pw")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".ssh").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_assignments_group_repeated_names() -> None:
    assert parse_assignments(["key=a.pub", "key=b.pub", "user=x=y"]) == {
        "key": ["a.pub", "b.pub"],
        "user": ["x=y"],
    }
    with pytest.raises(InvalidInputError, match="expected NAME=VALUE"):
        parse_assignments(["novalue"])


def test_values_and_defaults(home: Path) -> None:
    line = write_public_key(home / ".ssh/id.pub")
    given = {"count": ["7"], "enabled": ["yes"], "mode": ["b"], "text": ["hello"]}
    values = resolve(PLAYBOOK, given, _secret)
    assert values["count"] == 7
    assert values["enabled"] is True
    assert values["mode"] == "b"
    assert values["where"] == "/etc/motd"
    assert values["who"] == FactDefault("facts.default_user")
    assert values["text"] == "hello"
    keys = values["keys"]
    assert isinstance(keys, tuple) and keys[0].line == line
    assert values["password"] == Secret("pw")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"nope": ["1"]}, "playbook t has no parameter 'nope'"),
        ({"count": ["x"]}, "parameter 'count': expected an integer, got 'x'"),
        ({"count": ["1", "2"]}, "parameter 'count' given 2 times"),
        ({"enabled": ["maybe"]}, "parameter 'enabled': expected true or false"),
        ({"mode": ["c"]}, "parameter 'mode': 'c' is not one of a, b"),
        ({"where": ["etc"]}, "parameter 'where': expected an absolute guest path"),
        ({"who": ["bad user"]}, "parameter 'who': 'bad user' is not a valid user"),
        ({"password": ["pw"]}, "parameter 'password' is a secret: it is never taken"),
        ({}, "missing parameter 'text': Some text."),
    ],
)
def test_bad_values_are_usage_errors(home: Path, given: dict[str, list[str]], message: str) -> None:
    write_public_key(home / ".ssh/id.pub")
    given = {"text": ["t"], **given} if given else given
    with pytest.raises(InvalidInputError, match=message):
        resolve(PLAYBOOK, given, _secret)


def test_key_files_are_validated(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-base64!\n")
    with pytest.raises(InvalidInputError, match="not valid base64"):
        resolve(PLAYBOOK, {"text": ["t"], "keys": [str(bad)]}, _secret)
    missing = r"none of ~/\.ssh/none\.pub, ~/\.ssh/id\.pub exists"
    with pytest.raises(InvalidInputError, match=missing):
        resolve(PLAYBOOK, {"text": ["t"]}, _secret)


def test_several_key_files(home: Path, tmp_path: Path) -> None:
    first = write_public_key(tmp_path / "a.pub", "a")
    second = write_public_key(tmp_path / "b.pub", "b")
    values = resolve(
        PLAYBOOK, {"text": ["t"], "keys": [str(tmp_path / "a.pub"), str(tmp_path / "b.pub")]},
        _secret,
    )
    keys = values["keys"]
    assert isinstance(keys, tuple)
    assert [key.line for key in keys] == [first, second]


def test_secrets_are_asked_for_only_when_declared(home: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nsteps:\n"
        "  - name: x\n    action: remove_file\n    path: /etc/motd\n"
    )
    assert resolve(playbook, {}, no_secret) == {}
