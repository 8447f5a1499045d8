"""Start, Validate, Summarize, RecordFailure and Cleanup handlers against moto."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()


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


def test_summarize_records_success_and_record_failure_records_reason(aws, handler_of):
    s3 = boto3.client("s3")
    manifest = {
        "outputs": [
            {
                "uri": f"s3://{aws['CuratedBucket']}/orders/order_date=2026-11-01/x-0.parquet",
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
    summarize_input = event("summarize.json", aws)
    assert handler_of("SummarizeFunction")(summarize_input) == summarize_input
    table = boto3.resource("dynamodb").Table(aws["RunsTable"])
    item = table.get_item(Key={"run_id": "orders-sample-0001"})["Item"]
    assert item["status"] == "SUCCEEDED" and item["rows_out"] == 240 and item["rejects_by_rule"] == {"country.in": 5}
    assert item["partitions"] == ["order_date=2026-11-01"]

    failure = event("record-failure.json", aws)
    result = handler_of("RecordFailureFunction")(failure)
    assert result["status"] == "FAILED" and result["error_type"] == "InputRejectedError"
    item = table.get_item(Key={"run_id": "orders-sample-0001"})["Item"]
    assert item["status"] == "FAILED" and "missing columns: paid" in item["reason"]


def test_cleanup_handler_reports_what_it_did(aws, handler_of):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws["CuratedBucket"], Key="orders/order_date=2026-11-01/orphan-run-0.parquet", Body=b"x")
    report = handler_of("CleanupFunction")(event("schedule.json", aws))
    assert report["files_checked"] == 1
    assert report["orphans_deleted"] == []  # younger than the grace period
