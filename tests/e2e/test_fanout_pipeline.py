"""Huge files: Plan -> Distributed Map over byte ranges -> Merge, on the local cloud's real ASL engine.

A second local cloud runs with tiny fan-out thresholds (template parameters) and a contract
without ``unique`` columns (contracts with them never fan out). Every fanned-out run must give
exactly what the single-worker engine (``convert``) gives on the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from localcloud.remote import RemoteCloud
from sluice.aggregates.partials import PartialAggregator
from sluice.engine.transform import convert
from sluice.pipeline.preflight import describe
from sluice_cli.connection import Connection
from tests import fanout_data
from tests.e2e.conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
RANGE_BYTES = 40_000
PARAMETERS = {"FanoutThresholdBytes": "20000", "FanoutRangeBytes": str(RANGE_BYTES), "FanoutMaxConcurrency": "4"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def fanout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A local cloud with fan-out above 20 kB in ranges of 40 kB, and the fanout_orders contract."""
    project = tmp_path_factory.mktemp("fanout-project")
    for entry in ROOT.iterdir():  # the project as is, except its contracts directory
        if entry.name not in ("contracts", ".sluice", ".git"):
            (project / entry.name).symlink_to(entry)
    (project / "contracts").mkdir()
    for contract in (ROOT / "contracts").glob("*.yaml"):
        shutil.copy(contract, project / "contracts" / contract.name)
    (project / "contracts" / "fanout_orders.yaml").write_text(fanout_data.CONTRACT_YAML, encoding="utf-8")
    cloud = RemoteCloud.spawn(
        project,
        log_dir=ROOT / ".sluice" / "test-logs" / "fanout",
        workers_per_function=4,
        stack_name="sluice-fanout",
        parameters=PARAMETERS,
    )
    try:
        yield Pipeline(cloud, Connection(cloud.endpoint, cloud.resources))
    finally:
        cloud.stop()


def history(pipeline: Pipeline, run_id: str) -> list[dict[str, Any]]:
    sfn = pipeline.conn.client("stepfunctions")
    arn = next(e["executionArn"] for e in pipeline.executions() if e["name"] == run_id)
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events += page["events"]
    return events


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def get(pipeline: Pipeline, bucket: str, key: str) -> bytes:
    return bytes(pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def single_worker(data: bytes, run: dict[str, Any], tmp_path: Path) -> tuple[Any, PartialAggregator]:
    """The reference: the engine on the same bytes in this process, with the run's names."""
    contract = fanout_data.contract()
    aggregator = PartialAggregator(contract, run["run_id"])
    result = convert(
        io.BytesIO(data),
        contract,
        run_id=run["run_id"],
        source_name=describe(run["source"]),
        staging_dir=tmp_path / "single",
        observers=[aggregator],
    )
    return result, aggregator


def sorted_rows(tables: list[Any]) -> list[dict[str, Any]]:
    rows = [r for t in tables for r in t.to_pylist()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_huge_file_fans_out_and_yields_exactly_the_single_worker_rows(fanout: Pipeline, tmp_path: Path) -> None:
    data = fanout_data.orders_csv(3000, newline="\r\n", blank_every=211)
    key = "fanout_orders/2026/orders-big.csv"
    fanout.upload(key, data)
    fanout.settle()
    run = fanout.run_of(key)
    assert run["status"] == "SUCCEEDED", run
    run_id = run["run_id"]

    entered = states_entered(history(fanout, run_id))
    assert entered[:4] == ["Validate", "Route", "Plan", "TransformRanges"]
    assert "Merge" in entered and "Transform" not in entered
    work = fanout.conn.resource("WorkBucket")
    ranges = json.loads(get(fanout, work, f"plans/{run_id}/ranges.json"))
    assert len(ranges) >= 4 and len(ranges) == -(-len(data) // RANGE_BYTES)
    assert ranges[-1]["end"] == len(data)
    assert all(data[r["start"] - 2 : r["start"]] == b"\r\n" for r in ranges), "ranges start on lines"
    assert fanout.keys(work, f"parts/{run_id}/") == [], "staged parts are removed once merged"

    expected, aggregator = single_worker(data, run, tmp_path)
    counts = ("rows_in", "rows_out", "rows_rejected", "bytes_in")
    assert {k: run[k] for k in counts} == {k: getattr(expected, k) for k in counts}
    assert run["rows_rejected"] > 100 and run["blank_lines"] == expected.blank_lines > 0
    assert run["rejects_by_rule"] == expected.rejects_by_rule

    curated = fanout.read_parquet(run["outputs"])
    assert sorted_rows([curated]) == sorted_rows([pq.read_table(o.path) for o in expected.outputs])
    indexes = {uri.rsplit("-", 1)[-1].removesuffix(".parquet") for uri in run["outputs"]}
    assert len(indexes) >= 4 and all(f"/{run_id}-" in uri for uri in run["outputs"])

    prefix = f"{fanout_data.DATASET}/{run_id}/"
    assert expected.rejected_path is not None and expected.report_path is not None
    rejected = get(fanout, fanout.quarantine, prefix + "rejected.csv")
    assert rejected == expected.rejected_path.read_bytes(), "same rejected rows, physical _line numbers, messages"
    lines = data.decode().split("\r\n")
    for row in csv.DictReader(io.StringIO(rejected.decode(), newline="")):
        assert lines[int(row["_line"]) - 1] == row["_text"], row
    report = json.loads(get(fanout, fanout.quarantine, prefix + "report.json"))
    assert report == json.loads(expected.report_path.read_text(encoding="utf-8"))

    partials = json.loads(get(fanout, work, f"runs/{run_id}/partials.json"))
    assert partials == aggregator.records()


def test_threshold_applies_to_the_whole_file(fanout: Pipeline) -> None:
    data = fanout_data.orders_csv(1500, bad_every=4, seed=11)  # ~22 % bad; the contract allows 20 %
    key = "fanout_orders/2026/too-many-rejects.csv"
    fanout.upload(key, data)
    fanout.settle()
    run = fanout.run_of(key)
    assert run["status"] == "FAILED" and run["error_type"] == "RejectThresholdError", run
    assert "max_reject_ratio 0.2" in run["reason"] and "report.json" in run["reason"]
    assert not any(run["run_id"] in k for k in fanout.keys(fanout.curated, f"{fanout_data.DATASET}/"))
    prefix = f"{fanout_data.DATASET}/{run['run_id']}/"
    assert fanout.keys(fanout.quarantine, prefix) == [prefix + "rejected.csv", prefix + "report.json"]
    assert fanout.keys(fanout.conn.resource("WorkBucket"), f"parts/{run['run_id']}/") == []


def test_a_range_that_fails_fails_the_run(fanout: Pipeline) -> None:
    data = fanout_data.with_quoted_line_break(
        1500, 700
    )  # the contract forbids line breaks in values: the file is refused
    key = "fanout_orders/2026/broken-quote.csv"
    fanout.upload(key, data)
    fanout.settle()
    run = fanout.run_of(key)
    assert run["status"] == "FAILED", run
    # AWS fails the map run (no tolerated failures); moto's Distributed Map swallows item failures,
    # so Merge finds the missing part and refuses to publish a run with a hole in it.
    assert run["error_type"] in ("FanoutIncompleteError", "States.ExceedToleratedFailureThreshold"), run
    assert not any(run["run_id"] in k for k in fanout.keys(fanout.curated, f"{fanout_data.DATASET}/"))


def test_small_files_of_the_same_dataset_stay_on_one_worker(fanout: Pipeline) -> None:
    data = fanout_data.orders_csv(100)
    assert len(data) < int(PARAMETERS["FanoutThresholdBytes"])
    key = "fanout_orders/2026/small.csv"
    fanout.upload(key, data)
    fanout.settle()
    run = fanout.run_of(key)
    assert run["status"] == "SUCCEEDED", run
    entered = states_entered(history(fanout, run["run_id"]))
    assert "Transform" in entered and "Plan" not in entered
    assert all(uri.endswith(f"{run['run_id']}-0.parquet") for uri in run["outputs"])
