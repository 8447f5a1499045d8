"""Lint the state machines that template.yaml loads from files (``DefinitionUri``).

cfn-lint validates SAM templates as written, so it never opens ``statemachines/*.asl.json``.
This script does, for every ``AWS::Serverless::StateMachine`` with a local ``DefinitionUri``:

1. runs cfn-lint's Step Functions schema rule (E3601) on the definition, wrapped in a throwaway
   ``AWS::StepFunctions::StateMachine``;
2. checks what the schema can't: every ``StartAt``/``Next``/``Default``/Catch target names a state
   of its scope, every state is reachable, and the ``${Name}`` placeholders of the definition
   and the template's ``DefinitionSubstitutions`` match one to one.

Usage: ``python tools/lint/asl_check.py [template.yaml]``; exit 1 on any finding.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint
from cfnlint.decode.cfn_yaml import load

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _targets(state: dict[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        if "Next" in choice:
            yield choice["Next"]
    for catch in state.get("Catch", []):
        if "Next" in catch:
            yield catch["Next"]


def _nested(state: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Sub-machines of Parallel branches and Map iterators/processors."""
    yield from state.get("Branches", [])
    for key in ("Iterator", "ItemProcessor"):
        if key in state:
            yield state[key]


def check_graph(machine: dict[str, Any], where: str = "") -> list[str]:
    """Dangling transitions and unreachable states, recursively through Parallel and Map."""
    problems: list[str] = []
    states: dict[str, Any] = machine.get("States", {})
    start = machine.get("StartAt")
    if start not in states:
        problems.append(f"{where}StartAt {start!r} is not a state")
    reachable, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in reachable or name not in states:
            continue
        reachable.add(name)
        todo.extend(_targets(states[name]))
    for name, state in states.items():
        for target in _targets(state):
            if target not in states:
                problems.append(f"{where}{name}: transition to {target!r}, which is not a state here")
        if name not in reachable:
            problems.append(f"{where}{name}: unreachable from StartAt")
        for n, sub in enumerate(_nested(state)):
            problems.extend(check_graph(sub, f"{where}{name}[{n}]/"))
    return problems


def check_substitutions(definition_text: str, substitutions: dict[str, Any]) -> list[str]:
    """``${X}`` in the definition <-> ``DefinitionSubstitutions`` keys."""
    used = set(_PLACEHOLDER.findall(definition_text))
    given = set(substitutions)
    problems = [f"${{{name}}} has no DefinitionSubstitutions entry" for name in sorted(used - given)]
    problems += [f"DefinitionSubstitutions.{name} is never used" for name in sorted(given - used)]
    return problems


def check_schema(definition: dict[str, Any], substitutions: dict[str, Any]) -> list[str]:
    """cfn-lint's E3601 (Step Functions definition schema) on the definition."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/lint",
                    "Definition": definition,
                    "DefinitionSubstitutions": {k: f"placeholder-{k}" for k in substitutions},
                },
            }
        },
    }
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} {m.message}" for m in matches if m.rule.id == "E3601"]


def main(argv: list[str] | None = None) -> int:
    """Lint every file-based state machine of the template; 1 if anything is wrong."""
    args = argv if argv is not None else sys.argv[1:]
    template_path = Path(args[0] if args else "template.yaml")
    template = load(str(template_path))
    failures = 0
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties", {})
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            continue
        asl_path = template_path.parent / uri
        text = asl_path.read_text(encoding="utf-8")
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            print(f"{asl_path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}")
            failures += 1
            continue
        substitutions = dict(props.get("DefinitionSubstitutions", {}))
        problems = [
            *check_schema(definition, substitutions),
            *check_graph(definition),
            *check_substitutions(text, substitutions),
        ]
        for problem in problems:
            print(f"{asl_path} ({logical_id}): {problem}")
        failures += len(problems)
        if not problems:
            print(f"asl check: {asl_path} ({logical_id}) OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
