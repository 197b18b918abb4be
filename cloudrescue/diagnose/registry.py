"""The names a playbook's ``symptoms:`` may use besides console patterns: observations (what
``cloudrescue diagnose`` sees without rescue) and deep checks (read-only checks on the rescued
guest's disk, for ``diagnose --deep``).

Plain data: the playbook schema validates names against these tables, and the docs list them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    """Something a diagnosis observes without rescue, made when it holds on this instance.

    ``reachability``: it says sshd cannot be reached, not why; when a finding of high (or
    certain) confidence stands on other evidence, the observation becomes that finding's
    supporting evidence instead of suggesting a playbook of its own (a boot stopped in
    emergency mode explains a silent sshd).
    """

    name: str
    description: str
    reachability: bool = False


OBSERVATIONS: dict[str, Observation] = {
    item.name: item
    for item in (
        Observation(
            "ssh-refused",
            "every sshd port refuses TCP connections: the address answers, nothing listens",
            reachability=True,
        ),
        Observation(
            "ssh-no-answer",
            "every sshd port stays silent (the connection times out, or the host is "
            "unreachable): packets are dropped, or nothing is at the address",
            reachability=True,
        ),
        Observation(
            "ssh-keys-refused",
            "sshd answers, offers publickey, and would accept none of the public keys offered "
            "for the user (asked without logging in)",
        ),
        Observation(
            "address-mismatch",
            "the console's network report (cloud-init's ci-info table) gives the instance none "
            "of the fixed addresses the cloud assigned it",
        ),
        Observation(
            "no-address",
            "the console's network report shows the instance's interfaces down or without an "
            "address",
        ),
    )
}
"""Observations by name."""

DEEP_CHECKS: dict[str, str] = {
    "sshd-config": "the guest's own `sshd -t` against its configuration (sandboxed)",
    "authorized-keys": "the cloud user's authorized_keys, and the modes and owners StrictModes "
    "rejects",
    "firewall": "persisted firewall rules that drop the sshd port",
    "fstab": "fstab entries whose device is missing",
    "disk-space": "free space and inodes of the guest's filesystems",
    "network": "the network configuration against the port's fixed IP and MAC",
    "sudoers": "`visudo -c` on the sudoers files, their modes and owners",
    "cloud-init": "cloud-init's state on the disk: disabled (`/etc/cloud/cloud-init.disabled`), "
    "another instance's data kept, errors of its last run (`result.json`, `status.json`, its log)",
    "root-password": "root's and the cloud user's passwords in `/etc/shadow`: none, expired, or "
    "the account expired (a locked one is a cloud image's normal state); never the hash",
    "selinux": "the SELinux mode, and a relabel pending or failing",
    "filesystem": "the root filesystem's consistency (read-only fsck)",
}
"""Deep checks by name: what each looks at on the guest's disk."""
