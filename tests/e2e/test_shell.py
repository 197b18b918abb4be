"""`cloudrescue shell` end to end, through a real PTY (pexpect) on a lab instance.

The shell's prompt comes from the guest's chroot (a hostname only its disk has), a key is put
back by hand and the instance, unrescued, lets its user in through its own sshd (host key
pinned); the window size follows a resize, Ctrl-C reaches the remote program, a cut SSH
connection is reattached to the same shell with the local terminal left as it was; a kept
shell is reattached by a second `cloudrescue shell` and ended by `unrescue`; scripts get
their exit status and the changed files.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.lab.labkit import key_login

from .conftest import CLOUDRESCUE, E2ELab

pytestmark = pytest.mark.lab

GUEST_HOSTNAME = "only-on-its-disk"
PROMPT = rf"root@{GUEST_HOSTNAME}:[^\r\n]*# "
ESCAPE = "\x1d"


@pytest.fixture(scope="module")
def instance(lab: E2ELab) -> dict[str, Any]:
    """An instance whose disk alone names it GUEST_HOSTNAME (its rescue cannot know it)."""
    view = lab.add()
    lab.admin.write_files(
        view["name"], [{"path": "/etc/hostname", "content": f"{GUEST_HOSTNAME}\n"}]
    )
    return view


def spawn(lab: E2ELab, tmp_path: Path, *args: str) -> pexpect.spawn:
    """`cloudrescue shell ARGS` on a PTY of 30x100, with the terminal's settings saved before
    (``stty.before``) and after (``stty.after``) and the exit status printed as ``RC=N``."""
    before, after = tmp_path / "stty.before", tmp_path / "stty.after"
    command = shlex.join([CLOUDRESCUE, "shell", *args])
    script = f"stty -a > {before}; {command}; echo RC=$?; stty -a > {after}"
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", script],
        env={**lab.env, "TERM": "xterm"},
        dimensions=(30, 100),
        timeout=180,
        encoding="utf-8",
        codec_errors="replace",
    )
    child.logfile_read = (tmp_path / "session.log").open("w")
    return child


def settings(path: Path) -> str:
    """``stty -a`` without the window size (which a resize changes)."""
    return re.sub(r"rows \d+; columns \d+;", "", path.read_text())


def finished(child: pexpect.spawn, tmp_path: Path) -> int:
    """The exit status; the terminal's settings are as they were before."""
    child.expect(r"RC=(\d+)", timeout=300)
    status = int(child.match.group(1))
    child.expect(pexpect.EOF)
    assert settings(tmp_path / "stty.before") == settings(tmp_path / "stty.after")
    return status


def in_rescue(lab: E2ELab, name: str) -> str:
    [view] = [i for i in lab.admin.instances() if i["name"] == name]
    return str(view["status"])


@pytest.fixture
def clean(lab: E2ELab, instance: dict[str, Any]) -> Iterator[None]:
    yield
    assert in_rescue(lab, instance["name"]) == "ACTIVE"
    assert "No rescue in flight" in lab.cli("status").stdout


def test_a_key_put_back_by_hand_through_a_real_terminal(
    lab: E2ELab, instance: dict[str, Any], tmp_path: Path, clean: None
) -> None:
    name, address = instance["name"], instance["address"]
    lab.break_(name, "lost-key")
    assert key_login(address, "debian", lab.key) == "key refused"
    public = Path(f"{lab.key}.pub").read_text().strip()
    child = spawn(lab, tmp_path, name, "--yes")
    child.expect(PROMPT)  # the guest's own shell, in the chroot of its disk
    child.sendline("stty size")
    child.expect("30 100")
    child.setwinsize(40, 120)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect("40 120")
    child.sendline("sleep 60")
    time.sleep(1)
    child.sendcontrol("c")  # to the remote sleep, not to cloudrescue
    child.expect(PROMPT, timeout=15)
    keys = "/home/debian/.ssh/authorized_keys"
    child.sendline(
        f"echo {shlex.quote(public)} > {keys}; chown debian:debian {keys}; chmod 600 {keys}"
    )
    child.expect(PROMPT)
    child.sendline("MARK=still-here; echo marked")
    child.expect("marked")
    lab.admin.call("POST", f"/instances/{name}/cut-ssh")  # the connection drops
    child.expect("reattached to the shell")
    child.sendline("echo mark-$MARK")
    child.expect("mark-still-here")  # the same shell, from tmux
    child.sendline("exit 3")
    child.expect(rf"unrescue {name} now\? \[Y/n\]")
    child.sendline("y")
    assert finished(child, tmp_path) == 3  # the shell's own exit status
    log = (tmp_path / "session.log").read_text()
    assert "changed  /home/debian/.ssh/authorized_keys" in log
    assert key_login(address, "debian", lab.key) == "ok"  # through the instance's own sshd


def test_a_kept_shell_is_reattached_then_ended_by_unrescue(
    lab: E2ELab, instance: dict[str, Any], tmp_path: Path, clean: None
) -> None:
    name = instance["name"]
    child = spawn(lab, tmp_path, name, "--yes")
    child.expect(PROMPT)
    child.sendline("cd /etc; MARK=kept; echo marked")
    child.expect("marked")
    child.send(f"{ESCAPE}k")  # leave, keep the instance (and the shell) in rescue
    assert finished(child, tmp_path) == 0
    assert in_rescue(lab, name) == "RESCUE"
    status = json.loads(lab.cli("status", "-f", "json").stdout)
    assert [(row["state"], row["command"]) for row in status] == [("held", "shell")]

    again = spawn(lab, tmp_path, name, "--yes")
    again.expect("reattaching to the shell")
    again.sendline("echo mark-$MARK-$(pwd)")
    again.expect("mark-kept-/etc")
    again.send(f"{ESCAPE}k")
    assert finished(again, tmp_path) == 0

    ended = lab.cli("unrescue", name, "--yes")
    assert ended.returncode == 0, ended.stderr
    assert "ended the shell of run" in ended.stderr


def test_scripts_get_their_exit_status_and_the_changed_files(
    lab: E2ELab, instance: dict[str, Any], clean: None
) -> None:
    name = instance["name"]
    command = lab.cli(
        "shell", name, "--yes", "--keep-rescued", "--command", "cat /etc/hostname; exit 4"
    )  # fmt: skip
    assert command.returncode == 4, command.stderr
    assert command.stdout.startswith(GUEST_HOSTNAME)
    assert in_rescue(lab, name) == "RESCUE"  # kept: the script below logs in to it again

    script = "echo made > /etc/made-by-script\nrm /etc/motd\nchmod 600 /etc/issue\n"
    scripted = lab.cli("shell", name, "--yes", "-f", "json", stdin=script)
    assert scripted.returncode == 0, scripted.stderr
    report = json.loads(scripted.stdout)
    assert report["exit_status"] == 0 and not report["kept_in_rescue"]
    changes = {(change["change"], change["path"]) for change in report["changes"]}
    assert changes == {
        ("created", "/etc/made-by-script"),
        ("removed", "/etc/motd"),
        ("changed", "/etc/issue"),
    }

    read_only = lab.cli("shell", name, "--yes", "--read-only", "--command", "touch /etc/nope")
    assert read_only.returncode != 0
    assert "Read-only file system" in read_only.stderr


ESCAPES = r"""
for where in /proc/1/root/tmp /proc/self/root/../../tmp /../../tmp; do
    echo pwned > "$where/cr-escaped" 2>/dev/null
done
mkdir -p /tmp/jail && chroot /tmp/jail /bin/true 2>/dev/null && echo CHROOT-ALLOWED
mount -t tmpfs escape /mnt 2>/dev/null && echo MOUNT-ALLOWED
mknod /tmp/disk b 7 0 2>/dev/null && echo MKNOD-ALLOWED
[ -w /proc/sys/kernel/core_pattern ] && echo SYSCTL-ALLOWED  # never write it: it is the machine's
echo h > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ-ALLOWED
ip link add cr-escape type dummy 2>/dev/null && echo NETADMIN-ALLOWED
echo "pid1 $(cat /proc/1/comm)"
"""


def test_the_guest_s_programs_cannot_reach_the_rescue_system(
    lab: E2ELab, instance: dict[str, Any], clean: None
) -> None:
    """What the shell runs (here: attempts to get out) is the guest's; it stays in the guest."""
    name = instance["name"]
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    ran = lab.cli("shell", name, "--yes", "--keep-rescued", "--command", ESCAPES)
    assert ran.returncode == 0, ran.stderr
    assert "ALLOWED" not in ran.stdout, ran.stdout
    assert "pid1 sh\n" in ran.stdout  # its own PID namespace: the rescue's sshd is not there
    rescue_root = lab.system_root(instance["id"])  # the rescue system's root, as it sees it
    assert not (rescue_root / "tmp/cr-escaped").exists()
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern
    ended = lab.cli("unrescue", name, "--yes")
    assert ended.returncode == 0, ended.stderr
