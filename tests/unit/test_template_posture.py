"""Operations and security posture of template.yaml (docs/operations.md), read from the template itself.

Every function: a `live` alias the callers invoke, a gradual deployment rolled back by its own
alarms, log retention, reserved concurrency, errors/throttles/duration alarms (duration at 0.8 x its
timeout). Every asynchronous, queue or stream path ends in a failure target. Every function's
policy names the stack's own resources: no ``*`` action, no ``*`` resource beyond what AWS requires.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load

from localcloud.deploy import _parameter_values, _Preparer, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = json.loads(json.dumps(load(str(ROOT / "template.yaml")), default=str))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]
FUNCTIONS = sorted(lid for lid, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
ALARMS = {lid: r["Properties"] for lid, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

# Managed policies SAM attaches for the function's own plumbing (logs, X-Ray, its event sources).
ALLOWED_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaKinesisExecutionRole",
}
# Actions AWS defines without resource-level permissions: the only ones allowed on "*".
ALLOWED_ON_ANY_RESOURCE = ("xray:", "cloudwatch:PutMetricData")


def prop(lid: str, name: str) -> Any:
    """A function property, or its Globals value."""
    props = RESOURCES[lid]["Properties"]
    return props[name] if name in props else GLOBALS.get(name)


def mentions(value: Any, logical_id: str) -> bool:
    """True if an intrinsic in `value` names `logical_id` (Ref, GetAtt, ${Id} in Sub)."""
    text = json.dumps(value)
    return (
        f'"Ref": "{logical_id}"' in text
        or f'"Ref": "{logical_id}.' in text
        or f'"Fn::GetAtt": ["{logical_id}"' in text
        or f"${{{logical_id}}}" in text
        or f"${{{logical_id}." in text
    )


@cache
def translated() -> dict[str, Any]:
    """template.yaml after the SAM transform (the roles and policies CloudFormation gets)."""
    values = _parameter_values(TEMPLATE, {})
    return translate(_Preparer(TEMPLATE, ROOT, "artifacts").run(), values, "us-east-1")


# ------------------------------------------------------------------ aliases, deployments, concurrency, logs
@pytest.mark.parametrize("lid", FUNCTIONS)
def test_every_function_is_deployed_through_its_live_alias(lid: str) -> None:
    assert prop(lid, "AutoPublishAlias") == "live"
    assert prop(lid, "AutoPublishAliasAllProperties") is True  # a new layer version publishes too
    assert GLOBALS["DeploymentPreference"]["Type"] == {"Ref": "DeploymentType"}
    group = translated()["Resources"][f"{lid}DeploymentGroup"]["Properties"]
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    rollback = RESOURCES[lid]["Properties"]["DeploymentPreference"]["Alarms"]
    short = lid.removesuffix("Function")
    assert rollback == [{"Ref": f"{short}ErrorsAlarm"}, {"Ref": f"{short}ThrottlesAlarm"}]


def test_callers_invoke_the_aliases() -> None:
    substitutions = RESOURCES["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions and all(v["Ref"].endswith(".Alias") for v in substitutions.values())
    resources = translated()["Resources"]
    mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 2 and all(m["Properties"]["FunctionName"]["Ref"].endswith("Aliaslive") for m in mappings)
    rules = [
        r for r in resources.values() if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    assert rules and all(t["Arn"]["Ref"].endswith("Aliaslive") for r in rules for t in r["Properties"]["Targets"])


@pytest.mark.parametrize("lid", FUNCTIONS)
def test_every_function_has_reserved_concurrency_and_log_retention(lid: str) -> None:
    reserved = RESOURCES[lid]["Properties"]["ReservedConcurrentExecutions"]
    assert isinstance(reserved, int) or reserved["Ref"] in TEMPLATE["Parameters"]
    groups = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup" and mentions(r["Properties"]["LogGroupName"], lid)
    ]
    assert len(groups) == 1 and groups[0]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


def test_the_map_concurrency_derives_from_the_transform_budget() -> None:
    plan_env = RESOURCES["PlanFunction"]["Properties"]["Environment"]["Variables"]
    assert plan_env["FANOUT_MAX_CONCURRENCY"] == {
        "Fn::If": [
            "FanoutConcurrencyFromBudget",
            {"Ref": "TransformReservedConcurrency"},
            {"Ref": "FanoutMaxConcurrency"},
        ]
    }
    asl = json.loads((ROOT / "statemachines/pipeline.asl.json").read_text())
    assert asl["States"]["TransformRanges"]["MaxConcurrencyPath"] == "$.plan.max_concurrency"
    ingest = RESOURCES["StartFunction"]["Properties"]["Events"]["Ingest"]["Properties"]
    assert ingest["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "StartReservedConcurrency"}
    assert "StartProvisioned" in json.dumps(RESOURCES["StartFunction"]["Properties"]["ProvisionedConcurrencyConfig"])


# ------------------------------------------------------------------ failure routing
def test_every_async_queue_and_stream_path_has_a_failure_target() -> None:
    paths = 0
    for lid in FUNCTIONS:
        props = RESOURCES[lid]["Properties"]
        for event in props.get("Events", {}).values():
            paths += 1
            if event["Type"] == "Schedule":
                config = props["EventInvokeConfig"]
                assert config["DestinationConfig"]["OnFailure"]["Destination"] and "MaximumRetryAttempts" in config
                assert event["Properties"]["DeadLetterConfig"]["Arn"]  # EventBridge's own delivery failures
            elif event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                assert RESOURCES[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
            elif event["Type"] == "Kinesis":
                stream = event["Properties"]
                assert stream["DestinationConfig"]["OnFailure"]["Destination"]
                for name in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError"):
                    assert stream[name]["Ref"] in TEMPLATE["Parameters"], name
            else:
                pytest.fail(f"{lid}: event type {event['Type']} has no failure-target check")
    assert paths == 3


# ------------------------------------------------------------------ alarms
def alarms_on(lid: str, metric: str) -> list[dict[str, Any]]:
    return [a for a in ALARMS.values() if a.get("MetricName") == metric and mentions(a.get("Dimensions"), lid)]


@pytest.mark.parametrize("lid", FUNCTIONS)
def test_every_function_has_errors_throttles_and_duration_alarms(lid: str) -> None:
    (errors,) = alarms_on(lid, "Errors")
    (throttles,) = alarms_on(lid, "Throttles")
    (duration,) = alarms_on(lid, "Duration")
    assert errors["Threshold"] == {"Ref": "FunctionErrorsAlarmThreshold"} and throttles["Threshold"] == 1
    assert duration["ExtendedStatistic"] == "p99"
    assert duration["Threshold"] == 0.8 * prop(lid, "Timeout") * 1000


def test_queues_stream_executions_and_run_outcomes_are_alarmed() -> None:
    queues = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in ALARMS.values() if a.get("Namespace") == "AWS/SQS"}
    assert queues == {"IngestDeadLetterQueue", "AggregateDeadLetterQueue", "CleanupFailureQueue"}
    assert [
        a["Dimensions"] for a in ALARMS.values() if a.get("MetricName") == "GetRecords.IteratorAgeMilliseconds"
    ] == [[{"Name": "StreamName", "Value": {"Ref": "AggregatesStream"}}]]
    states = {a["MetricName"] for a in ALARMS.values() if a.get("Namespace") == "AWS/States"}
    assert states == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    # the metrics the code emits (Powertools: namespace sluice, dimension service=sluice)
    sluice = {a["MetricName"] for a in ALARMS.values() if a.get("Namespace") == "sluice"}
    assert sluice == {"CommittedRunsIncomplete", "SilentFailuresRecorded"}
    emitters = [*(ROOT / "functions").rglob("app.py"), *(ROOT / "src" / "sluice").rglob("*.py")]
    for name in sluice:
        assert any(f'"{name}"' in p.read_text() for p in emitters), name
    ratio = ALARMS["OrdersRejectedRowsAlarm"]["Metrics"]
    assert [m["MetricStat"]["Metric"]["MetricName"] for m in ratio if "MetricStat" in m] == ["RowsRejected", "RowsIn"]


def test_alarm_actions_go_to_the_optional_topic() -> None:
    for lid, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }, lid
    body = RESOURCES["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert all(f"${{{lid}.Arn}}" in body for lid in ALARMS)


# ------------------------------------------------------------------ least privilege
def function_roles() -> dict[str, dict[str, Any]]:
    resources = translated()["Resources"]
    return {lid: resources[f"{lid}Role"]["Properties"] for lid in FUNCTIONS}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role.get("Policies", []):
        body = policy["PolicyDocument"]["Statement"]
        found += body if isinstance(body, list) else [body]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("lid", FUNCTIONS)
def test_no_function_policy_grants_a_wildcard(lid: str) -> None:
    role = function_roles()[lid]
    assert set(role["ManagedPolicyArns"]) <= ALLOWED_MANAGED
    stack_ids = set(RESOURCES)
    for statement in statements(role):
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert all(a.startswith(ALLOWED_ON_ANY_RESOURCE) for a in actions), statement
            else:
                # a resource of this stack: by logical id, or named after the stack (the executions)
                owned = any(mentions(resource, sid) for sid in stack_ids) or "${AWS::StackName}-" in json.dumps(
                    resource
                )
                assert owned, statement


def actions_on(lid: str, bucket: str) -> set[str]:
    return {
        action
        for s in statements(function_roles()[lid])
        if any(mentions(r, bucket) for r in as_list(s["Resource"]))
        for action in as_list(s["Action"])
    }


def test_transform_writes_but_never_deletes_published_data() -> None:
    assert actions_on("TransformFunction", "CuratedBucket") == set()
    assert "s3:DeleteObject" not in actions_on("TransformFunction", "QuarantineBucket")
    every = {a for lid in FUNCTIONS for s in statements(function_roles()[lid]) for a in as_list(s["Action"])}
    assert not every & {"s3:PutLifecycleConfiguration", "s3:PutObjectAcl", "s3:PutBucketPolicy", "dynamodb:DeleteTable"}
    # only the commit (Summarize, and Cleanup completing it) writes or deletes curated files
    writers = {lid for lid in FUNCTIONS if actions_on(lid, "CuratedBucket") & {"s3:PutObject", "s3:DeleteObject"}}
    assert writers == {"SummarizeFunction", "CleanupFunction"}
    assert actions_on("PublishFunction", "QuarantineBucket") == set()
    # the cleanup only lists and deletes old quarantine files (a contract's retention.quarantine_days)
    assert actions_on("CleanupFunction", "QuarantineBucket") == {"s3:ListBucket", "s3:DeleteObject"}


def test_every_dataset_contract_has_a_rejected_rows_alarm() -> None:
    import yaml

    datasets = {yaml.safe_load(p.read_text())["dataset"] for p in (ROOT / "contracts").glob("*.yaml")}
    alarmed = {
        d["Value"]
        for alarm in ALARMS.values()
        for query in alarm.get("Metrics", [])
        if query.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "RowsRejected"
        for d in query["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "dataset"
    }
    assert datasets and datasets == alarmed
