"""Every case of the hostile disk corpus through every shipped playbook that touches its path,
in check mode and for real: this machine (the rescue system) is byte-identical after, the
guest changed only where the playbook is meant to change it, the run ended in bounded time,
either well or with a cloudrescue error (nothing changed then), and nothing the guest wrote
reached the terminal as markup or an escape sequence."""

from __future__ import annotations

import subprocess

import pytest

from cloudrescue.errors import CloudRescueError, FixFailedError
from tests.hostile.conftest import BOUND, Hostile, Outcome
from tests.hostile.corpus import (
    CANARY_DISK,
    CASES,
    GUEST_PLAYBOOKS,
    PLANTED_DEVICE,
    Case,
    GuestState,
    World,
    allowed_patterns,
    host_state,
    is_allowed,
)

pytestmark = pytest.mark.root

PAIRS = [
    pytest.param(case, playbook, id=f"{case.name}|{playbook}")
    for case in CASES
    for playbook in case.playbooks
]


def python_errors(error: BaseException | None) -> list[BaseException]:
    """What reached the run's boundary that is not a cloudrescue error: the error itself, or
    the one the phase only wrapped when it restored the files (``phase._restore``: "...;
    restored N change(s) from backups"); a fix's own translation (``raise FixFailedError(...)
    from ParseError``) is handled, not escaped."""
    if error is None:
        return []
    if not isinstance(error, CloudRescueError):
        return [error]
    cause = error.__cause__
    if "; restored " in error.message and cause is not None:
        return [] if isinstance(cause, CloudRescueError) else [cause]
    return []


def judge(outcome: Outcome, what: str) -> None:
    assert outcome.finished, f"{what}: still running after {BOUND:.0f} s (FIFOs fed EOF since)"
    assert outcome.seconds < BOUND, f"{what}: took {outcome.seconds:.1f} s"
    assert not python_errors(outcome.error), (
        f"{what}: not a cloudrescue error: {python_errors(outcome.error)!r}\n{outcome.output}"
    )
    assert "\x1b" not in outcome.output and "\x07" not in outcome.output, outcome.output


@pytest.mark.parametrize(("case", "playbook"), PAIRS)
def test_a_hostile_disk_changes_only_what_the_playbook_is_for(
    hostile: Hostile, case: Case, playbook: str
) -> None:
    world = hostile.world(case)
    for dry_run in (True, False):
        what = f"{playbook}{' --dry-run' if dry_run else ''} on {case.name}"
        allowed = allowed_patterns(world.tree, playbook)
        guest = GuestState(world).take()
        host = host_state(world)
        outcome = hostile.run(world, playbook, dry_run=dry_run)
        judge(outcome, what)
        assert host_state(world) == host, f"{what}: this machine changed\n{outcome.output}"
        changed = guest.diff()
        if dry_run or outcome.error is not None:
            assert changed == {}, f"{what}: changed the guest\n{outcome.output}"
            continue
        unexpected = {
            path: change
            for path, change in changed.items()
            if not is_allowed(path, allowed, new=change[0] is None)
        }
        assert unexpected == {}, f"{what}: changed the guest outside {allowed}\n{outcome.output}"
        assert guest.leaks(changed) == {}, f"{what}: gave a user root's secrets\n{outcome.output}"


def clean(world: World) -> None:
    """Nothing hostile: the furnished guest as it is."""


@pytest.mark.parametrize("playbook", GUEST_PLAYBOOKS)
def test_control_every_playbook_has_work_on_the_furnished_guest(
    hostile: Hostile, playbook: str
) -> None:
    """The corpus is not passed vacuously: on the furnished guest with nothing planted, every
    playbook changes something (collect-logs writes its tarball; enable-serial-console needs
    grub's tools, which only the debootstrapped guest has)."""
    world = hostile.world(Case("clean", clean, GUEST_PLAYBOOKS))
    outcome = hostile.run(world, playbook, dry_run=False)
    judge(outcome, playbook)
    if playbook == "enable-serial-console":
        assert isinstance(outcome.error, FixFailedError), outcome.output
        assert "neither update-grub nor grub-mkconfig" in outcome.error.message
        return
    assert outcome.error is None and outcome.report is not None, outcome.output
    if playbook == "collect-logs":
        assert (world.out / "logs.tar.gz").stat().st_size > 0
    else:
        assert outcome.report.changed, outcome.output


def test_control_a_planted_program_reaches_this_machine_from_a_plain_chroot(
    hostile: Hostile,
) -> None:
    """The planted programs are not harmless: run the way the guest's tools ran before the
    sandbox (a chroot with the rescue's /proc), the planted sshd writes the canary through
    /proc/1/root and the canary disk through its device node."""
    [case] = [case for case in CASES if case.name == "planted:/usr/sbin/sshd@debian"]
    world = hostile.world(case)
    assert world.disk is not None
    script = 'mount --bind /proc "$1/proc" && exec chroot "$1" /usr/sbin/sshd -t'
    argv = ["unshare", "--mount", "--", "sh", "-c", script, "sh", str(world.tree)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    try:
        assert f"root{world.canary}/escaped" in result.stdout, result
        assert (world.canary / "escaped").read_text().startswith("owned\n")
        assert f"WROTE-DISK {PLANTED_DEVICE}" in result.stdout
        assert world.disk.image.read_bytes() != CANARY_DISK
    finally:
        world.disk.reset()


def test_a_guest_file_name_cannot_forge_a_line_of_the_report(hostile: Hostile) -> None:
    def plant(world: World) -> None:
        forged = world.at("/etc/sudoers.d") / "evil\nFORGED: web-1 needed no change"
        forged.write_text("debian ALL=(ALL) NOPASSWD:ALL\n")
        forged.chmod(0o644)

    world = hostile.world(Case("name-forging-a-line", plant, ("fix-sudoers",)))
    outcome = hostile.run(world, "fix-sudoers", dry_run=False)
    judge(outcome, "fix-sudoers")
    assert outcome.report is not None and outcome.report.changed
    assert not [line for line in outcome.output.splitlines() if line.startswith("FORGED")]
