"""Publish handler against moto: partials from the work bucket land on the stream, once per run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from sluice.aggregates.partials import PartialAggregator
from sluice.aggregates.records import BATCH_BYTES, source_id
from sluice.contracts import load_contract
from sluice.engine.rules import contract_schema

ROOT = Path(__file__).resolve().parents[2]
ORDERS = load_contract(ROOT / "contracts/orders.yaml")
SCHEMA = contract_schema(ORDERS)
T0 = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)


def orders(n: int, *, countries=("DE", "FR", "NL"), hours: int = 3, offset: int = 0) -> pa.Table:
    rows = [
        {
            "order_id": f"O-{offset + i:06d}",
            "ordered_at": T0 + timedelta(minutes=(37 * i) % (60 * hours)),
            "customer_id": f"C-{i % 7:04d}",
            "country": countries[i % len(countries)],
            "channel": "web",
            "quantity": 1 + i % 4,
            "unit_price": Decimal("1.00"),
            "amount": Decimal(f"{i}.{i % 100:02d}"),
            "paid": True,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_partials(aws: dict[str, str], run_id: str, table: pa.Table) -> list[dict]:
    agg = PartialAggregator(ORDERS, run_id)
    agg(table)
    boto3.client("s3").put_object(
        Bucket=aws["WorkBucket"], Key=f"runs/{run_id}/partials.json", Body=json.dumps(agg.records()).encode()
    )
    return agg.records()


def publish_event(
    aws: dict[str, str], run_id: str, key: str = "orders/a.csv", *, seq: int = 1, retired: str | None = None
) -> dict:
    """Publish's input for `run_id`, committed as number `seq` of its key (its record says COMMITTED)."""
    event = json.loads((ROOT / "events/publish.json").read_text())
    commit = event["commit"] | {"live_run_id": run_id, "seq": seq, "retired_run_id": retired}
    text = json.dumps(event | {"run_id": run_id, "source": event["source"] | {"key": key}, "commit": commit})
    for logical, physical in aws.items():
        text = text.replace("${" + logical + "}", physical)
    event = json.loads(text)
    event["partials_uri"] = f"s3://{aws['WorkBucket']}/runs/{run_id}/partials.json"
    record = {"run_id": run_id, "status": "COMMITTED", "commit_seq": seq, "started_at": event["started_at"]}
    boto3.resource("dynamodb").Table(aws["RunsTable"]).put_item(Item=record)
    return event


def status_of(aws: dict[str, str], run_id: str) -> str:
    return str(boto3.resource("dynamodb").Table(aws["RunsTable"]).get_item(Key={"run_id": run_id})["Item"]["status"])


def stream_records(stream: str) -> list[dict]:
    """Every record on the stream: partition key, sequence number, decoded JSON."""
    kinesis = boto3.client("kinesis")
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            out.extend(
                {"shard": shard["ShardId"], "key": r["PartitionKey"], "seq": r["SequenceNumber"], "data": r["Data"]}
                for r in page["Records"]
            )
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return out


def partials_in(on_stream: list[dict]) -> list[dict]:
    """The partial records inside the stream's ``partials`` batches, in order."""
    out = []
    for r in on_stream:
        batch = json.loads(r["data"])
        assert batch["type"] == "partials" and len(r["data"]) <= BATCH_BYTES
        out.extend(batch["records"])
    return out


@pytest.fixture
def publish(handler_of):
    return handler_of("PublishFunction")


def test_partials_land_on_the_stream_once_per_run(aws, publish):
    partials = write_partials(aws, "run-a", orders(40))
    event = publish_event(aws, "run-a")
    result = publish(event)
    assert result == {**event, "records": len(partials), "withdrawn": 0, "stream_records": 1}

    on_stream = stream_records(aws["AggregatesStream"])
    assert len(on_stream) == 1, "one run's items travel in few records"
    decoded = partials_in(on_stream)
    assert [d["seq"] for d in decoded] == list(range(len(partials)))
    src = source_id(event["source"]["bucket"], "orders/a.csv")
    for record, partial in zip(decoded, partials, strict=True):
        assert record == partial | {
            "src": src,
            "ord": "c000000000001",  # the commit order decides which version of a key wins, not timing
        }
    assert {r["key"] for r in on_stream} == {f"orders#{src}"}

    assert status_of(aws, "run-a") == "SUCCEEDED"
    assert publish(event) == result  # a retried or redriven Publish: the idempotency record answers
    assert len(stream_records(aws["AggregatesStream"])) == 1
    stored = boto3.client("dynamodb").scan(TableName=aws["IdempotencyTable"])["Items"]
    assert [i["status"]["S"] for i in stored] == ["COMPLETED"]


def test_a_new_version_withdraws_what_the_old_one_had_and_it_no_longer_has(aws, publish):
    old = write_partials(aws, "run-v1", orders(30, countries=("DE", "US")))
    new = write_partials(aws, "run-v2", orders(30, countries=("DE",)))
    result = publish(publish_event(aws, "run-v2", seq=2, retired="run-v1"))
    withdrawn = {(p["bucket"], json.dumps(p["group"])) for p in old} - {
        (p["bucket"], json.dumps(p["group"])) for p in new
    }
    assert result["withdrawn"] == len(withdrawn) > 0
    assert result["records"] == len(new) + len(withdrawn)
    empty = partials_in(stream_records(aws["AggregatesStream"]))
    empty = [d for d in empty if d["count"] == 0]
    assert {(d["bucket"], json.dumps(d["group"])) for d in empty} == withdrawn
    assert {d["run_id"] for d in empty} == {"run-v2"}


def test_a_run_without_aggregates_publishes_nothing(aws, publish):
    event = publish_event(aws, "run-none")
    del event["partials_uri"]
    assert publish(event)["records"] == 0
    assert stream_records(aws["AggregatesStream"]) == []


def test_a_run_superseded_before_it_published_publishes_nothing(aws, publish):
    """Fails if Publish puts the records of a run a newer version already replaced."""
    write_partials(aws, "run-old", orders(20))
    event = publish_event(aws, "run-old")
    table = boto3.resource("dynamodb").Table(aws["RunsTable"])
    table.put_item(Item={"run_id": "run-old", "status": "SUPERSEDED", "superseded_by": "run-new", "commit_seq": 1})
    result = publish(event)
    assert (result["records"], result["skipped"]) == (0, "superseded by run run-new, whose publication replaces it")
    assert stream_records(aws["AggregatesStream"]) == []
    assert status_of(aws, "run-old") == "SUPERSEDED"
    late = publish_event(aws, "run-late")
    late["commit"] = {**late["commit"], "status": "SUPERSEDED", "seq": None, "live_run_id": "run-new"}
    assert publish(late)["records"] == 0
