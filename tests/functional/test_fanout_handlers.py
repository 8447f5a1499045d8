"""Plan, Transform (byte ranges) and Merge handlers against moto: the fan-out chain the Distributed Map drives."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import fanout_data

RUN = {"run_id": "fanout-t-0001", "dataset": fanout_data.DATASET, "received_at": "2026-11-23T10:00:00.000+00:00"}


@pytest.fixture
def handlers(aws: dict[str, str], handler_of: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The pipeline's handlers with tiny fan-out settings and the fanout_orders contract."""
    loaded = {
        "validate": handler_of("ValidateFunction", FANOUT_THRESHOLD_BYTES="10000"),
        "plan": handler_of("PlanFunction", FANOUT_RANGE_BYTES="8000", FANOUT_MAX_CONCURRENCY="3"),
        "transform": handler_of("TransformFunction"),
        "merge": handler_of("MergeFunction"),
        "summarize": handler_of("SummarizeFunction"),
    }
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "fanout_orders.yaml").write_text(fanout_data.CONTRACT_YAML, encoding="utf-8")
    monkeypatch.setenv("CONTRACTS_DIR", str(contracts))
    from sluice import settings

    settings.settings.cache_clear()
    settings.contracts.cache_clear()
    return loaded


def upload(aws: dict[str, str], key: str, data: bytes) -> dict[str, Any]:
    version = boto3.client("s3").put_object(Bucket=aws["RawBucket"], Key=key, Body=data)["VersionId"]
    return {"bucket": aws["RawBucket"], "key": key, "version_id": version}


def items_of(planned: dict[str, Any]) -> list[dict[str, Any]]:
    """What the Distributed Map hands each child: the ItemSelector of statemachines/pipeline.asl.json."""
    plan = planned["plan"]
    ranges = json.loads(boto3.client("s3").get_object(Bucket=plan["bucket"], Key=plan["key"])["Body"].read())
    fields = ("run_id", "dataset", "contract_version", "source", "started_at")
    return [{**{k: planned[k] for k in fields}, "plan": plan, "range": r} for r in ranges]


def keys(bucket: str, prefix: str = "") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def rows_of_run(bucket: str, run_id: str, prefix: str = f"{fanout_data.DATASET}/") -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    files = [k for k in keys(bucket, prefix) if f"/{run_id}-" in k]
    tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in files]
    return sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_plan_ranges_merge_is_the_single_worker_run(aws, handlers):
    data = fanout_data.orders_csv(800)
    source = upload(aws, "fanout_orders/big.csv", data)
    validated = handlers["validate"]({**RUN, "source": source})
    assert validated["mode"] == "fanout"

    planned = handlers["plan"](validated)
    assert planned["plan"]["ranges"] >= 4 and planned["plan"]["max_concurrency"] == 3
    assert {k: planned[k] for k in validated} == validated
    items = items_of(planned)
    results = [handlers["transform"](item) for item in reversed(items)]
    for result in results:
        assert set(result) == {"run_id", "index", "rows_in", "rows_out", "rows_rejected", "lines", "part_uri"}
    assert sum(r["rows_in"] for r in results) == 800
    assert len(keys(aws["WorkBucket"], f"parts/{RUN['run_id']}/")) > len(items)

    merged = handlers["merge"](planned)
    summary = handlers["summarize"](merged)
    assert summary["rows_in"] == 800 and merged["output_files"] > len(items)

    single = handlers["transform"]({**validated, "run_id": "single-t-0001", "mode": "single"})
    for key in ("rows_in", "rows_out", "rows_rejected", "bytes_in"):
        assert merged[key] == single[key], key
    fanned = [k for k in keys(aws["CuratedBucket"]) if f"/{RUN['run_id']}-" in k]
    indexes = {int(k.rsplit("-", 1)[-1].removesuffix(".parquet")) for k in fanned}
    assert len(indexes) > 1 and indexes <= {item["range"]["index"] for item in items}
    staged_single = rows_of_run(aws["WorkBucket"], "single-t-0001", "staging/single-t-0001/")  # not committed
    assert rows_of_run(aws["CuratedBucket"], RUN["run_id"]) == staged_single
    dataset = fanout_data.DATASET
    s3 = boto3.client("s3")
    quarantine = {
        run_id: s3.get_object(Bucket=aws["QuarantineBucket"], Key=f"{dataset}/{run_id}/rejected.csv")["Body"].read()
        for run_id in (RUN["run_id"], "single-t-0001")
    }
    assert quarantine[RUN["run_id"]] == quarantine["single-t-0001"]
    assert keys(aws["WorkBucket"], f"parts/{RUN['run_id']}/") == []

    again = handlers["merge"](planned)
    assert {**again, "duration_ms": 0} == {**merged, "duration_ms": 0}
