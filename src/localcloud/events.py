"""The event shapes Lambda's pollers and EventBridge hand to functions, built from API responses."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

_SQS_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def iso(ts: float, *, millis: bool = False) -> str:
    """UTC ISO-8601 with a ``Z`` (``2020-12-09T07:04:00Z`` or ``...00.123Z``)."""
    moment = datetime.fromtimestamp(ts, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if millis else f"{text}Z"


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of an SQS event from a ``ReceiveMessage`` message."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in _SQS_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _sqs_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _sqs_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def kinesis_record(
    record: Mapping[str, Any], shard_id: str, stream_arn: str, region: str, role_arn: str
) -> dict[str, Any]:
    """One ``Records`` entry of a Kinesis event from a ``GetRecords`` record."""
    arrival = record["ApproximateArrivalTimestamp"]
    seq = str(record["SequenceNumber"])
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": seq,
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": round(arrival.timestamp(), 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def kinesis_window_event(
    records: Sequence[Mapping[str, Any]],
    *,
    window: tuple[float, float],
    state: Mapping[str, Any],
    shard_id: str,
    stream_arn: str,
    final: bool,
    terminated_early: bool,
) -> dict[str, Any]:
    """A ``KinesisTimeWindowEvent``: records plus the tumbling window's bounds and state."""
    return {
        "Records": list(records),
        "window": {"start": iso(window[0]), "end": iso(window[1])},
        "state": dict(state),
        "shardId": shard_id,
        "eventSourceARN": stream_arn,
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": terminated_early,
    }


def kinesis_failure_record(
    *,
    function_arn: str,
    condition: str,
    invoke_count: int,
    function_error: str | None,
    shard_id: str,
    records: Sequence[Mapping[str, Any]],
    stream_arn: str,
) -> dict[str, Any]:
    """The invocation record Lambda sends to an ``OnFailure`` destination for a discarded batch."""
    first, last = records[0]["kinesis"], records[-1]["kinesis"]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso(datetime.now(UTC).timestamp(), millis=True),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["sequenceNumber"],
            "endSequenceNumber": last["sequenceNumber"],
            "approximateArrivalOfFirstRecord": iso(first["approximateArrivalTimestamp"], millis=True),
            "approximateArrivalOfLastRecord": iso(last["approximateArrivalTimestamp"], millis=True),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def eventbridge_event(
    detail_type: str,
    source: str,
    detail: dict[str, Any],
    *,
    region: str,
    account: str,
    resources: list[str],
    now: float | None = None,
) -> dict[str, Any]:
    """An EventBridge event: the envelope every rule target receives, around `detail`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": iso(datetime.now(UTC).timestamp() if now is None else now),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def scheduled_event(
    rule_arn: str, region: str, account: str, now: float | None = None, detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """EventBridge's ``Scheduled Event`` for a rule (`detail`: empty, as a schedule sends it, unless given)."""
    return eventbridge_event(
        "Scheduled Event",
        "aws.events",
        dict(detail or {}),
        region=region,
        account=account,
        resources=[rule_arn],
        now=now,
    )


def object_created_event(
    bucket: str, key: str, head: Mapping[str, Any], region: str, account: str, *, now: float | None = None
) -> dict[str, Any]:
    """EventBridge's ``Object Created`` event of the object version `head` (a HeadObject response) describes."""
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": key,
            "size": int(head.get("ContentLength", 0)),
            "etag": str(head.get("ETag", "")).strip('"'),
            "version-id": head.get("VersionId"),
        },
        "reason": "PutObject",
    }
    return eventbridge_event(
        "Object Created",
        "aws.s3",
        detail,
        region=region,
        account=account,
        resources=[f"arn:aws:s3:::{bucket}"],
        now=now,
    )
