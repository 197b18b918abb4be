"""The playbook reference (``docs/playbooks.md``), generated from the declarations.

Run ``python -m cloudrescue.playbook.docs > docs/playbooks.md`` after changing a playbook, an
action, a parameter type, a fact or the schema; a test fails when the file is out of date.
``playbooks show`` prints the same section for one playbook.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cloudrescue.diagnose.registry import DEEP_CHECKS, OBSERVATIONS
from cloudrescue.phase import MOUNT_MODES
from cloudrescue.playbook import SHORT_COMMANDS, catalog
from cloudrescue.playbook.actions import ACTIONS
from cloudrescue.playbook.actions.base import RUNS_ON_MEANING, AnyAction
from cloudrescue.playbook.conditions import CONDITIONS
from cloudrescue.playbook.facts import FACTS
from cloudrescue.playbook.fields import MODE, kind_of
from cloudrescue.playbook.paramtypes import PARAM_TYPES, key_files
from cloudrescue.playbook.schema import ParameterSpec, Playbook, PlaybookHead, StepHead
from cloudrescue.playbook.symptoms import ConsoleSymptom, ObservedSymptom, Symptoms

HEADER = """\
# Playbooks reference

<!-- Generated from the declarations by `python -m cloudrescue.playbook.docs > \
docs/playbooks.md`; tests/playbook/test_docs.py fails when this file is out of date. -->

A playbook is a YAML file: typed parameters, a mount phase and steps, each step one of the
actions below. Shipped playbooks live in `playbooks/`; run one, or your own file, with
`cloudrescue run INSTANCE NAME|FILE [--param NAME=VALUE ...] [--dry-run]`. `--dry-run` is
check mode: it mounts the disk read-only and prints the diffs and the commands that would
run. A real run reports each step `changed`, `ok` or `skipped`; if a step fails, the files
changed so far are restored from their backups (`<name>.cloudrescue-<time>`).
Check a file with `cloudrescue playbooks validate FILE`.

Values are referenced as `{{ name }}` (a parameter) or `{{ facts.name }}` (a fact): plain
substitution, no filters, no expressions, no code. A string that is exactly one reference
keeps the value's type. Secrets only go to `stdin` and secret fields, never to command lines,
files or messages.
"""


SYMPTOMS_INTRO = """\
`cloudrescue diagnose INSTANCE` reads the symptoms of the catalog (the shipped playbooks, and
the files given with `--playbook FILE`): each console pattern is searched (Python `re.search`)
in every line of the console log's last boot, each observation is what diagnose sees without
rescue (the probes of sshd's ports, the console against the API). A match is a finding of the
playbook, with the playbook's cause, confidence and the line as evidence; findings are ranked
by confidence (`high`, `medium`, `low`), then by the strength of their evidence. A pattern may
not match an empty line. The console's last boot starts at the kernel's (or the firmware's)
first line; a symptom that `stops_boot` is not matched in a boot that went on to sshd.

`diagnose --deep` rescues once and runs the deep checks on the disk mounted read-only:
`root-password` and `cloud-init` read the guest's files (`/etc/shadow`, cloud-init's state),
the others are the declaring playbook run in check mode (what it would change is the
evidence; a playbook that needs a parameter without a default is skipped). A check that
cannot run is a finding of low confidence and the others run still.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headings: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "---|" * len(headings),
        *("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def _model_keys(model: type[BaseModel]) -> str:
    rows = [
        [f"`{info.alias or name}`", "yes" if info.is_required() else "no", info.description or ""]
        for name, info in model.model_fields.items()
    ]
    return _table(["key", "required", "meaning"], rows)


def _field_default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value: Any = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if kind_of(info.metadata) is MODE and isinstance(value, int):
        return f"`'{value:04o}'`"
    return f"`{_flow(value).removesuffix('...').strip()}`"


def _field_kind(info: FieldInfo) -> str:
    kind = kind_of(info.metadata)
    return kind.name if kind is not None else str(info.annotation)


def parameter_default(spec: ParameterSpec) -> str:
    """A parameter's default in words (help and docs)."""
    if spec.required:
        return "required" if spec.type != "secret" else "asked for (or read from stdin)"
    if spec.fact_default is not None:
        return FACTS[spec.fact_default.removeprefix("facts.")].description
    if spec.type == "public_keys":
        return "the first that exists of " + ", ".join(key_files(spec.default))
    if isinstance(spec.default, bool):
        return "true" if spec.default else "false"
    if spec.default == "":
        return "empty"
    return str(spec.default)


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def option_flag(name: str, spec: ParameterSpec) -> str:
    """A named fix's option for a parameter (``--key``, ``--replace/--append``...)."""
    if spec.flag:
        return spec.flag
    if spec.type == "secret":
        return f"--{_dashed(name)}-stdin"
    if spec.type == "bool":
        return f"--{_dashed(name)}/--no-{_dashed(name)}"
    return f"--{_dashed(name)}"


def option_help(name: str, spec: ParameterSpec) -> str:
    """A named fix's help for a parameter: its description and default."""
    if spec.type == "secret":
        return (
            f"Read the {spec.description.rstrip('.').lower()} from stdin (one line) instead "
            "of asking twice on the terminal."
        )
    if spec.type == "bool":
        on, _, off = option_flag(name, spec).partition("/")
        return f"{spec.description} Default: {on if spec.default else off}."
    choices = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
    return f"{spec.description}{choices} Default: {parameter_default(spec)}."


def command_help(playbook: Playbook) -> str:
    """A named fix's help text, from the playbook's declaration."""
    parts = [playbook.description]
    if playbook.details:
        parts.append(playbook.details)
    parts.append(
        f"Runs the playbook {playbook.name} (see `cloudrescue playbooks show {playbook.name}`)."
    )
    return "\n\n".join(parts)


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False)
    return str(text).strip()


def _code(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def symptoms_section(symptoms: Symptoms) -> str:
    """What a playbook cures as ``cloudrescue diagnose`` sees it (empty: nothing declared)."""
    if symptoms.empty:
        return ""
    rows = [
        ["console", _code(item.pattern), item.confidence,
         item.cause + (" (unless the boot went on to sshd)" if item.stops_boot else "")]
        for item in symptoms.console
    ]
    rows += [
        ["observation", f"`{item.name}`", item.confidence, item.cause]
        for item in symptoms.observations
    ]
    parts = ["Symptoms (`cloudrescue diagnose`):\n\n"]
    if rows:
        parts.append(_table(["seen in", "pattern or name", "confidence", "cause"], rows))
    if symptoms.deep:
        parts.append(
            ("\n" if rows else "") + "Deep checks: "
            + ", ".join(f"`{name}`" for name in symptoms.deep) + "\n"
        )
    return "".join(parts)


def playbook_section(playbook: Playbook, level: int = 3) -> str:
    """One playbook: description, how to run it, parameters, steps and what it changes."""
    parts = [f"{'#' * level} {playbook.name}\n", f"{playbook.description}\n"]
    if playbook.details:
        parts.append(f"{playbook.details}\n")
    run = f"`cloudrescue run INSTANCE {playbook.name}`"
    if playbook.name in SHORT_COMMANDS:
        run = f"`cloudrescue {playbook.name} INSTANCE` or {run}"
    parts.append(
        f"- Run: {run}\n- Mount: `{playbook.mount}`"
        + (", chroot (binds /dev, /proc, /sys, /run)" if playbook.chroot else "")
        + "\n"
    )
    if playbook.parameters:
        rows = [
            [f"`{name}`", spec.type, parameter_default(spec), spec.description]
            for name, spec in playbook.parameters.items()
        ]
        parts.append(_table(["parameter", "type", "default", "description"], rows))
    symptoms = symptoms_section(playbook.symptoms)
    if symptoms:
        parts.append(symptoms)
    steps = ["Steps:\n\n"]
    for number, step in enumerate(playbook.steps, start=1):
        steps.append(f"{number}. **{step.name}**: `{step.action.name}`")
        if step.params:
            steps.append(f" `{_flow(dict(step.params))}`")
        if step.when is not None:
            steps.append(f", when `{_flow(step.when)}`")
        changes = "nothing (read-only)" if step.params.get("read_only") is True else None
        steps.append(f"; changes: {changes or step.action.changes}\n")
    parts.append("".join(steps))
    return "\n".join(parts)


def action_section(action: AnyAction) -> str:
    """One action: heading, where it runs, what it changes, its parameters."""
    rows = [
        [f"`{info.alias or name}`", _field_kind(info), _field_default(info), info.description or ""]
        for name, info in action.params.model_fields.items()
    ]
    table = _table(["parameter", "kind", "default", "description"], rows) if rows else ""
    return (
        f"### {action.name}\n\n{action.heading}\n\n"
        f"- Works on: {RUNS_ON_MEANING[action.runs_on]}\n- Changes: {action.changes}\n"
        + ("\n" + table if table else "- Parameters: none\n")
    )


def reference() -> str:
    """The whole of ``docs/playbooks.md``."""
    parameter_types = [[f"`{t.name}`", t.summary] for t in PARAM_TYPES.values()]
    facts = [
        [
            f"`facts.{fact.name}`",
            fact.kind,
            ", ".join(mode for mode in MOUNT_MODES if mode in fact.phases),
            fact.description,
        ]
        for fact in FACTS.values()
    ]
    conditions = "".join(f"- {model.__doc__}\n" for model in CONDITIONS.values())
    sections = [
        HEADER,
        "## Playbook files\n",
        "Top-level keys:\n",
        _model_keys(PlaybookHead),
        "Each entry of `parameters`:\n",
        _model_keys(ParameterSpec),
        "Each step: these keys, plus the parameters of its action.\n",
        _model_keys(StepHead),
        "### Symptoms\n",
        SYMPTOMS_INTRO,
        "`symptoms:` keys (each optional):\n",
        _model_keys(Symptoms),
        "Each entry of `console`:\n",
        _model_keys(ConsoleSymptom),
        "Each entry of `observations`:\n",
        _model_keys(ObservedSymptom),
        "Observations:\n",
        _table(
            ["observation", "made when"],
            [[f"`{item.name}`", item.description] for item in OBSERVATIONS.values()],
        ),
        "Deep checks (`deep`; read-only, on the rescued disk):\n",
        _table(["check", "looks at"], [[f"`{n}`", text] for n, text in DEEP_CHECKS.items()]),
        "### Parameter types\n",
        _table(["type", "values"], parameter_types),
        "### Facts\n",
        _table(["fact", "type", "known with mount", "meaning"], facts),
        "### Conditions (`when`, `assert`)\n",
        conditions,
        "## Shipped playbooks\n",
        *(playbook_section(catalog.load_shipped(name)) for name in catalog.shipped_names()),
        "## Actions\n",
        *(action_section(action) for action in ACTIONS.values()),
    ]
    return "\n".join(sections)


def main() -> None:
    """Print the reference on stdout."""
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
