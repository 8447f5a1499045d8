"""The build and lint tooling catches what it claims to (no sam build needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "lint"))

import asl_check  # noqa: E402
import layer_size  # noqa: E402
import layer_trim  # noqa: E402

FUNCTION = {
    "Type": "AWS::Serverless::Function",
    "Properties": {
        "Runtime": "python3.13",
        "Handler": "app.handler",
        "CodeUri": "functions/x/",
        # E9004's baseline (tested in tests/unit/test_house_rules.py)
        "AutoPublishAlias": "live",
        "ReservedConcurrentExecutions": 1,
    },
}


def _lint(resources: dict[str, Any]) -> list[str]:
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::Serverless-2016-10-31"}
    template["Resources"] = resources
    config = ManualArgs(append_rules=[str(REPO / "tools" / "lint" / "rules")], regions=["us-east-1"])
    return [m.rule.id for m in lint(json.dumps(template), config=config) if m.rule.id.startswith("E9")]


def test_house_rules_want_a_log_group_per_function() -> None:
    assert _lint({"Fn": FUNCTION}) == ["E9001", "E9004"]  # no log group: no retention either
    log_group = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${Fn}"}, "RetentionInDays": 7},
    }
    assert _lint({"Fn": FUNCTION, "FnLogs": log_group}) == []


def test_house_rules_want_stream_sources_bounded_with_a_failure_destination() -> None:
    stream_event = {"Type": "Kinesis", "Properties": {"Stream": "arn:aws:kinesis:us-east-1:1:stream/s"}}
    stream_event["Properties"]["StartingPosition"] = "LATEST"
    fn = {**FUNCTION, "Properties": {**FUNCTION["Properties"], "Events": {"S": stream_event}}}
    fn["Properties"]["LoggingConfig"] = {"LogGroup": "explicit"}
    assert sorted(_lint({"Fn": fn})) == ["E9002", "E9002", "E9002"]
    stream_event["Properties"].update(
        {
            "MaximumRetryAttempts": 3,
            "BisectBatchOnFunctionError": True,
            "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:1:dlq"}},
        }
    )
    assert _lint({"Fn": fn}) == []


def test_asl_check_finds_dangling_transitions_and_unreachable_states() -> None:
    machine = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "Nowhere"},
            "B": {"Type": "Succeed"},
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}},
                "End": True,
            },
        },
    }
    problems = asl_check.check_graph(machine)
    assert any("A: transition to 'Nowhere'" in p for p in problems)
    assert any("B: unreachable" in p for p in problems)
    assert any("M[0]/X: transition to 'Y'" in p for p in problems)


def test_asl_check_matches_placeholders_with_substitutions() -> None:
    text = '{"Resource": "${FnArn}", "Other": "${Missing}"}'
    problems = asl_check.check_substitutions(text, {"FnArn": "x", "Unused": "y"})
    assert problems == [
        "${Missing} has no DefinitionSubstitutions entry",
        "DefinitionSubstitutions.Unused is never used",
    ]


def test_asl_check_schema_flags_unknown_state_type() -> None:
    machine = {"StartAt": "A", "States": {"A": {"Type": "Taskk", "End": True}}}
    assert any("Taskk" in p for p in asl_check.check_schema(machine, {}))


def test_layer_trim_keeps_sonames_and_drops_what_lambda_never_loads(tmp_path: Path) -> None:
    root = tmp_path / "python"
    files = {
        "pyarrow/libarrow_python.so.2600": b"x" * 100,
        "pyarrow/libarrow_python.so": b"x" * 100,
        "pyarrow/libarrow_python.so.2600.1.0": b"x" * 100,
        "pyarrow/libarrow_flight.so.2600": b"f",
        "pyarrow/_flight.cpython-313-x86_64-linux-gnu.so": b"f",
        "pyarrow/include/arrow/api.h": b"h",
        "pyarrow/lib.pyx": b"c",
        "pyarrow/__init__.py": b"",
        "pandas/tests/test_x.py": b"t",
        "pandas/__init__.pyi": b"s",
        "pandas/__pycache__/x.cpython-313.pyc": b"p",
        "numpy.libs/libopenblas.so": b"o",
        "bin/f2py": b"#!",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    layer_trim.trim(root, strip_tool=None)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == ["numpy.libs/libopenblas.so", "pyarrow/__init__.py", "pyarrow/libarrow_python.so.2600"]


def test_layer_size_counts_function_layers_from_the_built_template(tmp_path: Path) -> None:
    template = {
        "Globals": {"Function": {"Layers": [{"Ref": "Base"}]}},
        "Resources": {
            "Base": {"Type": "AWS::Serverless::LayerVersion"},
            "Data": {"Type": "AWS::Serverless::LayerVersion"},
            "Small": {"Type": "AWS::Serverless::Function", "Properties": {}},
            "Big": {"Type": "AWS::Serverless::Function", "Properties": {"Layers": [{"Ref": "Data"}]}},
        },
    }
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template))
    for name, size in {"Base": 3 * 2**20, "Data": 5 * 2**20, "Small": 10, "Big": 20}.items():
        (tmp_path / name / "python").mkdir(parents=True)
        (tmp_path / name / "python" / "blob").write_bytes(b"\0" * size)
    assert layer_size.function_layers(template) == {"Small": ["Base"], "Big": ["Base", "Data"]}
    assert layer_size.main(["--build-dir", str(tmp_path), "--budget-mib", "9"]) == 0
    assert layer_size.main(["--build-dir", str(tmp_path), "--budget-mib", "7.9"]) == 1


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_layer_makefiles_target_the_lambda_platform(arch: str) -> None:
    import subprocess

    out = subprocess.run(
        ["make", "-n", "-f", "layers/data/Makefile", "build-DataLayer", "ARTIFACTS_DIR=/tmp/x", f"SLUICE_ARCH={arch}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    machine = "aarch64" if arch == "arm64" else "x86_64"
    assert f"--platform manylinux_2_28_{machine}" in out
    assert "--only-binary=:all:" in out
    assert "--python-version 3.13" in out
    assert "--invalidation-mode unchecked-hash" in out
