"""Test tiers: the ``root`` marker, set here on every test that needs root but not the lab.

``scripts/test --quick`` runs ``-m "not lab and not root and not slow"``: the tests that pass as
any user, less the ``slow`` ones (the wheel build; the full run has them).
The lab's tests are marked ``lab`` in their own modules (they need root too). A test is marked
``root`` here when it

* uses a fixture that attaches loop devices, mounts or chroots (those fixtures skip themselves
  when not root), or one that chowns the guest tree it builds to another user;
* carries a ``skipif`` on the effective uid (a reason that names root); or
* chowns files itself, directly or through GuestFS (a new guest file is made 0:0 unless told
  otherwise, and only root may give a file away), or reads root's own files: ``ROOT_TESTS``.

The marker expression decides, not who runs: root and a user select the same tests.

The full run (``scripts/test``) runs the tests in pytest-xdist workers, one module to a worker
(``--dist loadfile``: its module and session fixtures, its lab, made once; ``loadgroup`` with
an ``xdist_group`` mark added here did not keep a module together), then the tests marked
``alone`` by themselves: those compare the whole machine's state (its mount table), which the
other workers' labs change, or were seen disturbed by them.
"""

from __future__ import annotations

import re
import signal
import warnings
from pathlib import Path

import pytest

# A shell without job control starts a background command with SIGINT ignored, and an ignored
# signal stays ignored across exec: the Ctrl-C tests' processes would never see theirs (a
# clean run started with `scripts/test &` failed all six). A handler, which exec resets to
# the default, gives the workers and every command they start the default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent

# (where the fixture is visible: a folder/ or a module, fixture name) -> why it needs root
ROOT_FIXTURES: dict[tuple[str, str], str] = {
    ("tests/disks/", "disk_lab"): "loop devices and mounts",
    ("tests/fixes/", "chroot_guest"): "overlay mount and chroot",
    ("tests/fixes/test_fstab.py", "attached_uuid"): "a loop device",
    ("tests/fixes/test_disk_space.py", "full_root"): "a loop mount",
    ("tests/fixes/test_fsck_logs_diagnostics.py", "loop_image"): "a loop device",
    ("tests/playbook/", "root"): "chowns the guest's /home/debian to 1000:1000",
    ("tests/unit/test_ssh_access.py", "guest"): "chowns the guest's /home/debian to 1000:1000",
}

# module -> test functions (every parametrization of each) that need root in their own body
ROOT_TESTS: dict[str, frozenset[str]] = {
    # GuestFS creates new files 0:0 (firewalld zone copy, /.autorelabel)
    "tests/fixes/test_firewall.py": frozenset(
        {
            "test_rhel_firewalld_zone_and_iptables_services",
            "test_rhel_firewalld_disabled_and_shipped_zone_copied",
        }
    ),
    "tests/fixes/test_network.py": frozenset({"test_rhel_keyfile_and_ifcfg"}),
    "tests/fixes/test_small_fixes.py": frozenset({"test_selinux_relabel_and_permissive"}),
    # make() chowns etc/shadow to 0:42
    "tests/fixes/test_passwords.py": frozenset(
        {
            "test_reset_unlocks_unexpires_and_is_idempotent",
            "test_dry_run_writes_nothing_and_shows_no_secret",
            "test_unknown_user_and_bad_password_are_refused",
            "test_passwd_field_is_pointed_at_shadow",
        }
    ),
    # guest owners (0:0, 1000:1000) on new files, and the host's /root/.ssh (mode 700)
    "tests/unit/test_guestfs.py": frozenset(
        {
            "test_atomic_write_backs_up_and_sets_guest_owner",
            "test_second_identical_write_changes_nothing",
            "test_metadata_only_change_is_reported",
            "test_backups_never_overwrite_each_other",
            "test_rollback_restores_everything",
            "test_selinux_relabel_only_on_selinux_guests",
            "test_dot_ssh_linked_to_root_writes_the_guests_root",
        }
    ),
}

ROOT_REASON = re.compile(r"\broot\b", re.IGNORECASE)


def _where(item: pytest.Item) -> str:
    """The item's module, relative to the repository (``tests/unit/test_keys.py``)."""
    try:
        return item.path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return item.path.as_posix()


def needs_root(item: pytest.Item) -> str | None:
    """Why ``item`` needs root (but not the lab), or None."""
    where = _where(item)
    name = getattr(item, "originalname", item.name)
    if name in ROOT_TESTS.get(where, ()):
        return "listed in tests/conftest.py ROOT_TESTS"
    for (scope, fixture), why in ROOT_FIXTURES.items():
        in_scope = where.startswith(scope) if scope.endswith("/") else where == scope
        if in_scope and fixture in getattr(item, "fixturenames", ()):
            return f"fixture {fixture}: {why}"
    for mark in item.iter_markers("skipif"):
        reason = str(mark.kwargs.get("reason", ""))
        if ROOT_REASON.search(reason):
            return f"skipif: {reason}"
    return None


def _warn_stale(items: list[pytest.Item]) -> None:
    """A ROOT_TESTS name its module no longer defines: renamed, so no longer marked."""
    modules = {_where(item): getattr(item, "module", None) for item in items}
    for where, names in ROOT_TESTS.items():
        module = modules.get(where)
        if module is None:
            continue
        for name in sorted(names):
            if not hasattr(module, name):
                warnings.warn(
                    pytest.PytestWarning(
                        f"tests/conftest.py ROOT_TESTS: {where} has no {name} any more"
                    ),
                    stacklevel=1,
                )


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("lab") is None and needs_root(item) is not None:
            item.add_marker(pytest.mark.root)
    _warn_stale(items)
