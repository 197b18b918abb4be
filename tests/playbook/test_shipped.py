"""The shipped playbooks: all valid, and the short commands' playbooks on a guest tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.fixes.passwords import verify
from cloudrescue.playbook import SHORT_COMMANDS, catalog
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.schema import ParameterSpec
from tests.playbook.conftest import play, snapshot, statuses, write_public_key

SHIPPED = Path(__file__).parents[2] / "playbooks"


def test_every_shipped_playbook_is_valid_and_named_like_its_file() -> None:
    names = catalog.shipped_names()
    assert names == sorted(path.stem for path in SHIPPED.glob("*.yaml"))
    for name in names:
        assert catalog.load_shipped(name).name == name
    assert set(SHORT_COMMANDS) <= set(names)


def test_find_by_name_or_file() -> None:
    assert catalog.find("fix-ssh-keys").source == "playbooks/fix-ssh-keys.yaml"
    assert catalog.find(str(SHIPPED / "fsck.yaml")).mount == "unmounted"
    with pytest.raises(InvalidInputError, match="no such playbook file"):
        catalog.find("./nope.yaml")


def test_fix_ssh_keys_authorises_the_key_then_changes_nothing(root: Path, tmp_path: Path) -> None:
    line = write_public_key(tmp_path / "id.pub")
    playbook = catalog.load_shipped("fix-ssh-keys")
    given = {"key": [str(tmp_path / "id.pub")]}
    before = snapshot(root)
    checked = play(playbook, root, given=given, dry_run=True)
    assert statuses(checked) == ["changed"]
    assert f"+{line}" in "".join(change.diff for change in checked.changes)
    assert snapshot(root) == before
    first = play(playbook, root, given=given)
    assert statuses(first) == ["changed"]
    assert (root / "home/debian/.ssh/authorized_keys").read_text() == line + "\n"
    assert first.message == "log in with: ssh debian@192.0.2.10"
    assert statuses(play(playbook, root, given=given)) == ["ok"]


def test_fix_ssh_keys_for_another_user_replacing_keys(root: Path, tmp_path: Path) -> None:
    (root / "root/.ssh").mkdir(mode=0o700)
    (root / "root/.ssh/authorized_keys").write_text("ssh-ed25519 AAAA old\n")
    line = write_public_key(tmp_path / "id.pub")
    given = {"key": [str(tmp_path / "id.pub")], "user": ["root"], "replace": ["true"]}
    play(catalog.load_shipped("fix-ssh-keys"), root, given=given)
    assert (root / "root/.ssh/authorized_keys").read_text() == line + "\n"


def test_fix_ssh_keys_unknown_user(root: Path, tmp_path: Path) -> None:
    write_public_key(tmp_path / "id.pub")
    given = {"key": [str(tmp_path / "id.pub")], "user": ["nobody"]}
    with pytest.raises(InvalidInputError, match="no user 'nobody'"):
        play(catalog.load_shipped("fix-ssh-keys"), root, given=given)


def _password(name: str, spec: ParameterSpec) -> Secret:
    return Secret("correct horse")


def test_reset_password_writes_a_hash_never_the_password(root: Path) -> None:
    playbook = catalog.load_shipped("reset-password")
    checked = play(playbook, root, given={"user": ["debian"]}, secret=_password, dry_run=True)
    assert statuses(checked) == ["changed", "skipped"]
    assert "correct horse" not in repr(checked)
    assert "$" not in "".join(change.diff for change in checked.changes)
    first = play(playbook, root, given={"user": ["debian"]}, secret=_password)
    assert statuses(first) == ["changed", "skipped"]
    shadow = (root / "etc/shadow").read_text()
    assert "correct horse" not in shadow
    hashed = next(line for line in shadow.splitlines() if line.startswith("debian:")).split(":")[1]
    assert verify(b"correct horse", hashed)
    again = play(playbook, root, given={"user": ["debian"]}, secret=_password)
    assert statuses(again) == ["ok", "skipped"]


def test_reset_password_with_ssh_allows_password_logins(root: Path) -> None:
    playbook = catalog.load_shipped("reset-password")
    given = {"user": ["debian"], "ssh": ["true"]}
    assert statuses(play(playbook, root, given=given, secret=_password)) == ["changed", "changed"]
    drop_in = root / "etc/ssh/sshd_config.d/05-cloudrescue-password-debian.conf"
    assert "Match User debian\n\tPasswordAuthentication yes\n" in drop_in.read_text()
    assert statuses(play(playbook, root, given=given, secret=_password)) == ["ok", "ok"]


def test_the_wheel_ships_the_playbooks() -> None:
    """``pip install .`` packages playbooks/*.yaml as ``cloudrescue.playbooks`` (package data)."""
    import tomllib

    from setuptools import find_namespace_packages

    repo = SHIPPED.parent
    link = repo / "cloudrescue/playbooks"
    assert link.is_symlink() and link.resolve() == SHIPPED.resolve()
    config = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["packages"]["find"]["namespaces"] is True
    assert config["package-data"]["cloudrescue.playbooks"] == ["*.yaml"]
    found = find_namespace_packages(str(repo), include=config["packages"]["find"]["include"])
    assert "cloudrescue.playbooks" in found
