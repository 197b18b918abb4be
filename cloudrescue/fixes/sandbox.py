"""Running the guest's own programs (``sshd -t``, ``visudo``, ``nft -c``, ``update-grub``...)
without letting them act on the rescue system.

The guest's binaries may be planted by whoever compromised it. They run in a sandbox built on
the rescue with util-linux and the C library alone (``unshare``, ``mount``, ``findmnt``,
``chroot``, ``setpriv``, ``ldd``):

* new user, mount, PID, network, IPC and UTS namespaces: the guest program's root has no
  power over the rescue's own resources, no network, sees no other process;
* chrooted into the guest's mounted root with **no capability at all** (``setpriv`` empties
  the bounding, inheritable and ambient sets and sets no_new_privs, so set-id binaries gain
  nothing): it cannot chroot out, mount, unmount, trace or make device nodes. It stays uid 0,
  so the guest's root-owned files are its own (sshd reads its host keys, update-grub writes
  grub.cfg): what it can change is the guest's own tree, as it should;
* its own ``/proc`` (of the new PID namespace), a tmpfs ``/run``, a read-only ``sysfs``
  (``grub-probe`` finds a partition's disk through it; the sandbox's user namespace may write
  none of it; the rescue's own, every mount of it remounted read-only, where the kernel
  refuses a new one) and a small ``/dev`` (null, zero,
  full, random, urandom, tty, the guest's own disk devices and the disks they are on, which
  ``grub-probe`` reads, and their ``/dev/disk/by-uuid`` and ``by-partuuid`` links, without
  which ``grub-mkconfig`` names the root by the rescue's device name) are mounted over
  whatever the guest has there, chroot binds of the rescue's own included (in the sandbox's
  mount namespace only);
* the rescue's ``setpriv`` is bound (read-only) into that ``/dev`` with its C library and
  started through the rescue's own dynamic loader, so no guest code runs before the
  capabilities are gone; guest directories that are symlinks (``/dev -> /``) make the sandbox
  refuse to start;
* the guest's filesystems are remounted ``nodev,nosuid`` in that mount namespace first: a
  device node the guest's disk carries (``b 8 0``, mode 0666: the rescue's own disk) opens
  nothing, and only the null/zero/... nodes and the guest's own disks are usable;
* killed with all its children when cloudrescue kills it (``--kill-child``, PID namespace).

When the sandbox cannot be made on this rescue (no user namespaces, no setpriv), the program
is reported as not runnable (exit status 126) and each fix falls back to what it does without
the guest's tool.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import CommandResult, CommandTimeoutError

GUEST_PROGRAM_TIMEOUT = 300.0
SETUP_FAILED = 126
UNSHARE = ("unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
           "--net", "--ipc", "--uts", "--")  # fmt: skip
TOOLS = "/dev/.cloudrescue-sandbox"
DEVICE_NODES = "null zero full random urandom tty"
# Everything but the last step: the guest's mounts made nodev/nosuid, its /proc, /dev, /run,
# /sys, and the rescue's setpriv bound in. ``$root`` is the guest's root, ``"$@"`` the program.
SANDBOX_SETUP = f"""
fail() {{ echo "cloudrescue sandbox: $*" >&2; exit {SETUP_FAILED}; }}
root=$1; shift
for dir in proc dev run sys; do
    if [ -L "$root/$dir" ]; then fail "the guest's /$dir is a symlink"; fi
done
[ -d "$root/proc" ] && [ -d "$root/dev" ] || fail "the guest has no /proc or /dev directory"
setpriv=$(command -v setpriv) || fail "the rescue has no setpriv"
loader=$(ldd "$setpriv" | sed -n 's|^[[:space:]]*\\(/[^ ]*\\) (0x.*|\\1|p' | head -n 1)
libs=$(ldd "$setpriv" | sed -n 's|.* => \\(/[^ ]*\\) (0x.*|\\1|p')
[ -n "$loader" ] || fail "cannot find the rescue's dynamic loader"
mount --make-rprivate / || fail "no private mount namespace"
if mountpoint -q "$root"; then
    own_disks=true
else  # a plain directory (tests): made a mount of its own, with no disk of its own
    mount --bind -- "$root" "$root" || fail "cannot bind the guest's root"
    own_disks=false
fi
mounts=$(findmnt -R -n -r --nofsroot -o TARGET,SOURCE --mountpoint "$root") ||
    fail "cannot list the guest's mounts"
disks=
while read -r target source; do
    case $target in
        *\\\\*) fail "a mount point under the guest's root has an unusual name: $target" ;;
        "$root"/proc|"$root"/proc/*|"$root"/dev|"$root"/dev/*) continue ;;
        "$root"/sys|"$root"/sys/*|"$root"/run|"$root"/run/*) continue ;;
    esac
    mount -o remount,bind,nodev,nosuid -- "$target" || fail "cannot make $target nodev"
    case " $disks " in
        *" $source "*) ;;
        *) if $own_disks; then disks="$disks $source"; fi ;;
    esac
done <<EOF
$mounts
EOF
holders=  # the disks (and PVs) under them: grub-probe maps a partition through its disk
for node in $disks; do
    for holder in $(lsblk -nrspo NAME -- "$node" 2>/dev/null); do
        case " $disks $holders " in *" $holder "*) ;; *) holders="$holders $holder" ;; esac
    done
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc" || fail "cannot mount its /proc"
mount -t tmpfs -o mode=0755,size=16m,nosuid cloudrescue-dev "$root/dev" || fail "no /dev"
for node in {DEVICE_NODES} $disks $holders; do
    name=${{node#/dev/}}
    [ -b "/dev/$name" ] || [ -c "/dev/$name" ] || continue
    case $name in */*) mkdir -p -- "$root/dev/${{name%/*}}" ;; esac
    : > "$root/dev/$name" && mount --bind -- "/dev/$name" "$root/dev/$name" ||
        fail "cannot give it /dev/$name"
done
for node in $disks; do  # grub-mkconfig names the root by UUID only when its link exists
    blkid -p -o udev -- "$node" 2>/dev/null | while IFS== read -r key value; do
        case $key in
            ID_FS_UUID) link=by-uuid ;;
            ID_PART_ENTRY_UUID) link=by-partuuid ;;
            *) continue ;;
        esac
        case $value in ""|*[!0-9A-Za-z-]*) continue ;; esac
        mkdir -p "$root/dev/disk/$link" &&
            ln -sf -- "../../${{node#/dev/}}" "$root/dev/disk/$link/$value"
    done
done
ln -s /proc/self/fd "$root/dev/fd"
mkdir "$root{TOOLS}" || fail "cannot make {TOOLS}"
for file in "$setpriv" "$loader" $libs; do
    copy="$root{TOOLS}/${{file##*/}}"
    : > "$copy" && mount --bind -- "$file" "$copy" && mount -o remount,bind,ro -- "$copy" ||
        fail "cannot bind $file read-only"
done
if [ -d "$root/run" ]; then
    mount -t tmpfs -o mode=0755,nosuid,nodev cloudrescue-run "$root/run" || fail "no /run"
    mkdir -p "$root/run/sshd"
fi
if [ -d "$root/sys" ]; then
    if ! mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" 2>/dev/null; then
        # the kernel refuses a new sysfs where the rescue's has mounts over it: that one, ro
        mount --rbind -- /sys "$root/sys" || fail "no /sys"
        for target in $(findmnt -R -n -r -o TARGET --mountpoint "$root/sys"); do
            mount -o remount,bind,ro,nosuid,nodev,noexec -- "$target" ||
                fail "cannot make $target read-only"
        done
    fi
fi
"""
# Started through the rescue's loader and setpriv, chrooted, with no capability left.
SETPRIV = f'"{TOOLS}/${{loader##*/}}" --library-path "{TOOLS}" "{TOOLS}/setpriv"'
SANDBOX = f"""{SANDBOX_SETUP}
exec chroot -- "$root" {SETPRIV} \\
    --no-new-privs --bounding-set -all --inh-caps -all --ambient-caps -all -- "$@"
"""


def run_in_guest(
    files: GuestFS,
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    timeout: float = GUEST_PROGRAM_TIMEOUT,
) -> CommandResult:
    """Run the guest's own ``argv`` (guest paths) in the sandbox; never raises on failure
    (``CommandTimeoutError`` when it runs longer than ``timeout``: it is killed).

    Exit status 126 or 127 means the program, or the sandbox, cannot run here.
    """
    command = [*UNSHARE, "sh", "-c", SANDBOX, "sandbox", files.root, *argv]
    try:
        result = files.host.run(command, stdin=stdin, check=False, timeout=timeout)
    except FileNotFoundError as error:
        return CommandResult(tuple(argv), 127, "", f"unshare: {error}")
    except CommandTimeoutError:  # named by the guest's program, not the sandbox's script
        where = f"{files.host.description} (the guest's program, in the sandbox)"
        raise CommandTimeoutError(argv, timeout, where) from None
    return CommandResult(tuple(argv), result.exit_code, result.stdout, result.stderr)


def cannot_run(result: CommandResult) -> bool:
    """Whether a guest program failed to start at all (missing, wrong arch, no loader, no
    sandbox on this rescue)."""
    text = result.stderr.lower()
    return result.exit_code in (SETUP_FAILED, 127) or (
        result.exit_code != 0
        and ("exec format error" in text or "unshare failed" in text or "unshare: " in text)
    )
