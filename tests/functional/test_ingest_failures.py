"""Uploads whose run cannot be started are never lost silently; dead-letter queues can be sent back."""

from __future__ import annotations

import contextlib
import io
import json

import boto3

from sluice_cli.main import main
from tests.functional.test_pipeline_handlers import event


def unstartable(aws: dict[str, str], deliveries: int) -> dict:
    batch = event("sqs-object-created.json", aws)
    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(deliveries)
    return batch


def runs(aws: dict[str, str]) -> list[dict]:
    return boto3.resource("dynamodb").Table(aws["RunsTable"]).scan()["Items"]


NO_SUCH_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:not-deployed"


def test_an_event_that_cannot_start_a_run_is_recorded_on_its_last_delivery(aws, handler_of):
    """Fails if an upload whose events go to the dead-letter queue leaves no trace in the runs table."""
    start = handler_of("StartFunction", STATE_MACHINE_ARN=NO_SUCH_MACHINE, INGEST_MAX_RECEIVES="3")
    failed = start(unstartable(aws, 2))
    assert [f["itemIdentifier"] for f in failed["batchItemFailures"]] == ["059f36b4-87a3-44ab-83d2-661975830a7d"]
    assert runs(aws) == [], "retried by the queue: nothing to record yet"
    assert start(unstartable(aws, 3))["batchItemFailures"], "its last delivery fails too"
    [run] = runs(aws)
    assert (run["status"], run["error_type"], run["dataset"]) == ("FAILED", "RunNotStarted", "orders")
    assert "sluice redrive ingest" in run["reason"] and "after 3 deliveries" in run["reason"]
    assert run["source"]["key"] == "orders/orders-2026-11-02.csv"


def redrive(queue: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["redrive", queue, "--stack", "sluice-test"]) == 0
    return json.loads(out.getvalue())


def test_redrive_ingest_sends_the_events_back(aws):
    sqs = boto3.client("sqs")
    body = event("sqs-object-created.json", aws)["Records"][0]["body"]
    for _ in range(3):
        sqs.send_message(QueueUrl=aws["IngestDeadLetterQueue"], MessageBody=body)
    assert redrive("ingest") == {"queue": "ingest", "events_sent_back": 3}
    moved = sqs.receive_message(QueueUrl=aws["IngestQueue"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in moved] == [body] * 3
    assert "Messages" not in sqs.receive_message(QueueUrl=aws["IngestDeadLetterQueue"], MaxNumberOfMessages=10)


def test_redrive_aggregate_puts_the_failed_records_back_on_the_stream(aws):
    kinesis, sqs = boto3.client("kinesis"), boto3.client("sqs")
    stream = aws["AggregatesStream"]
    put = kinesis.put_records(
        StreamName=stream, Records=[{"PartitionKey": "k", "Data": f"record {i}".encode()} for i in range(3)]
    )["Records"]
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    info = {
        "shardId": shard,
        "startSequenceNumber": put[1]["SequenceNumber"],
        "endSequenceNumber": put[2]["SequenceNumber"],
        "batchSize": 2,
    }
    sqs.send_message(QueueUrl=aws["AggregateDeadLetterQueue"], MessageBody=json.dumps({"KinesisBatchInfo": info}))
    assert redrive("aggregate") == {"queue": "aggregate", "records_put_back": 2}
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    data = [r["Data"] for r in kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]]
    assert data == [b"record 0", b"record 1", b"record 2", b"record 1", b"record 2"]
