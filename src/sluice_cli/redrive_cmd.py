"""``sluice redrive``: send what a dead-letter queue holds back through the pipeline, once its cause is fixed.

- ``ingest``: the upload events the Start function could not start (each also has a FAILED run
  record saying so) go back to the ingest queue; a duplicate of an event that did start is harmless
  (one execution per upload).
- ``aggregate``: the aggregator's dead-letter queue holds *where* records failed (shard and sequence
  range), not the records: they are read back from the stream (while it retains them, 24 h by
  default) and put on it again, for the aggregator to fold once the cause (e.g. a contract) is fixed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sluice.errors import SluiceError
from sluice_cli.connection import Connection, add_target_arguments, connect

BATCH = 10


def register(subparsers: Any) -> None:
    """Add ``redrive``."""
    p = subparsers.add_parser(
        "redrive",
        help="send a dead-letter queue's messages back: ingest (upload events) or aggregate (stream records)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("queue", choices=("ingest", "aggregate"))
    add_target_arguments(p)
    p.add_argument("--max", type=int, default=10_000, help="at most this many messages (default 10,000)")
    p.set_defaults(func=run)


def _drain(sqs: Any, queue_url: str, most: int) -> Any:
    """Messages of the queue, a batch at a time, until it is empty or `most` were handed out."""
    handed = 0
    while handed < most:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(BATCH, most - handed), WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            return
        handed += len(messages)
        yield from messages


def redrive_ingest(conn: Connection, most: int) -> int:
    """Move the ingest DLQ's messages to the ingest queue; returns how many."""
    sqs = conn.client("sqs")
    dlq, queue = conn.resource("IngestDeadLetterQueue"), conn.resource("IngestQueue")
    moved = 0
    for message in _drain(sqs, dlq, most):
        sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        moved += 1
    return moved


def redrive_aggregate(conn: Connection, most: int) -> int:
    """Put the stream records the aggregate DLQ points at back on the stream; returns how many records."""
    sqs, kinesis = conn.client("sqs"), conn.client("kinesis")
    dlq, stream = conn.resource("AggregateDeadLetterQueue"), conn.resource("AggregatesStream")
    put = 0
    for message in _drain(sqs, dlq, most):
        info = json.loads(message["Body"]).get("KinesisBatchInfo") or {}
        if not info.get("shardId") or not info.get("startSequenceNumber"):
            raise SluiceError(f"message {message['MessageId']} of the aggregate DLQ names no shard and sequence")
        iterator = kinesis.get_shard_iterator(
            StreamName=stream,
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=int(info.get("batchSize") or 1))["Records"]
        last = info.get("endSequenceNumber")
        wanted = [r for r in records if last is None or int(r["SequenceNumber"]) <= int(last)]
        if not wanted:
            raise SluiceError(
                f"the records of shard {info['shardId']} from {info['startSequenceNumber']} are gone from the stream "
                "(past its retention): they cannot be redriven"
            )
        kinesis.put_records(
            StreamName=stream, Records=[{"PartitionKey": r["PartitionKey"], "Data": r["Data"]} for r in wanted]
        )
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        put += len(wanted)
    return put


def run(args: argparse.Namespace) -> int:
    """Redrive one dead-letter queue; print what was sent back."""
    conn = connect(args)
    if args.queue == "ingest":
        print(json.dumps({"queue": "ingest", "events_sent_back": redrive_ingest(conn, args.max)}))
    else:
        print(json.dumps({"queue": "aggregate", "records_put_back": redrive_aggregate(conn, args.max)}))
    return 0
