"""Console signatures: patterns searched in the lines of the console's last boot.

Most come from the catalog (each playbook's ``symptoms.console``: a match is a finding of that
playbook). ``BUILTIN`` holds the ones no playbook cures, a machine that does not boot at all:
a kernel panic, no bootable device, a GRUB prompt; their findings say what to do by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cloudrescue.diagnose.console import Boot
from cloudrescue.diagnose.findings import Confidence, Evidence, Finding

MAX_MATCHES = 5
"""Evidence lines kept per signature (the first ones of the boot)."""


@dataclass(frozen=True)
class Signature:
    """A console pattern and what a line it finds means.

    ``key`` groups signatures into one finding (a playbook's reference, or a built-in name);
    a signature has a ``playbook`` to run or, built-in, the ``advice`` of what to do by hand.
    """

    key: str
    pattern: re.Pattern[str]
    cause: str
    confidence: Confidence
    playbook: str | None = None
    advice: str | None = None
    stops_boot: bool = False  # a line the boot went on past (to sshd, a login) is history

    def finding(self, evidence: Sequence[Evidence]) -> Finding:
        """The finding of these matches."""
        return Finding(
            key=self.key,
            cause=self.cause,
            confidence=self.confidence,
            evidence=tuple(evidence),
            playbook=self.playbook,
            advice=self.advice,
        )


def _builtin(name: str, pattern: str, cause: str, advice: str) -> Signature:
    return Signature(f"builtin:{name}", re.compile(pattern), cause, "high", advice=advice)


BUILTIN: tuple[Signature, ...] = (
    _builtin(
        "kernel-panic",
        r"Kernel panic - not syncing|VFS: Unable to mount root fs",
        "the kernel panicked at boot",
        "read the panic's reason on the console (`cloudrescue console log INSTANCE`); a kernel "
        "or initramfs that cannot mount the root needs the previous kernel chosen in GRUB "
        "(`cloudrescue console url INSTANCE`) or a rebuilt initramfs (`cloudrescue shell "
        "INSTANCE`: update-initramfs -u, or dracut -f)",
    ),
    _builtin(
        "no-bootable-device",
        r"No bootable device|Boot failed: not a bootable disk|No boot device available|"
        r"Booting from Hard Disk\.\.\. *Boot failed",
        "the firmware found nothing to boot on the disk",
        "the boot loader is missing or the disk is not the boot disk: check the image or "
        "volume the instance boots from, or reinstall GRUB from `cloudrescue shell INSTANCE` "
        "(grub-install on the disk, then update-grub)",
    ),
    _builtin(
        "grub-prompt",
        r"^\s*grub rescue>|^\s*grub>\s*$|error: (no such partition|unknown filesystem)\.",
        "GRUB could not find its files or the kernel: the boot stopped at its prompt",
        "reinstall GRUB and regenerate its configuration from `cloudrescue shell INSTANCE` "
        "(grub-install, update-grub or grub2-mkconfig); a root partition's new UUID is the "
        "usual cause",
    ),
    Signature(
        "builtin:out-of-memory",
        re.compile(r"Out of memory: Kill(ed)? process|oom-kill:"),
        "the guest ran out of memory and the kernel killed processes (sshd among them, maybe)",
        "low",
        advice="reboot the instance (`openstack server reboot INSTANCE`) and find what fills "
        "the memory, or resize it to a larger flavor",
    ),
)
"""Signatures no playbook cures: what to do is said by hand."""


def match(boot: Boot, signatures: Iterable[Signature]) -> list[Finding]:
    """A finding per signature that finds a line of the boot (its first ``MAX_MATCHES``
    lines as evidence), in the signatures' order; not yet merged nor ranked. A signature
    that ``stops_boot`` does not match a boot that went on (sshd started, a login prompt:
    ``Boot.went_on``): what it found did not stop that boot."""
    found: list[Finding] = []
    for signature in signatures:
        if signature.stops_boot and boot.went_on() is not None:
            continue
        evidence = [
            Evidence.console(line.number, line.text)
            for line in boot.lines
            if signature.pattern.search(line.text)
        ]
        if evidence:
            found.append(signature.finding(evidence[:MAX_MATCHES]))
    return found
