"""Console signatures (issue 12): the catalog's symptoms and the built-in ones, read on the
console's last boot only, each match evidence with its line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.console import last_boot
from cloudrescue.diagnose.findings import Finding, rank
from cloudrescue.diagnose.signatures import match
from cloudrescue.playbook import catalog as shipped_catalog
from cloudrescue.playbook.schema import load_text

from . import consoles

CATALOG = Catalog.shipped()


def findings(console: str) -> list[Finding]:
    """The findings of the console's signatures, merged by playbook and ranked."""
    return rank(match(last_boot(console), CATALOG.signatures))


def keys(console: str) -> list[str]:
    return [finding.key for finding in findings(console)]


def test_the_last_boot_starts_at_the_last_kernel_line_and_keeps_the_log_numbers() -> None:
    boot = last_boot(consoles.FSTAB)
    first = consoles.HEALTHY.count("\n") + 1
    assert boot.boots == 2 and boot.start == first
    assert boot.lines[0].text.startswith("[    0.000021] Linux version")
    assert boot.total == consoles.FSTAB.count("\n")
    lines = consoles.FSTAB.split("\n")
    assert all(lines[line.number - 1] == line.text for line in boot.lines)


def test_a_log_without_a_kernel_line_is_read_whole_and_colours_are_dropped() -> None:
    boot = last_boot("\x1b[0;32m[  OK  ]\x1b[0m Started ssh.service.\r\nweb-1 login: ")
    assert boot.boots == 0 and boot.start == 1
    assert [line.text for line in boot.lines] == ["[  OK  ] Started ssh.service.\r"[:-1],
                                                  "web-1 login: "]
    assert last_boot("").lines == () and last_boot("").start is None


def test_a_healthy_console_matches_no_signature() -> None:
    assert findings(consoles.HEALTHY) == []


def test_what_an_earlier_boot_printed_is_history() -> None:
    repaired = consoles.FSTAB + consoles.HEALTHY
    assert findings(repaired) == []


@pytest.mark.parametrize(
    ("console", "playbook"),
    [
        (consoles.FSTAB, "fix-fstab"),
        (consoles.SSHD_CONFIG, "fix-sshd-config"),
        (consoles.FSCK, "fsck"),
        (consoles.SELINUX, "selinux-relabel"),
        (consoles.CLOUD_INIT, "reset-cloud-init"),
        (consoles.DHCP, "fix-network"),
        (consoles.STRICT_MODES, "fix-ssh-keys"),
        (consoles.SUDOERS, "fix-sudoers"),
    ],
)
def test_each_catalog_symptom_names_its_playbook(console: str, playbook: str) -> None:
    [found] = [finding for finding in findings(console) if finding.playbook == playbook]
    assert found.key == playbook
    assert all(item.source == "console" and item.line for item in found.evidence)


def test_a_full_disk_is_the_disk_full_playbook_and_emergency_mode_only_a_low_fstab_hint() -> None:
    found = {finding.key: finding for finding in findings(consoles.DISK_FULL)}
    assert found["disk-full"].confidence == "high"
    assert found["fix-fstab"].confidence == "low"
    [line] = found["disk-full"].evidence
    assert "No space left on device" in line.text
    assert consoles.DISK_FULL.split("\n")[(line.line or 0) - 1] == line.text


def test_sshd_refusing_its_config_gives_the_line_it_refuses() -> None:
    [found] = findings(consoles.SSHD_CONFIG)
    assert found.confidence == "high"
    assert any("line 123: Bad configuration option" in item.text for item in found.evidence)


@pytest.mark.parametrize(
    ("console", "key", "advice"),
    [
        (consoles.KERNEL_PANIC, "builtin:kernel-panic", "initramfs"),
        (consoles.NO_BOOT_DEVICE, "builtin:no-bootable-device", "grub-install"),
        (consoles.GRUB_PROMPT, "builtin:grub-prompt", "grub-install"),
    ],
)
def test_what_no_playbook_cures_says_what_to_do_by_hand(
    console: str, key: str, advice: str
) -> None:
    [found] = [finding for finding in findings(console) if finding.key == key]
    assert found.playbook is None and found.command("web-1") is None
    assert found.advice is not None and advice in found.advice
    assert found.confidence == "high"


def test_every_shipped_symptom_is_in_the_catalog_and_matches_no_healthy_line() -> None:
    count = 0
    for name in shipped_catalog.shipped_names():
        for symptom in shipped_catalog.load_shipped(name).symptoms.console:
            count += 1
            assert not any(symptom.compiled().search(line)
                           for line in consoles.HEALTHY.splitlines()), (name, symptom.pattern)
    assert len(CATALOG.signatures) > count >= 15


def test_a_users_playbook_file_adds_a_diagnosis_without_python(tmp_path: Path) -> None:
    text = """\
name: fix-app
description: Restart the app after its config broke.
mount: none
symptoms:
  console:
    - pattern: 'app\\[\\d+\\]: config error'
      cause: the app refuses its configuration
      confidence: high
steps:
  - name: Look
    action: run_rescue
    argv: ["true"]
    read_only: true
"""
    path = tmp_path / "fix-app.yaml"
    path.write_text(text)
    catalog = Catalog.shipped([(str(path), load_text(text, str(path)))])
    console = consoles.broken(consoles.KERNEL + "[  9.1] app[77]: config error in /etc/app\n")
    [found] = match(last_boot(console), catalog.signatures)
    assert found.playbook == str(path)
    assert found.command("web-1") == f"cloudrescue run web-1 {path}"


def test_lines_are_cut_before_matching_and_evidence_is_cut_shorter() -> None:
    console = consoles.broken(consoles.KERNEL + "x" * 5000 + " No space left on device\n")
    assert "disk-full" not in keys(console)  # beyond MAX_LINE: not read
    console = consoles.broken(consoles.KERNEL + "No space left on device " + "y" * 5000 + "\n")
    [found] = [finding for finding in findings(console) if finding.key == "disk-full"]
    assert len(found.evidence[0].text) <= 300


NOFAIL_BOOT = (
    consoles.KERNEL
    + "[ TIME ] Timed out waiting for device UUID=8bf51525-9c9c-4554-b6c6-4c5db0ba5ed3.\n"
    "[DEPEND] Dependency failed for /srv/data.\n"
    + consoles.JOURNAL + consoles.NETWORK.format(address=consoles.ADDRESS) + consoles.KEYS
    + consoles.SSHD_UP
)


def test_a_nofail_device_that_times_out_in_a_boot_that_went_on_is_no_fstab_finding() -> None:
    # fix-fstab made the entry nofail: its device still times out, the boot goes on to sshd
    repaired = consoles.FSTAB + NOFAIL_BOOT
    boot = last_boot(repaired)
    assert any("Timed out waiting for device" in line.text for line in boot.lines)
    went_on = boot.went_on()
    assert went_on is not None and "Started ssh.service" in went_on.text
    assert findings(repaired) == []
    # the same lines in a boot that stopped are the cause
    assert keys(consoles.FSTAB) == ["fix-fstab"]


def test_the_firmware_starts_a_boot_and_a_reboot_that_reached_no_kernel_is_one() -> None:
    firmware = "SeaBIOS (version 1.16.2-debian-1.16.2-1)\nBooting from Hard Disk...\n"
    boot = last_boot(consoles.FSTAB + firmware + consoles.HEALTHY)
    assert boot.boots == 3 and boot.lines[0].text.startswith("SeaBIOS (version")
    assert boot.lines[2].text.startswith("[    0.000021] Linux version")
    stuck = last_boot(consoles.FSTAB + firmware + "No bootable device.\n")
    assert stuck.boots == 3 and len(stuck.lines) == 3
    assert [finding.key for finding in rank(match(stuck, CATALOG.signatures))] == [
        "builtin:no-bootable-device"]
