"""Tumbling-window counter: counts records per partition key; a "poison" record is reported failed.

Counts only the records before the first failure (the rest is redelivered), and writes the window's
totals at its final invocation.
"""

import base64
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RESULTS_TABLE"])


def handler(event, context):
    state = dict(event.get("state") or {})
    if event.get("isFinalInvokeForWindow"):
        assert not event["Records"], "final invocation carries no records"
        key = f"window#{event['shardId']}#{event['window']['start']}#{context.aws_request_id}"
        table.put_item(
            Item={"pk": key, "counts": state, "early": event["isWindowTerminatedEarly"], "end": event["window"]["end"]}
        )
        return {"state": {}}
    for record in event["Records"]:
        data = base64.b64decode(record["kinesis"]["data"]).decode()
        if data == "poison":
            return {"state": state, "batchItemFailures": [{"itemIdentifier": record["kinesis"]["sequenceNumber"]}]}
        pk = record["kinesis"]["partitionKey"]
        state[pk] = state.get(pk, 0) + 1
    return {"state": state, "batchItemFailures": []}
