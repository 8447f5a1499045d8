"""Start, Validate, Summarize, RecordFailure and Cleanup handlers against moto."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()


def emitted_metrics(stdout: str) -> dict[str, list[float]]:
    """The CloudWatch metrics (EMF lines) a handler printed, without the cold-start one."""
    found: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            emf = json.loads(line)
            for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                if metric["Name"] != "ColdStart":
                    found[metric["Name"]] = emf[metric["Name"]]
    return found


def event(name: str, resources: dict[str, str]) -> dict:
    text = (ROOT / "events" / name).read_text()
    for logical, physical in resources.items():
        text = text.replace("${" + logical + "}", physical)
    return json.loads(text)


@pytest.fixture
def state_machine(aws: dict[str, str]) -> str:
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return sfn.create_state_machine(
        name="pipeline", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]


def test_start_from_sqs_starts_once_and_reports_bad_messages(aws, handler_of, state_machine):
    start = handler_of("StartFunction", STATE_MACHINE_ARN=state_machine)
    batch = event("sqs-object-created.json", aws)
    poison = dict(batch["Records"][0], messageId="poison-1", body="not json")
    batch["Records"].append(poison)
    assert start(batch) == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert start(event("sqs-object-created.json", aws)) == {"batchItemFailures": []}
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=state_machine)["executions"]
    assert len(executions) == 1
    run = json.loads(
        boto3.client("stepfunctions").describe_execution(executionArn=executions[0]["executionArn"])["input"]
    )
    assert run["run_id"] == executions[0]["name"]
    assert run["dataset"] == "orders"
    assert run["source"]["key"] == "orders/orders-2026-11-02.csv"


def test_start_accepts_s3_notification_records(aws, handler_of, state_machine):
    start = handler_of("StartFunction", STATE_MACHINE_ARN=state_machine)
    result = start(event("s3.json", aws))
    [run] = result["runs"]
    assert run["started"] is True and run["key"] == "orders/orders-2026-11-01.csv"
    assert start(event("s3.json", aws))["runs"][0]["started"] is False


def test_validate_records_a_running_run(aws, handler_of):
    s3 = boto3.client("s3")
    version = s3.put_object(Bucket=aws["RawBucket"], Key="orders/orders-2026-11-01.csv", Body=SAMPLE)["VersionId"]
    result = handler_of("ValidateFunction")(event("validate.json", aws))
    assert result["mode"] == "single"
    assert result["source"]["version_id"] == version and result["source"]["size"] == len(SAMPLE)
    item = boto3.resource("dynamodb").Table(aws["RunsTable"]).get_item(Key={"run_id": "orders-sample-0001"})["Item"]
    assert item["status"] == "RUNNING" and item["dataset"] == "orders"
    assert item["source_uri"] == f"s3://{aws['RawBucket']}/orders/orders-2026-11-01.csv"


def test_summarize_commits_the_run_and_record_failure_records_reason(aws, handler_of, capsys):
    s3 = boto3.client("s3")
    curated_key = "orders/order_date=2026-11-01/orders-sample-0001-0.parquet"
    staged_key = f"staging/orders-sample-0001/{curated_key}"
    s3.put_object(Bucket=aws["WorkBucket"], Key=staged_key, Body=b"PAR1 parquet bytes PAR1")
    summarize_input = event("summarize.json", aws)
    manifest = {
        "run_id": "orders-sample-0001",
        "dataset": "orders",
        "contract_version": 1,
        "source": summarize_input["source"],
        "rows_in": 245,
        "rows_out": 240,
        "rows_rejected": 5,
        "bytes_in": 19000,
        "bytes_out": 20000,
        "outputs": [
            {
                "uri": f"s3://{aws['CuratedBucket']}/{curated_key}",
                "staged_uri": f"s3://{aws['WorkBucket']}/{staged_key}",
                "rows": 240,
                "bytes": 9,
                "partition": {"order_date": "2026-11-01"},
            }
        ],
        "schema": [["order_id", "string"]],
        "rejects_by_rule": {"country.in": 5},
        "blank_lines": 0,
    }
    s3.put_object(Bucket=aws["WorkBucket"], Key="runs/orders-sample-0001/manifest.json", Body=json.dumps(manifest))
    table = boto3.resource("dynamodb").Table(aws["RunsTable"])
    table.put_item(Item={"run_id": "orders-sample-0001", "status": "RUNNING", "started_at": "2026-11-23T10:00:00"})
    result = handler_of("SummarizeFunction")(summarize_input)
    assert result == {**summarize_input, "commit": result["commit"]}
    assert (result["commit"]["status"], result["commit"]["seq"], result["commit"]["published"]) == ("COMMITTED", 1, 1)
    item = table.get_item(Key={"run_id": "orders-sample-0001"})["Item"]
    assert item["status"] == "COMMITTED" and item["rows_out"] == 240 and item["rejects_by_rule"] == {"country.in": 5}
    assert item["partitions"] == ["order_date=2026-11-01"]
    assert s3.get_object(Bucket=aws["CuratedBucket"], Key=curated_key)["Body"].read() == b"PAR1 parquet bytes PAR1"
    assert "Contents" not in s3.list_objects_v2(Bucket=aws["WorkBucket"], Prefix="staging/")
    head = table.get_item(Key={"run_id": f"key#s3://{aws['RawBucket']}/orders/orders-2026-11-01.csv"})["Item"]
    assert head["live_run_id"] == "orders-sample-0001" and "pending_run_id" not in head
    assert handler_of("SummarizeFunction")(summarize_input)["commit"] == result["commit"], "a retry: same commit"

    failure = event("record-failure.json", aws)
    failure["run_id"] = "orders-sample-0002"
    capsys.readouterr()
    result = handler_of("RecordFailureFunction")(failure)
    assert emitted_metrics(capsys.readouterr().out) == {"RunsFailed": [1.0]}, "a failure has a metric to alarm on"
    assert result["status"] == "FAILED" and result["error_type"] == "InputRejectedError"
    item = table.get_item(Key={"run_id": "orders-sample-0002"})["Item"]
    assert item["status"] == "FAILED" and "missing columns: paid" in item["reason"]
    assert item["failed_step"] == "Validate"

    after_commit = {**failure, "run_id": "orders-sample-0001", "commit": result}
    assert handler_of("RecordFailureFunction")(after_commit)["status"] == "COMMITTED"
    assert emitted_metrics(capsys.readouterr().out) == {"CommittedRunsIncomplete": [1.0]}
    item = table.get_item(Key={"run_id": "orders-sample-0001"})["Item"]
    assert (item["status"], item["failed_step"]) == ("COMMITTED", "Publish")


def test_cleanup_handler_reports_what_it_did(aws, handler_of, state_machine):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws["CuratedBucket"], Key="orders/order_date=2026-11-01/orphan-run-0.parquet", Body=b"x")
    s3.put_object(Bucket=aws["CuratedBucket"], Key="orders/order_date=2026-11-01/failed-run-0.parquet", Body=b"x")
    table = boto3.resource("dynamodb").Table(aws["RunsTable"])
    table.put_item(Item={"run_id": "failed-run", "status": "FAILED", "dataset": "orders"})
    s3.put_object(Bucket=aws["CuratedBucket"], Key="orders/order_date=2026-11-01/live-run-0.parquet", Body=b"x")
    table.put_item(Item={"run_id": "live-run", "status": "SUCCEEDED", "dataset": "orders", "expires_at": 1})
    scheduled = event("schedule.json", aws)
    report = handler_of("CleanupFunction", STATE_MACHINE_ARN=state_machine)(scheduled)
    assert report["files_checked"] == 3
    assert report["orphans_deleted"] == [] and report["unowned_files"] == []  # younger than the grace period
    assert report["failures_recorded"] == []
    two_days_on = {**scheduled, "time": "2099-01-01T03:15:00Z"}  # the schedule's time is the cleanup's "now"
    plan = handler_of("CleanupFunction", STATE_MACHINE_ARN=state_machine)({**two_days_on, "detail": {"dry_run": True}})
    assert plan["dry_run"] and plan["orphans_deleted"] == [
        f"s3://{aws['CuratedBucket']}/orders/order_date=2026-11-01/failed-run-0.parquet"
    ]
    assert len(s3.list_objects_v2(Bucket=aws["CuratedBucket"])["Contents"]) == 3, "a dry run deletes nothing"
    report = handler_of("CleanupFunction", STATE_MACHINE_ARN=state_machine)(two_days_on)
    assert report["orphans_deleted"] == plan["orphans_deleted"]
    assert report["unowned_files"] == [
        f"s3://{aws['CuratedBucket']}/orders/order_date=2026-11-01/orphan-run-0.parquet"
    ], "no record owns it: reported, never deleted (it could be committed data whose record was lost)"
    assert report["expiries_cleared"] == ["live-run"], "a record owning visible files written with a TTL loses it"
    assert "expires_at" not in table.get_item(Key={"run_id": "live-run"})["Item"]
