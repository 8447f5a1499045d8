"""`sluice events render --stack`: the events of events/ with a deployed stack's names, and env.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from sluice.errors import SluiceError
from sluice_cli import events_cmd
from sluice_cli.connection import Connection
from sluice_cli.main import main
from tests.template_stack import plain_template

ROOT = Path(__file__).resolve().parents[2]


def deploy_with_function(stack: str) -> dict[str, str]:
    """The template's buckets, tables, queues and streams, plus TransformFunction with its environment."""
    template = plain_template()
    variables = {"RAW_BUCKET": {"Ref": "RawBucket"}, "WORK_BUCKET": {"Ref": "WorkBucket"}, "STAGE": "dev"}
    template["Resources"]["TransformRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        },
    }
    template["Resources"]["TransformFunction"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.13",
            "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["TransformRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
            "Environment": {"Variables": variables},
        },
    }
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    summaries = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries}


def render(*args: str) -> int:
    return main(["events", "render", *args])


def test_a_deployed_stack_fills_every_placeholder(aws: Any, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    names = deploy_with_function("sluice-dev")
    monkeypatch.chdir(ROOT)
    assert render("--stack", "sluice-dev", "--out", str(tmp_path)) == 0
    sources = sorted((ROOT / "events").glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted([*(p.name for p in sources), "env.json"])
    placeholders = 0
    for source in sources:
        text = source.read_text()
        placeholders += text.count("${")
        for logical_id, physical in names.items():
            text = text.replace("${" + logical_id + "}", physical)
        assert json.loads((tmp_path / source.name).read_text()) == json.loads(text), source.name
        assert "${" not in text, source.name
    assert placeholders > 0
    assert json.loads((tmp_path / "env.json").read_text()) == {
        "TransformFunction": {"RAW_BUCKET": names["RawBucket"], "WORK_BUCKET": names["WorkBucket"], "STAGE": "dev"}
    }
    assert f"--env-vars {tmp_path / 'env.json'}" in capsys.readouterr().out


def test_an_unknown_stack_is_one_line_and_writes_nothing(
    aws: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "events"
    assert render("--stack", "no-such-stack", "--out", str(out)) == 2
    assert "cannot read the resources of stack 'no-such-stack'" in capsys.readouterr().err
    assert not out.exists()


def test_a_placeholder_the_stack_lacks_is_named_and_nothing_is_written(aws: Any, tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "events").mkdir(parents=True)
    (root / "events" / "x.json").write_text('{"bucket": "${RawBucket}", "table": "${NoSuchTable}"}')
    conn = Connection("", {"RawBucket": "raw-1"}, local=False)
    with pytest.raises(SluiceError, match=r"the stack has no resource for \$\{NoSuchTable\} in x.json"):
        events_cmd.render(conn, root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
