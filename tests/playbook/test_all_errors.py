"""Validation reports every error of a playbook at once, each with its line, in line order,
and one error per mistake (nothing that only follows from another error)."""

from __future__ import annotations

import pytest

from cloudrescue.errors import ExitStatus, InvalidInputError
from cloudrescue.playbook.schema import load_file, load_text
from cloudrescue.playbook.source import PlaybookError, PlaybookProblem

from .expectations import SEVERAL, expected_errors, matches


def errors_of(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as raised:
        load_text(text, "test.yaml")
    return raised.value.lines()


def test_several_independent_errors_are_all_reported_in_line_order_once_each() -> None:
    with pytest.raises(PlaybookError) as raised:
        load_file(SEVERAL)
    error = raised.value
    want = expected_errors(SEVERAL)
    assert len(want) == 10
    assert matches(error.lines(), want), "\n".join(error.lines())
    lines = [problem.line for problem in error.errors]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    # Step 1 (a bad field), 3 (an unknown action), 4 (an unknown parameter), 5 (a bad when).
    fields = [problem.field for problem in error.errors]
    for field in ("steps[0].mode", "steps[2].action", "steps[3].owner", "steps[4].when"):
        assert fields.count(field) == 1, fields
    assert not any(f.startswith(("steps[2].path", "steps[0].path")) for f in fields), fields


def test_the_error_keeps_its_one_line_message_and_carries_them_all() -> None:
    with pytest.raises(PlaybookError) as raised:
        load_file(SEVERAL)
    error = raised.value
    assert isinstance(error, InvalidInputError) and error.exit_status == ExitStatus.USAGE
    first = error.errors[0]
    assert error.message == str(first) == error.lines()[0]
    assert (error.source, error.line, error.field) == (str(SEVERAL), first.line, first.field)
    assert "\n" not in error.message
    assert error.summary == f"{SEVERAL}: 10 errors"
    assert error.hint == (
        f"9 more errors in this playbook: `cloudrescue playbooks validate {SEVERAL}` "
        "lists them all"
    )


def test_one_error_renders_as_the_one_line_it_always_was() -> None:
    error = PlaybookError.one("a.yaml", 3, "name", "required field missing")
    line = "a.yaml:3: name: required field missing"
    assert error.message == error.summary == line
    assert error.hint is None
    assert error.errors == (PlaybookProblem("a.yaml", 3, "name", "required field missing"),)


def test_errors_are_sorted_by_line_keeping_the_order_found_on_one_line() -> None:
    error = PlaybookError([
        PlaybookProblem("a.yaml", 9, "steps[1]", "b"),
        PlaybookProblem("a.yaml", 2, "name", "a"),
        PlaybookProblem("a.yaml", 9, "steps[1].path", "c"),
    ])
    assert error.lines() == [
        "a.yaml:2: name: a", "a.yaml:9: steps[1]: b", "a.yaml:9: steps[1].path: c"
    ]


HEAD = "name: t\ndescription: T.\n"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param(
            "nme: t\ndescripton: T.\nsteps:\n  - {name: a, action: remove_file, path: /x}\n",
            ["test.yaml:1: nme: unknown field (known: ...", "test.yaml:2: descripton: unknown..."],
            id="misspelt-keys-explain-the-missing-ones",
        ),
        pytest.param(
            HEAD + "steps:\n  - nme: a\n    action: remove_file\n    pth: /x\n",
            ["test.yaml:4: steps[0].nme: unknown field...",
             "test.yaml:6: steps[0].pth: unknown field..."],
            id="misspelt-step-keys",
        ),
        pytest.param(
            HEAD + "steps:\n  - {name: a, action: remove_file}\n",
            ["test.yaml:4: steps[0].path: required field missing"],
            id="missing-without-misspelling",
        ),
        pytest.param(
            HEAD + "parameters:\n  n: {type: integer, description: N., flag: --n/--no-n}\n"
            "steps:\n  - {name: a, action: remove_file, path: '/{{ n }}'}\n"
            "  - {name: b, action: chmod, path: /x, mode: '{{ n }}'}\n"
            "  - name: c\n    action: remove_file\n    path: /y\n"
            "    when: {param_equals: {param: n, value: 1}}\n",
            ["test.yaml:4: parameters.n.type: unknown type 'integer'..."],
            id="a-bad-parameter-type-is-one-error-not-one-per-use",
        ),
        pytest.param(
            HEAD + "mount: rootfs\nchroot: true\nsteps:\n"
            "  - {name: a, action: write_file, path: /etc/motd, content: '{{ facts.root }}'}\n"
            "  - {name: b, action: run_chroot, argv: [ls], when: {file_exists: /x}}\n",
            ["test.yaml:3: mount: input should be 'root', 'none' or 'unmounted'"],
            id="a-bad-mount-is-one-error-not-one-per-step",
        ),
        pytest.param(
            HEAD + "parameters: [port]\nmessage: '{{ port }}'\n"
            "steps:\n  - {name: a, action: remove_file, path: '/{{ port }}'}\n",
            ["test.yaml:3: parameters: input should be a valid dictionary"],
            id="unreadable-parameters-are-one-error",
        ),
        pytest.param(
            HEAD + "parametrs: {u: {type: user, description: U.}}\nmessage: 'hi {{ u }}'\n"
            "chrot: true\nsteps:\n  - {name: a, action: run_chroot, argv: [id, '{{ u }}']}\n",
            ["test.yaml:3: parametrs: unknown field...", "test.yaml:5: chrot: unknown field..."],
            id="a-misspelt-optional-key-leaves-it-unknown-not-at-its-default",
        ),
        pytest.param(
            HEAD + "parameters:\n  p: {type: string, description: P., default: x}\n"
            "steps:\n  - name: a\n    action: remove_file\n    path: /x\n"
            "    when: {param_equals: {param: p, value: [1]}}\n",
            ["test.yaml:9: steps[0].when.param_equals.value: input should be a valid string, "
             "a valid integer or a valid boolean"],
            id="a-union-rejecting-a-value-is-one-error",
        ),
        pytest.param(
            HEAD + "parameters:\n  user: {type: user, description: U., default: root}\n"
            "steps:\n  - {name: a, action: remove_file, path: '/home/{{ usr }}'}\n",
            ["test.yaml:6: steps[0].path: unknown parameter 'usr' (parameters: user)"],
            id="a-misspelt-reference-does-not-make-the-parameter-unused",
        ),
        pytest.param(
            HEAD + "parameters:\n  user: {type: user, description: U., default: root}\n"
            "steps:\n  - {name: a, action: rm_rf, path: '/home/{{ user }}'}\n"
            "  - {name: b, action: remove_file, path: '/home/{{ user | lower }}'}\n",
            ["test.yaml:6: steps[0].action: unknown action 'rm_rf'...",
             "test.yaml:7: steps[1].path: '/home/{{ user | lower }}': only plain references..."],
            id="no-unused-guess-while-a-step-is-invalid",
        ),
        pytest.param(
            HEAD + "become: true\nparameters:\n  spare: {type: string, description: S.}\n"
            "steps:\n  - {name: a, action: remove_file, path: /x}\n",
            ["test.yaml:3: become: unknown field...",
             "test.yaml:5: parameters.spare: declared but no step uses it"],
            id="unused-beside-other-errors-once-every-step-is-valid",
        ),
        pytest.param(
            HEAD + "steps:\n  - name: a\n    action: remove_file\n    path: /x\n    path: y\n"
            "  - name: b\n    name: c\n    action: remove_file\n    path: /z\n",
            ["test.yaml:7: steps[0]: duplicate key 'path'",
             "test.yaml:7: steps[0].path: expected an absolute guest path, got 'y'",
             "test.yaml:9: steps[1]: duplicate key 'name'"],
            id="every-duplicate-key-and-the-value-kept",
        ),
        pytest.param(
            HEAD + "steps:\n  - just text\n  - {name: b, action: chown, path: x, owner: 'a b'}\n",
            ["test.yaml:4: steps[0]: a step is a mapping: name, action, the action's parameters",
             "test.yaml:5: steps[1].path: expected an absolute guest path, got 'x'",
             "test.yaml:5: steps[1].owner: 'a b' is not a valid user or group name"],
            id="several-on-one-line-in-the-order-found",
        ),
    ],
)
def test_no_error_cascades(text: str, want: list[str]) -> None:
    got = errors_of(text)
    assert matches(got, want), "\n".join(got)
