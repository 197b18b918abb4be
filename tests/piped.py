"""The CLI as a script sees it: stdin empty, stdout and stderr pipes, in this process."""

from __future__ import annotations

import io

import pytest

from cloudrescue.cli import main
from cloudrescue.cli.environment import Environment


def piped() -> tuple[Environment, io.StringIO, io.StringIO]:
    """An environment whose stdin is empty and whose stdout and stderr are pipes."""
    out, err = io.StringIO(), io.StringIO()
    return Environment(stdin=io.StringIO(), stdout=out, stderr=err), out, err


def run_main(*argv: str) -> tuple[int, str, str]:
    """``cloudrescue ARGV`` in this process, piped (``main`` always exits): the exit status,
    stdout and stderr."""
    env, out, err = piped()
    with pytest.raises(SystemExit) as done:
        main(list(argv), env)
    return int(done.value.code or 0), out.getvalue(), err.getvalue()
