"""LVM with device-mapper, which the test machines' kernel lacks: a scripted host stands in.

The commands and their JSON are those of lvm2 2.03 (see ``data/pvs.json``); the scripted
host answers like a rescue system whose own volume group has the instance's VG name.
"""

from __future__ import annotations

import json

from cloudrescue.disks.lvm import prepare_lvm
from cloudrescue.disks.teardown import Teardown

from .scripted import ScriptedHost

GUEST_PV = "/dev/vdb2"
RESCUE_PV = "/dev/vda2"


def pvs_json(pv: str, vg: str, vg_uuid: str) -> str:
    row = {
        "pv_name": pv,
        "vg_name": vg,
        "vg_uuid": vg_uuid,
        "pv_uuid": "p",
        "pe_start": "1048576",
        "vg_extent_size": "4194304",
    }
    return json.dumps({"report": [{"pv": [row]}]})


def lvs_json(vg: str, attr: str) -> str:
    rows = [
        {
            "vg_name": vg,
            "lv_name": name,
            "vg_uuid": "GUEST-VG",
            "lv_uuid": f"LV-{name}",
            "lv_size": str(size),
            "lv_attr": attr,
            "segtype": "linear",
            "seg_start_pe": "0",
            "seg_pe_ranges": f"{GUEST_PV}:{first}-{first + size // 4194304 - 1}",
        }
        for name, size, first in (("root", 8388608, 0), ("swap", 4194304, 2))
    ]
    return json.dumps({"report": [{"lv": rows}]})


def rescue_with_same_vg_name(activation_works: bool) -> ScriptedHost:
    host = ScriptedHost(lambda argv: (0, ""))

    def answer(argv: list[str]) -> tuple[int, str]:
        config = argv[argv.index("--config") + 1] if "--config" in argv else ""
        command = argv[0]
        if command == "lvm":
            return 0, "  LVM version: 2.03.16(2)\n  Driver version:   4.48.0\n"
        if command == "pvs":
            if RESCUE_PV in config:
                return 0, pvs_json(RESCUE_PV, "vg0", "RESCUE-VG")
            return 0, pvs_json(GUEST_PV, "vg0", "GUEST-VG")
        if command == "lvs":
            return 0, lvs_json("vg0", "-wi-------")
        if command == "vgchange" and argv[1] == "-ay":
            if not activation_works:
                return 5, ""
            host.nodes |= {"/dev/mapper/vg0--cloudrescue-root", "/dev/mapper/vg0--cloudrescue-swap"}
        if command == "losetup" and argv[1] == "-f":
            return 0, "/dev/loop9\n"
        return 0, ""

    host.answer = answer
    host.nodes.add("/dev/loop9")
    return host


def test_vg_name_clash_renames_activates_and_renames_back() -> None:
    host = rescue_with_same_vg_name(activation_works=True)
    teardown = Teardown(host)
    setup = prepare_lvm(host, teardown, [GUEST_PV], [RESCUE_PV])
    assert setup.device_mapper
    assert [(lv.lv_name, lv.device, lv.renamed_to) for lv in setup.devices] == [
        ("root", "/dev/mapper/vg0--cloudrescue-root", "vg0-cloudrescue"),
        ("swap", "/dev/mapper/vg0--cloudrescue-swap", "vg0-cloudrescue"),
    ]
    made = [argv[:3] for argv in host.commands if argv[0] in ("vgrename", "vgchange")]
    assert made == [
        ["vgrename", "GUEST-VG", "vg0-cloudrescue"],
        ["vgchange", "-ay", "vg0-cloudrescue"],
    ]
    # Every LVM command is restricted to the instance's PV.
    for argv in host.commands:
        if argv[0] in ("vgrename", "vgchange", "lvs"):
            assert GUEST_PV in argv[argv.index("--config") + 1]
            assert RESCUE_PV not in argv[argv.index("--config") + 1]
    host.commands.clear()
    report = teardown.undo_all()
    assert report.ok
    assert [argv[:4] for argv in host.commands] == [
        ["vgchange", "-an", "vg0-cloudrescue", "--config"],
        ["vgrename", "vg0-cloudrescue", "vg0", "--config"],
    ]
    assert teardown.undo_all().done == []  # idempotent


def test_failed_rename_back_is_reported_with_the_fix() -> None:
    host = rescue_with_same_vg_name(activation_works=True)
    teardown = Teardown(host)
    prepare_lvm(host, teardown, [GUEST_PV], [RESCUE_PV])
    host.answer = lambda argv: (5, "") if argv[0] == "vgrename" else (0, "")
    report = teardown.undo_all()
    assert not report.ok
    assert (
        "vgrename vg0-cloudrescue vg0" in report.failed[0] and "will not boot" in report.failed[0]
    )
    assert len(teardown.steps) == 1  # kept: a later unmount() tries again


def test_activation_failure_falls_back_to_loop_mapping() -> None:
    host = rescue_with_same_vg_name(activation_works=False)
    teardown = Teardown(host)
    setup = prepare_lvm(host, teardown, [GUEST_PV], [RESCUE_PV])
    assert {lv.mapping for lv in setup.devices} == {"loop"}
    attach = [argv for argv in host.commands if argv[0] == "losetup" and "--offset" in argv]
    assert attach[0] == [
        "losetup",
        "--offset",
        "1048576",
        "--sizelimit",
        "8388608",
        "/dev/loop9",
        GUEST_PV,
    ]
    assert attach[1][2] == str(1048576 + 2 * 4194304)
    host.commands.clear()
    teardown.undo_all()
    assert ["losetup", "-d", "/dev/loop9"] in host.commands
    assert host.commands[-1][:3] == ["vgrename", "vg0-cloudrescue", "vg0"]


def test_missing_loop_node_is_created_and_removed() -> None:
    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[0] == "lvm":
            return 0, "  LVM version: 2.03.16(2)\n"
        if argv[0] == "pvs":
            return 0, pvs_json(GUEST_PV, "vg0", "GUEST-VG")
        if argv[0] == "lvs":
            return 0, lvs_json("vg0", "-wi-XX----")
        if argv[:2] == ["losetup", "-f"]:
            return 0, "/dev/loop12\n"
        if argv == ["cat", "/sys/block/loop12/dev"]:
            return 0, "7:12\n"
        return 0, ""

    host = ScriptedHost(answer)
    teardown = Teardown(host)
    setup = prepare_lvm(host, teardown, [GUEST_PV], [])
    assert not setup.device_mapper
    assert ["mknod", "/dev/loop12", "b", "7", "12"] in host.commands
    assert not any(argv[0] in ("vgchange", "vgrename") for argv in host.commands)
    assert "/dev/loop12" in host.nodes
    teardown.undo_all()
    assert "/dev/loop12" not in host.nodes


def test_no_lvm_tools_is_reported_not_fatal() -> None:
    host = ScriptedHost(lambda argv: (127, ""))
    setup = prepare_lvm(host, Teardown(host), [GUEST_PV], [])
    assert setup.devices == [] and "no LVM tools" in setup.ignored[0][1]
