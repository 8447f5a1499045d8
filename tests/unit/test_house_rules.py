"""The custom cfn-lint rules (tools/lint/rules): a template that keeps the house rules passes, each breach fails."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

RULES = str(Path(__file__).resolve().parents[2] / "tools" / "lint" / "rules")


def good() -> dict[str, Any]:
    """A small SAM template with a scheduled, a queue-fed and a stream-fed function, all by the rules."""
    function: dict[str, Any] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Runtime": "python3.13",
            "Handler": "app.handler",
            "CodeUri": "src/",
            "AutoPublishAlias": "live",
            "ReservedConcurrentExecutions": 2,
        },
    }
    scheduled = copy.deepcopy(function)
    scheduled["Properties"].update(
        EventInvokeConfig={
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["Failures", "Arn"]}}},
        },
        Events={"Nightly": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)"}}},
    )
    queued = copy.deepcopy(function)
    queued["Properties"]["Events"] = {
        "Work": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["WorkQueue", "Arn"]}}}
    }
    streamed = copy.deepcopy(function)
    streamed["Properties"]["Events"] = {
        "Stream": {
            "Type": "Kinesis",
            "Properties": {
                "Stream": {"Fn::GetAtt": ["Stream", "Arn"]},
                "StartingPosition": "TRIM_HORIZON",
                "MaximumRetryAttempts": 3,
                "BisectBatchOnFunctionError": True,
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Failures", "Arn"]}}},
            },
        }
    }
    resources: dict[str, Any] = {
        "Scheduled": scheduled,
        "Queued": queued,
        "Streamed": streamed,
        "Failures": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "WorkDlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "WorkQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["WorkDlq", "Arn"]}, "maxReceiveCount": 5}
            },
        },
        "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}},
    }
    for name in ("Scheduled", "Queued", "Streamed"):
        resources[f"{name}Logs"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{name}}}"}, "RetentionInDays": 30},
        }
    return {"AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::Serverless-2016-10-31", "Resources": resources}


def house_findings(template: dict[str, Any]) -> list[str]:
    """``rule id: message`` of the house rules' findings (E9xxx) on `template`."""
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"], append_rules=[RULES]))
    return [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E9")]


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]  # type: ignore[no-any-return]


def no_alias(t: dict[str, Any]) -> None:
    del props(t, "Queued")["AutoPublishAlias"]


def no_reserved_concurrency(t: dict[str, Any]) -> None:
    del props(t, "Streamed")["ReservedConcurrentExecutions"]


def no_log_retention(t: dict[str, Any]) -> None:
    del props(t, "ScheduledLogs")["RetentionInDays"]


def no_log_group(t: dict[str, Any]) -> None:
    del t["Resources"]["QueuedLogs"]


def configured_log_group_without_retention(t: dict[str, Any]) -> None:
    props(t, "Queued")["LoggingConfig"] = {"LogGroup": {"Ref": "QueuedLogs"}}
    props(t, "QueuedLogs")["LogGroupName"] = "queued"
    del props(t, "QueuedLogs")["RetentionInDays"]


def async_without_destination(t: dict[str, Any]) -> None:
    del props(t, "Scheduled")["EventInvokeConfig"]["DestinationConfig"]


def async_with_unbounded_retries(t: dict[str, Any]) -> None:
    del props(t, "Scheduled")["EventInvokeConfig"]["MaximumRetryAttempts"]


def queue_without_dlq(t: dict[str, Any]) -> None:
    del props(t, "WorkQueue")["RedrivePolicy"]


def stream_without_destination(t: dict[str, Any]) -> None:
    del props(t, "Streamed")["Events"]["Stream"]["Properties"]["DestinationConfig"]


def stream_without_bisect(t: dict[str, Any]) -> None:
    del props(t, "Streamed")["Events"]["Stream"]["Properties"]["BisectBatchOnFunctionError"]


def test_a_template_that_keeps_the_house_rules_passes() -> None:
    assert house_findings(good()) == []
    configured = good()  # logs in a group LoggingConfig names: the template's (with retention), or another stack's
    props(configured, "Queued")["LoggingConfig"] = {"LogGroup": {"Ref": "QueuedLogs"}}
    props(configured, "QueuedLogs")["LogGroupName"] = "queued"
    props(configured, "Streamed")["LoggingConfig"] = {"LogGroup": "shared-by-another-stack"}
    del configured["Resources"]["StreamedLogs"]
    assert house_findings(configured) == []


@pytest.mark.parametrize(
    ("breach", "rule", "words"),
    [
        (no_alias, "E9004", "Queued has no alias"),
        (no_reserved_concurrency, "E9004", "Streamed has no concurrency bound"),
        (no_log_retention, "E9004", "Scheduled keeps its logs forever"),
        (no_log_group, "E9001", "Queued has no log group"),
        (configured_log_group_without_retention, "E9004", "Queued keeps its logs forever"),
        (async_without_destination, "E9003", "Scheduled.Events.Nightly (Schedule) is asynchronous"),
        (async_with_unbounded_retries, "E9003", "MaximumRetryAttempts"),
        (queue_without_dlq, "E9003", "Queued.Events.Work: its queue has no RedrivePolicy"),
        (stream_without_destination, "E9002", "without DestinationConfig.OnFailure"),
        (stream_without_bisect, "E9002", "without BisectBatchOnFunctionError"),
    ],
)
def test_each_breach_fails(breach: Callable[[dict[str, Any]], None], rule: str, words: str) -> None:
    template = good()
    breach(template)
    findings = house_findings(template)
    assert any(f.startswith(rule) and words in f for f in findings), findings


def test_the_project_template_keeps_the_house_rules() -> None:
    from cfnlint.decode.cfn_yaml import load

    template = json.loads(json.dumps(load(str(Path(RULES).parents[2] / "template.yaml")), default=str))
    assert house_findings(template) == []
