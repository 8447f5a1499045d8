"""Real-time aggregates stay exact end to end: duplicates, a retried publish, new versions, poison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sluice.aggregates.records import prepare_publication, source_id
from sluice.pipeline.commit import publication_order
from sluice.pipeline.publication import stream_entries
from sluice_cli.aggregates_cmd import fetch_aggregates
from sluice_cli.query_cmd import query
from tests.e2e.conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DAY1 = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()
DAY2 = (ROOT / "samples/orders/orders-2026-11-02.csv").read_bytes()

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GROUND_TRUTH = """
select cast(floor(epoch(ordered_at) / 3600) * 3600 as bigint) as bucket, country,
       count(*) as n, sum(amount) as amount, min(amount) as lo, max(amount) as hi,
       sum(quantity) as quantity, count(distinct customer_id) as customers
from orders group by all
"""


def streamed(pipeline: Pipeline) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = fetch_aggregates(pipeline.conn, dataset="orders")
    out = {}
    for r in rows:
        if r.values.count == 0:
            continue
        amount, quantity = r.values.measures["amount"], r.values.measures["quantity"]
        out[(str(r.bucket_start), str(r.group["country"]))] = (
            r.values.count,
            Decimal(str(amount.sum)),
            Decimal(str(amount.min)),
            Decimal(str(amount.max)),
            Decimal(str(quantity.sum)),
            r.values.distinct["customer_id"].estimate(),
        )
    return out


def curated(pipeline: Pipeline) -> dict[tuple[str, str], tuple[Any, ...]]:
    _, rows = query(pipeline.conn, GROUND_TRUTH)
    return {
        (datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), country): (
            n,
            Decimal(str(amount)),
            Decimal(str(lo)),
            Decimal(str(hi)),
            Decimal(str(quantity)),
            customers,
        )
        for bucket, country, n, amount, lo, hi, quantity, customers in rows
    }


def test_aggregates_equal_a_group_by_over_the_parquet_under_duplicates_and_retries(pipeline: Pipeline) -> None:
    pipeline.upload("orders/agg/day1.csv", DAY1)
    pipeline.upload("orders/agg/day2.csv", DAY2)
    pipeline.upload("orders/agg/day2-copy.csv", DAY2.replace(b"O-02", b"O-92"))
    pipeline.settle()
    pipeline.upload("orders/agg/day1.csv", DAY1)  # same bytes again: a new run replaces the old one's aggregates
    # a new, shorter version of a key: its old contribution must be withdrawn
    pipeline.upload("orders/agg/day2-copy.csv", b"\n".join(DAY2.replace(b"O-02", b"O-92").split(b"\n")[:60]) + b"\n")
    pipeline.settle()

    # a Publish retried by Step Functions (same input) must not count twice
    run = pipeline.run_of("orders/agg/day2.csv")
    manifest = json.loads(
        pipeline.s3.get_object(Bucket=pipeline.conn.resource("WorkBucket"), Key=f"runs/{run['run_id']}/manifest.json")[
            "Body"
        ].read()
    )
    publish_input = {
        "run_id": run["run_id"],
        "dataset": "orders",
        "contract_version": 1,
        "source": run["source"],
        "started_at": run["started_at"],
        "rows_in": run["rows_in"],
        "rows_out": run["rows_out"],
        "rows_rejected": run["rows_rejected"],
        "bytes_in": run["bytes_in"],
        "bytes_out": run["bytes_out"],
        "output_files": run["output_files"],
        "manifest_uri": run["manifest_uri"],
        "partials_uri": manifest["partials_uri"],
        "duration_ms": 1,
        "commit": {
            "status": "COMMITTED",
            "live_run_id": run["run_id"],
            "seq": run["commit_seq"],
            "retired_run_id": None,
            "published": run["output_files"],
            "retired": 0,
        },
    }
    for _ in range(2):
        result = pipeline.cloud.invoke("PublishFunction", publish_input)
        assert result.function_error is None, result.payload
    # ... and its records put again behind the idempotency guard's back (a lost PutRecords response)
    partials = json.loads(
        pipeline.s3.get_object(Bucket=pipeline.conn.resource("WorkBucket"), Key=f"runs/{run['run_id']}/partials.json")[
            "Body"
        ].read()
    )
    records = prepare_publication(
        partials,
        run_id=run["run_id"],
        contract_version=1,
        src=source_id(run["source"]["bucket"], run["source"]["key"]),
        order=publication_order(run["commit_seq"]),
        superseded=[],
    )
    entries = [{"PartitionKey": key, "Data": data} for key, data in stream_entries(records)]
    assert entries
    pipeline.conn.client("kinesis").put_records(StreamName=pipeline.conn.resource("AggregatesStream"), Records=entries)
    pipeline.settle()

    truth = curated(pipeline)
    assert truth, "the curated data is not empty"
    assert streamed(pipeline) == truth


def test_a_poison_record_goes_to_the_dlq_and_the_rest_is_aggregated(pipeline: Pipeline) -> None:
    kinesis = pipeline.conn.client("kinesis")
    stream = pipeline.conn.resource("AggregatesStream")
    good = {
        "dataset": "orders",
        "rows": [
            {
                "order_id": "O-999999",
                "ordered_at": "2031-01-01T10:15:00Z",
                "customer_id": "C-9999",
                "country": "GB",
                "channel": "web",
                "quantity": "2",
                "unit_price": "1.50",
                "amount": "3.00",
                "paid": "true",
            }
        ],
    }
    kinesis.put_records(
        StreamName=stream,
        Records=[
            {"Data": b"\xff not json", "PartitionKey": "poison"},
            {"Data": json.dumps(good).encode(), "PartitionKey": "good"},
        ],
    )
    pipeline.settle()
    sqs = pipeline.conn.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=pipeline.conn.resource("AggregateDeadLetterQueue"), MaxNumberOfMessages=10, WaitTimeSeconds=2
    ).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert bodies, "the poison record's batch info reached the on-failure destination"
    info = bodies[0]["KinesisBatchInfo"]
    assert info["shardId"] and info["startSequenceNumber"] and info["batchSize"] == 1
    records = pipeline.conn.client("kinesis")
    shard_iter = records.get_shard_iterator(
        StreamName=stream,
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    [poison, *_] = records.get_records(ShardIterator=shard_iter, Limit=1)["Records"]
    assert poison["Data"] == b"\xff not json"
    rows = [r for r in fetch_aggregates(pipeline.conn, dataset="orders") if str(r.bucket_start).startswith("2031")]
    assert [(r.group["country"], r.values.count) for r in rows] == [("GB", 1)]
