"""A ``Host`` that answers commands from a script, for what the test kernel cannot do."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudrescue.remote.base import CommandResult, FileStat


def answered(
    argv: Sequence[str], answer: Callable[[list[str]], tuple[int, str]], *, check: bool
) -> CommandResult:
    """What a scripted host's ``run`` returns: ``answer``'s exit code and output (``check``:
    raised as a real host's ``run`` raises a failure)."""
    code, out = answer(list(argv))
    result = CommandResult(tuple(argv), code, out, "" if code == 0 else "failed")
    return result.check() if check else result


@dataclass
class ScriptedHost:
    """Answers commands through ``answer``; device nodes exist once ``nodes`` lists them."""

    answer: Callable[[list[str]], tuple[int, str]]
    nodes: set[str] = field(default_factory=set)
    commands: list[list[str]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "rescue"

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.commands.append(list(argv))
        if argv[0] == "mknod":
            self.nodes.add(argv[1])
        return answered(argv, self.answer, check=check)

    def lstat(self, path: str) -> FileStat | None:
        return FileStat(stat.S_IFBLK | 0o600, 0, 0, 0, 0.0) if path in self.nodes else None

    def unlink(self, path: str) -> None:
        self.nodes.discard(path)

    # LVM and teardown only run commands and handle device nodes: no file access.
    def _no_files(self, *args: object, **kwargs: object) -> Any:
        raise NotImplementedError("the scripted host has no files")

    readlink = listdir = read_file = write_file = fsync = _no_files
    rename = mkdir = chmod = chown = symlink = _no_files


Tree = dict[str, str | None]
"""A filesystem's files by relative path (``None``: a directory); parents are implied."""


@dataclass
class Volume:
    """A filesystem of the scripted rescue's guest disk; btrfs has a tree per subvolume."""

    device: str
    fstype: str
    uuid: str
    files: Tree = field(default_factory=dict)
    subvolumes: dict[str, Tree] = field(default_factory=dict)

    def view(self, options: Sequence[str]) -> Tree:
        """What a mount with ``options`` shows: a subvolume, or btrfs's top level."""
        if self.fstype != "btrfs":
            return self.files
        for option in options:
            if option.startswith("subvol="):
                return self.subvolumes.get(option.removeprefix("subvol="), {})
        top: Tree = {}
        for name, tree in self.subvolumes.items():
            top[name] = None
            top.update({f"{name}/{path}": value for path, value in tree.items()})
        return top


@dataclass
class ScriptedRescue:
    """A rescue system (its own disk ``/dev/vda``) with the instance's disk ``/dev/vdb``.

    It answers the disk tools the way util-linux, btrfs-progs and the kernel would, keeps a
    mount table, and serves the files each mount shows, so a whole ``DiskSession`` (discover,
    probe, mount, unmount) runs on it. ``refuse`` makes ``mount`` fail for the option given
    (as a kernel that does not know it). Every command run is in ``commands``.
    """

    volumes: list[Volume]
    refuse: set[str] = field(default_factory=set)
    commands: list[list[str]] = field(default_factory=list)
    mounts: dict[str, tuple[Volume, list[str]]] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/", "/mnt", "/tmp"})
    temp_dirs: int = 0

    @property
    def description(self) -> str:
        return "rescue"

    def mount_argvs(self) -> list[list[str]]:
        """Every ``mount`` of a device that was run (binds aside), in order."""
        return [argv for argv in self.commands if argv[0] == "mount" and "-t" in argv]

    def _volume(self, device: str) -> Volume:
        return next(volume for volume in self.volumes if volume.device == device)

    def _lsblk(self) -> str:
        def node(name: str, kind: str, majmin: str, **facts: object) -> dict[str, object]:
            return {
                "name": name, "kname": name, "path": f"/dev/{name}", "type": kind,
                "size": 10737418240, "fstype": None, "label": None, "uuid": None,
                "partuuid": None, "partlabel": None, "serial": None, "mountpoints": [None],
                "ro": False, "maj:min": majmin, **facts,
            }  # fmt: skip

        rescue = node("vda", "disk", "252:0")
        rescue["children"] = [node("vda1", "part", "252:1", fstype="ext4", mountpoints=["/"])]
        guest = node("vdb", "disk", "252:16")
        guest["children"] = [  # the i-th volume is /dev/vdb{i + 1}
            node(f"vdb{i + 1}", "part", f"252:{17 + i}", fstype=v.fstype, uuid=v.uuid)
            for i, v in enumerate(self.volumes)
        ]
        return json.dumps({"blockdevices": [rescue, guest]})

    def _mountinfo(self) -> str:
        lines = ["1 0 252:1 / / rw - ext4 /dev/vda1 rw"]
        for number, (target, (volume, _)) in enumerate(self.mounts.items(), start=2):
            fs = f"{volume.fstype} {volume.device}"
            lines.append(f"{number} 1 0:{number} / {target} rw - {fs} rw")
        return "\n".join(lines) + "\n"

    def _mount(self, argv: list[str]) -> tuple[int, str]:
        options = argv[argv.index("-o") + 1].split(",") if "-o" in argv else []
        if set(options) & self.refuse:
            return 32, ""
        self.mounts[argv[-1]] = (self._volume(argv[-2]), options)
        return 0, ""

    def answer(self, argv: list[str]) -> tuple[int, str]:
        match argv:
            case ["lsblk", *_]:
                return 0, self._lsblk()
            case ["cat", "/proc/self/mountinfo"]:
                return 0, self._mountinfo()
            case ["cat", "/proc/swaps"]:
                return 0, "Filename Type Size Used Priority\n"
            case ["stat", "-c", _, "--", *paths]:
                numbers = {"vdb": "fc|10", **{f"vdb{i + 1}": f"fc|{17 + i:x}" for i in range(9)}}
                return 0, "".join(
                    f"{path}|block special file|{numbers[path.removeprefix('/dev/')]}\n"
                    for path in paths
                )
            case ["mktemp", "-d", *_]:
                self.temp_dirs += 1
                path = f"/tmp/cloudrescue-probe.{self.temp_dirs}"
                self.dirs.add(path)
                return 0, f"{path}\n"
            case ["mount", "-t", *_]:
                return self._mount(argv)
            case ["umount", *_, "--", target]:
                return (0, "") if self.mounts.pop(target, None) else (32, "not mounted")
            case ["rmdir", "--", path]:
                self.dirs.discard(path)
                return 0, ""
            case ["realpath", "-e", "--", path]:
                return 0, f"{path}\n"
            case ["btrfs", "subvolume", "list", top]:
                volume, _ = self.mounts[top]
                return 0, "".join(
                    f"ID {256 + i} gen 9 top level 5 path {name}\n"
                    for i, name in enumerate(volume.subvolumes)
                )
            case ["losetup" | "sync" | "dmesg", *_]:
                return 0, ""
        return 127, ""

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.commands.append(list(argv))
        return answered(argv, self.answer, check=check)

    def _find(self, path: str) -> tuple[Tree, str] | None:
        """The tree a path is on (the deepest mount above it) and its path in that tree."""
        for target in sorted(self.mounts, key=len, reverse=True):
            if path == target or path.startswith(f"{target}/"):
                volume, options = self.mounts[target]
                return volume.view(options), path[len(target) + 1 :]
        return None

    def lstat(self, path: str) -> FileStat | None:
        found = self._find(path)
        if found is None:
            return FileStat(stat.S_IFDIR | 0o755, 0, 0, 0, 0.0) if path in self.dirs else None
        tree, relative = found
        text = tree.get(relative)
        if relative and text is not None:
            return FileStat(stat.S_IFREG | 0o644, 0, 0, len(text.encode()), 0.0)
        if not relative or relative in tree or any(p.startswith(f"{relative}/") for p in tree):
            return FileStat(stat.S_IFDIR | 0o755, 0, 0, 0, 0.0)
        return None

    def read_file(self, path: str) -> bytes:
        found = self._find(path)
        text = found[0].get(found[1]) if found else None
        if text is None:
            raise FileNotFoundError(path)
        return text.encode()

    def listdir(self, path: str) -> list[str]:
        found = self._find(path)
        if found is None:
            return []
        tree, relative = found
        prefix = f"{relative}/" if relative else ""
        return sorted({p[len(prefix) :].split("/")[0] for p in tree if p.startswith(prefix)})

    def mkdir(self, path: str, mode: int) -> None:
        self.dirs.add(path)

    def _no_files(self, *args: object, **kwargs: object) -> Any:
        raise NotImplementedError("the scripted rescue only reads the guest")

    readlink = write_file = fsync = rename = chmod = chown = unlink = symlink = _no_files
