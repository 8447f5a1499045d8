"""Aggregate handler against moto: stream records -> tumbling window -> exact items in DynamoDB."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from sluice.adapters.aggregates_table import DynamoAggregateStore
from sluice.aggregates.reads import parse_time, read_aggregates
from sluice.aggregates.windows import Window, WindowState
from sluice.contracts import contract_by_name, load_contract
from sluice_cli.main import main
from tests.functional.test_publish import orders, publish_event, stream_records, write_partials
from tests.template_stack import deploy

ROOT = Path(__file__).resolve().parents[2]
MAX_RETRIES = 3


def kinesis_event(shard: str, records: list[dict], state: dict | None, *, final: bool = False) -> dict:
    """A tumbling-window Kinesis event as Lambda sends it (see events/kinesis.json)."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["key"],
                    "sequenceNumber": r["seq"],
                    "data": base64.b64encode(r["data"]).decode(),
                    "approximateArrivalTimestamp": 1795407960.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{r['seq']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/aggregate",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/aggregates",
            }
            for r in records
        ],
        "window": {"start": "2026-11-23T10:06:00Z", "end": "2026-11-23T10:07:00Z"},
        "state": state or {},
        "shardId": shard,
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/aggregates",
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": False,
    }


def deliver(aggregate: Callable[[dict], dict], records: list[dict], batch: int = 4) -> list[str]:
    """Drive the handler like the event-source mapping: one window per shard; returns DLQ'd sequence numbers."""
    dead: list[str] = []
    for shard in sorted({r["shard"] for r in records}):
        mine = [r for r in records if r["shard"] == shard]
        state: dict | None = None
        pos, failures = 0, 0
        while pos < len(mine):
            response = aggregate(kinesis_event(shard, mine[pos : pos + batch], state))
            assert set(response) == {"state", "batchItemFailures"}
            state = json.loads(json.dumps(response["state"]))
            failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
            if not failed:
                pos += batch
                continue
            pos = next(i for i, r in enumerate(mine) if r["seq"] == min(failed, key=int))
            failures += 1
            if failures > MAX_RETRIES:  # retries exhausted: the on-failure destination gets it
                dead.append(mine[pos]["seq"])
                pos, failures = pos + 1, 0
        assert aggregate(kinesis_event(shard, [], state, final=True)) == {"state": {}, "batchItemFailures": []}
    return dead


def items(table: str) -> list[dict]:
    return boto3.resource("dynamodb").Table(table).scan()["Items"]


def duckdb_truth(table: pa.Table) -> dict[tuple[str, str], dict]:
    """The ground truth: a DuckDB GROUP BY over the rows themselves."""
    con = duckdb.connect()
    con.register("truth_rows", table)
    rows = con.execute("""
        select strftime(to_timestamp(floor(epoch(ordered_at) / 3600) * 3600) at time zone 'UTC',
                        '%Y-%m-%dT%H:%M:%SZ') as bucket,
               country, count(*), sum(amount), min(amount), max(amount), sum(quantity),
               count(distinct customer_id)
        from truth_rows group by all
    """).fetchall()
    return {
        (b, c): {
            "count": n,
            "sum": Decimal(s),
            "min": Decimal(lo),
            "max": Decimal(hi),
            "quantity": Decimal(q),
            "customers": d,
        }
        for b, c, n, s, lo, hi, q, d in rows
    }


@pytest.fixture
def aggregate(handler_of):
    return handler_of("AggregateFunction")


def test_published_runs_row_events_and_a_poison_record_end_exact(aws, handler_of, aggregate):
    publish = handler_of("PublishFunction")
    run_a, run_b = orders(45), orders(30, countries=("DE", "ES"), offset=100)
    write_partials(aws, "run-a", run_a)
    write_partials(aws, "run-b", run_b)
    publish(publish_event(aws, "run-a", key="orders/a.csv"))
    publish(publish_event(aws, "run-b", key="orders/b.csv"))
    handler_of("PublishFunction")(publish_event(aws, "run-a", key="orders/a.csv"))  # re-published by a cold start
    kinesis = boto3.client("kinesis")
    external = orders(3, countries=("FR",), offset=500)
    for row in external.to_pylist():
        event = {
            "dataset": "orders",
            "rows": [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if k in ("amount", "unit_price") else v)
                    for k, v in row.items()
                }
            ],
        }
        kinesis.put_record(StreamName=aws["AggregatesStream"], PartitionKey="orders#FR", Data=json.dumps(event))
    poison = kinesis.put_record(StreamName=aws["AggregatesStream"], PartitionKey="x", Data=b"\x00 not json")
    kinesis.put_record(
        StreamName=aws["AggregatesStream"],
        PartitionKey="orders#FR",
        Data=json.dumps(
            {
                "dataset": "orders",
                "rows": [
                    {
                        "ordered_at": "2026-11-02T05:00:00Z",
                        "customer_id": "C-0001",
                        "country": "FR",
                        "quantity": 1,
                        "amount": "12.345",
                    }
                ],
            }
        ),
    )  # too many decimals

    records = stream_records(aws["AggregatesStream"])
    dead = deliver(aggregate, records)

    assert dead[0] == poison["SequenceNumber"] and len(dead) == 2
    truth = duckdb_truth(pa.concat_tables([run_a, run_b, external]))
    stored = {
        (i["bucket_start"], i["group"]["country"]): i for i in items(aws["AggregatesTable"]) if i["kind"] == "aggregate"
    }
    assert set(stored) == set(truth)
    for key, want in truth.items():
        item = stored[key]
        assert item["count"] == want["count"], key
        assert item["measures"]["amount"] == {
            "n": want["count"],
            "sum": want["sum"],
            "min": want["min"],
            "max": want["max"],
        }, key
        assert item["measures"]["quantity"] == {"n": want["count"], "sum": want["quantity"]}, key
        assert item["distinct"]["customer_id"] == want["customers"] and item["distinct_exact"]["customer_id"]
        assert item["pk"] == "AGG#orders#3600" and item["sk"] == f'{key[0]}#["{key[1]}"]'
        assert item["gsi1pk"] == f'AGG#orders#3600#["{key[1]}"]' and item["gsi1sk"] == key[0]


def test_a_replayed_final_invocation_adds_nothing(aws, aggregate):
    sample = json.loads((ROOT / "events/kinesis.json").read_text().replace("${AggregatesStream}", "s"))
    response = aggregate(sample)
    assert response["batchItemFailures"] == [] and response["state"]["folded"] == 2
    final = dict(sample, Records=[], state=response["state"], isFinalInvokeForWindow=True)
    assert aggregate(final) == {"state": {}, "batchItemFailures": []}
    first = {i["sk"]: i for i in items(aws["AggregatesTable"]) if i["kind"] == "aggregate"}
    assert aggregate(final) == {"state": {}, "batchItemFailures": []}  # the final invocation retried
    again = {i["sk"]: i for i in items(aws["AggregatesTable"]) if i["kind"] == "aggregate"}
    assert again == first
    [item] = first.values()
    assert item["count"] == 3  # two orders in the sample's partial, one row event
    assert item["measures"]["amount"]["sum"] == Decimal("168.24")
    assert item["distinct"]["customer_id"] == 2


def test_reads_give_back_exact_values(aws, aggregate):
    sample = json.loads((ROOT / "events/kinesis.json").read_text().replace("${AggregatesStream}", "s"))
    aggregate(dict(sample, isFinalInvokeForWindow=True))
    store = DynamoAggregateStore(aws["AggregatesTable"])
    [row] = read_aggregates(store, "orders")
    assert row.to_json()["measures"]["amount"] == {"n": 3, "sum": "168.24", "min": "15.00", "max": "133.34"}
    assert row.bucket_start == "2026-11-02T04:00:00Z" and row.group == {"country": "DE"}
    assert read_aggregates(store, "orders", since=parse_time("2026-11-02T05:00:00Z")) == []
    assert read_aggregates(store, "orders", until=parse_time("2026-11-02T04:00:00Z")) == []
    assert read_aggregates(store, "sales") == []
    assert store.query_group("orders", 3600, '["DE"]')[0]["count"] == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_prints_aggregates_as_json(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    capsys.readouterr()  # the server's start-up line
    try:
        endpoint = f"http://127.0.0.1:{port}"
        session = boto3.session.Session(region_name="us-east-1")
        resources = deploy(session.client("cloudformation", endpoint_url=endpoint), types=("AWS::DynamoDB::Table",))
        table = resources["AggregatesTable"]
        store = DynamoAggregateStore(table, client=session.client("dynamodb", endpoint_url=endpoint))
        orders_contract = load_contract(ROOT / "contracts/orders.yaml")
        window = Window(WindowState("shardId-0"), store, partial(contract_by_name, contracts=[orders_contract]))
        sample = json.loads((ROOT / "events/kinesis.json").read_text())
        for r in sample["Records"]:
            window.handle(r["kinesis"]["sequenceNumber"], base64.b64decode(r["kinesis"]["data"]))
        window.close(final=True)

        assert main(["aggregates", "--endpoint", endpoint, "--table", table, "--json", "--dataset", "orders"]) == 0
        [printed] = json.loads(capsys.readouterr().out)
        assert printed["count"] == 3 and printed["measures"]["amount"]["sum"] == "168.24"
        assert printed["bucket_end"] == "2026-11-02T05:00:00Z"
        assert main(["aggregates", "--endpoint", endpoint, "--table", table, "--since", "2026-11-02T05:00Z"]) == 0
        assert "aggregates" in capsys.readouterr().out
    finally:
        server.stop()
