"""Global options where an OpenStack user puts them (issue 9): before or after the command."""

from __future__ import annotations

import json

import pytest

from cloudrescue.cli.options import hoist_global_options
from cloudrescue.errors import InvalidInputError
from tests.piped import run_main


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        (["status", "--os-cloud", "ovh"], ["--os-cloud", "ovh", "status"]),
        (["status", "--os-cloud=ovh", "-f", "json"], ["--os-cloud=ovh", "status", "-f", "json"]),
        (
            ["fix-ssh-keys", "web-1", "--os-region-name", "GRA11", "-vv", "--yes"],
            ["--os-region-name", "GRA11", "-vv", "fix-ssh-keys", "web-1", "--yes"],
        ),
        (
            ["console", "log", "web-1", "-q", "--debug"],
            ["-q", "--debug", "console", "log", "web-1"],
        ),
        (["-v", "status", "--insecure"], ["-v", "--insecure", "status"]),
        (["lab", "ssh", "web-1", "--", "ls", "-v"], ["lab", "ssh", "web-1", "--", "ls", "-v"]),
        (["console", "log", "web-1", "-n", "5"], ["console", "log", "web-1", "-n", "5"]),
    ],
)
def test_global_options_move_in_front(argv: list[str], hoisted: list[str]) -> None:
    assert hoist_global_options(argv) == hoisted


@pytest.mark.parametrize("argv", [["status", "--os-cloud"], ["--os-region-name"]])
def test_a_global_option_without_its_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(InvalidInputError, match=f"Option '{argv[-1]}' requires an argument"):
        hoist_global_options(argv)




def test_options_after_the_command_are_taken() -> None:
    argv = ("playbooks", "list", "-f", "json", "-c", "name", "--os-cloud", "x", "-q")
    code, out, err = run_main(*argv)
    assert (code, err) == (0, "")
    assert {"name": "fix-ssh-keys"} in json.loads(out)


def test_an_empty_cloud_name_is_refused_wherever_it_is() -> None:
    code, out, err = run_main("console", "log", "web-1", "--os-cloud", "")
    assert (code, out) == (2, "")
    assert err.startswith("cloudrescue: error: --os-cloud (or OS_CLOUD) is empty")
