"""The rescue side of ``cloudrescue shell``: the guest's shell in a chroot that cannot reach
the rescue system, run inside tmux when the rescue has it.

The shell is the guest's own (``/bin/bash`` or ``/bin/sh``), so its profile scripts and every
program the operator starts are the guest's, possibly planted. It starts in the sandbox of
``cloudrescue.fixes.sandbox`` (new mount, PID, IPC and UTS namespaces; the guest's mounts made
nodev/nosuid; its own /proc, a small /dev with only the guest's disks, /run, a read-only /sys)
plus what a repair shell needs: a new devpts instance, /dev/shm, /tmp as tmpfs, the rescue's
resolv.conf (so package tools resolve names: the network namespace is the rescue's), and the
guest's /etc/hostname as the UTS hostname. It stays uid 0 with the capabilities that act on
files only (``SHELL_CAPABILITIES``: chown, override permissions, kill within its PID
namespace...), never those that act on the machine (mount, raw I/O, modules, ptrace, chroot,
network administration), and ``/proc/sys``, ``/proc/sysrq-trigger`` & co. are read-only: it
can repair the guest's tree and nothing of the rescue's. The chroot's mounts live in its own
mount namespace: they vanish, in reverse, with its last process.

``--no-chroot`` runs the rescue's own shell in ``/mnt`` instead (the rescue's tools only).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

from cloudrescue.errors import InvalidInputError
from cloudrescue.fixes.sandbox import SANDBOX_SETUP, SETPRIV
from cloudrescue.remote.base import Host

STAGE_ROOT = "/run/cloudrescue-shell"
TMUX_SOCKET = "cloudrescue"
SHELL_CAPABILITIES = (
    "chown,dac_override,dac_read_search,fowner,fsetid,kill,setgid,setuid,setfcap,"
    "net_bind_service,linux_immutable,audit_write,sys_resource"
)
READ_ONLY_PROC = "sys sysrq-trigger irq bus fs"
SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOGIN_SHELL = (
    "cd ~ 2>/dev/null || cd /; if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"
)
# The extras of a repair shell, after the sandbox's own setup (``$root`` is the guest's root,
# ``$CLOUDRESCUE_STAGE`` the stage directory on the rescue, with the command file, if any).
SHELL_SETUP = rf"""
for dir in tmp etc; do
    if [ -L "$root/$dir" ]; then fail "the guest's /$dir is a symlink"; fi
done
mkdir -p "$root/dev/pts" "$root/dev/shm" || fail "cannot make /dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec cloudrescue-pts \
    "$root/dev/pts" || fail "no /dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
for fd in 0:stdin 1:stdout 2:stderr; do
    ln -s "/proc/self/fd/${{fd%%:*}}" "$root/dev/${{fd#*:}}"
done
mount -t tmpfs -o mode=1777,nosuid,nodev cloudrescue-shm "$root/dev/shm" || fail "no /dev/shm"
if [ -d "$root/tmp" ]; then
    mount -t tmpfs -o mode=1777,nosuid,nodev cloudrescue-tmp "$root/tmp" || fail "no /tmp"
fi
for entry in {READ_ONLY_PROC}; do
    [ -e "$root/proc/$entry" ] || continue
    mount --bind -- "$root/proc/$entry" "$root/proc/$entry" &&
        mount -o remount,bind,ro -- "$root/proc/$entry" || fail "cannot make /proc/$entry read-only"
done
if [ -d "$root/run" ]; then
    mkdir -p "$root/run/cloudrescue"
    if [ -f "$CLOUDRESCUE_STAGE/command" ]; then
        cp -- "$CLOUDRESCUE_STAGE/command" "$root/run/cloudrescue/command"
    fi
    conf="$root/etc/resolv.conf"
    if [ -f /etc/resolv.conf ] && cat /etc/resolv.conf > "$root/run/cloudrescue/resolv.conf"; then
        if [ -L "$conf" ]; then  # e.g. ../run/systemd/resolve/stub-resolv.conf: our own /run
            target=$(readlink -- "$conf")
            case $target in
                /run/*|../run/*) target=/run/${{target#*/run/}} ;;
                *) target= ;;
            esac
            case $target in *..*|*//*) target= ;; esac
            if [ -n "$target" ] && mkdir -p -- "$root${{target%/*}}"; then
                cp -- "$root/run/cloudrescue/resolv.conf" "$root$target"
            fi
        elif [ -f "$conf" ]; then
            mount --bind -- "$root/run/cloudrescue/resolv.conf" "$conf" &&
                mount -o remount,bind,ro -- "$conf"
        fi
    fi
fi
if [ -f "$root/etc/hostname" ] && [ ! -L "$root/etc/hostname" ]; then
    name=$(head -c 64 -- "$root/etc/hostname" | tr -cd 'A-Za-z0-9.-')
    if [ -n "$name" ]; then printf %s "$name" > /proc/sys/kernel/hostname; fi
fi
exec env -i TERM="${{TERM:-vt100}}" HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 \
    PATH={SHELL_PATH} chroot -- "$root" {SETPRIV} --no-new-privs \
    --bounding-set -all,+{SHELL_CAPABILITIES.replace(",", ",+")} --inh-caps -all \
    --ambient-caps -all -- "$@"
"""
SHELL_SANDBOX = SANDBOX_SETUP + SHELL_SETUP
UNSHARE = "unshare --mount --pid --fork --kill-child --ipc --uts --"
TMUX_CONF = """\
set -g prefix None
unbind-key C-b
set -g status off
set -g escape-time 0
set -g default-terminal screen
set -g history-limit 10000
set -g remain-on-exit off
set -g exit-empty on
set -g set-titles off
set -g allow-rename off
"""
RUN_ID = re.compile(r"^[0-9a-f]{6,32}$")

Program = Literal["login", "command", "stdin"]


@dataclass(frozen=True)
class ShellStage:
    """The files of one shell on the rescue system (``/run/cloudrescue-shell/NAME``)."""

    name: str
    root: str
    chroot: bool

    @property
    def directory(self) -> str:
        return f"{STAGE_ROOT}/{self.name}"

    @property
    def status_file(self) -> str:
        """Where the start script writes the shell's exit status."""
        return f"{self.directory}/status"

    def tmux(self, *args: str) -> str:
        """A tmux command on cloudrescue's own tmux server (its own socket and settings)."""
        return shlex.join(["tmux", "-L", TMUX_SOCKET, "-f", f"{self.directory}/tmux.conf", *args])

    def start_command(self) -> str:
        """Run the start script (what a tmux session or a plain channel runs)."""
        return shlex.join(["sh", f"{self.directory}/start"])

    def attach_command(self, multiplexed: bool) -> str:
        """What the terminal channel runs: attach to (or create) the tmux session, or just
        start the shell when the rescue has no tmux."""
        if not multiplexed:
            return self.start_command()
        return self.tmux("new-session", "-A", "-s", self.name, self.start_command())


def stage_name(run_id: str) -> str:
    """The stage (and tmux session) name of a run; refuses a run id that is not ours."""
    if not RUN_ID.match(run_id):
        raise InvalidInputError(f"not a cloudrescue run id: {run_id!r}")
    return f"cloudrescue-{run_id}"


def _program_argv(stage: ShellStage, program: Program) -> list[str]:
    if not stage.chroot:  # the rescue's own shell, in the guest's root
        enter = f"cd {shlex.quote(stage.root)} && exec"
        return {
            "login": ["sh", "-c", f"{enter} ${{SHELL:-/bin/sh}} -l"],
            "command": ["sh", "-c", f'{enter} sh "$0"', f"{stage.directory}/command"],
            "stdin": ["sh", "-c", f"{enter} sh -s"],
        }[program]
    sandboxed = {
        "login": ["/bin/sh", "-c", LOGIN_SHELL],
        "command": ["/bin/sh", "/run/cloudrescue/command"],
        "stdin": ["/bin/sh", "-s"],
    }[program]
    return [*UNSHARE.split(), "sh", f"{stage.directory}/sandbox", stage.root, *sandboxed]


def start_script(stage: ShellStage, program: Program) -> str:
    """The script a session runs: the shell, then its exit status into ``status_file``."""
    return (
        "#!/bin/sh\n"
        f"CLOUDRESCUE_STAGE={shlex.quote(stage.directory)}; export CLOUDRESCUE_STAGE\n"
        f"rm -f {shlex.quote(stage.status_file)}\n"
        f"{shlex.join(_program_argv(stage, program))}\n"
        "status=$?\n"
        f"echo $status > {shlex.quote(stage.status_file)}.new && "
        f"mv {shlex.quote(stage.status_file)}.new {shlex.quote(stage.status_file)}\n"
        "exit $status\n"
    )


def prepare(host: Host, stage: ShellStage, program: Program, command: str | None = None) -> bool:
    """Write the stage's files on the rescue (SFTP, mode 0700 directory); whether the rescue
    has tmux (then interactive shells run in it)."""
    for directory in (STAGE_ROOT, stage.directory):
        if host.lstat(directory) is None:
            host.mkdir(directory, 0o700)
    files = {
        "start": start_script(stage, program),
        "sandbox": SHELL_SANDBOX,
        "tmux.conf": TMUX_CONF,
    }
    if command is not None:
        files["command"] = command if command.endswith("\n") else f"{command}\n"
    for name, text in files.items():
        host.write_file(f"{stage.directory}/{name}", text.encode(), mode=0o600)
    return host.run(["sh", "-c", "command -v tmux"], check=False).ok


def session_alive(host: Host, stage: ShellStage) -> bool:
    """Whether the stage's tmux session still runs (a shell to reattach to)."""
    argv = shlex.split(stage.tmux("has-session", "-t", stage.name))
    return host.run(argv, check=False).ok


def exit_status(host: Host, stage: ShellStage) -> int | None:
    """The shell's exit status, once it has ended (``None`` while it runs or when unknown)."""
    if host.lstat(stage.status_file) is None:
        return None
    text = host.read_file(stage.status_file).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def finish(host: Host, stage: ShellStage) -> None:
    """End the stage's tmux session (its shell is killed) and remove the stage's files."""
    argv = shlex.split(stage.tmux("kill-session", "-t", stage.name))
    host.run(argv, check=False)
    host.run(["rm", "-rf", "--", stage.directory], check=False)
