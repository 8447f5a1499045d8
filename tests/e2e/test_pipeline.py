"""A CSV dropped into the raw bucket comes out as Parquet, a run summary and quarantined rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()
BAD_ORDER_IDS = {"O-910001", "O-910002", "O-910003", "O-910004", "O-910005"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def good_rows(data: bytes) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return [r for r in rows if r["order_id"] not in BAD_ORDER_IDS]


def test_file_lands_as_partitioned_parquet_with_summary_and_quarantine(pipeline: Pipeline) -> None:
    key = "orders/e2e/orders-2026-11-01.csv"
    pipeline.upload(key, SAMPLE)
    pipeline.settle()
    run = pipeline.run_of(key)
    assert run["status"] == "SUCCEEDED", run
    expected = good_rows(SAMPLE)
    assert run["rows_in"] == len(expected) + len(BAD_ORDER_IDS)
    assert (run["rows_out"], run["rows_rejected"]) == (len(expected), len(BAD_ORDER_IDS))
    assert run["bytes_in"] == len(SAMPLE)

    table = pipeline.read_parquet(run["outputs"])
    assert table.num_rows == run["rows_out"]
    assert sorted(table.column("order_id").to_pylist()) == sorted(r["order_id"] for r in expected)
    by_id = {r["order_id"]: r for r in table.to_pylist()}
    for row in expected[:20]:
        got = by_id[row["order_id"]]
        assert str(got["amount"]) == row["amount"] and got["country"] == row["country"]
        assert got["quantity"] == int(row["quantity"])
    for uri in run["outputs"]:
        assert "/order_date=2026-11-0" in uri and uri.endswith(".parquet") and run["run_id"] in uri

    prefix = f"orders/{run['run_id']}/"
    assert pipeline.keys(pipeline.quarantine, prefix) == [prefix + "rejected.csv", prefix + "report.json"]
    s3 = pipeline.s3
    rejected = s3.get_object(Bucket=pipeline.quarantine, Key=prefix + "rejected.csv")["Body"].read().decode()
    quarantined = list(csv.DictReader(io.StringIO(rejected)))
    assert {r["_text"].split(",")[0] for r in quarantined} == BAD_ORDER_IDS
    lines = SAMPLE.decode().splitlines()
    for r in quarantined:
        assert lines[int(r["_line"]) - 1] == r["_text"], "quarantine keeps the original text and its line"
    assert {r["_rule"] for r in quarantined} >= {"country.in", "quantity.min", "row.fields"}
    report = json.loads(s3.get_object(Bucket=pipeline.quarantine, Key=prefix + "report.json")["Body"].read())
    assert sum(report["rejects_by_rule"].values()) == len(BAD_ORDER_IDS)
    assert s3.get_object(Bucket=pipeline.raw, Key=key)["Body"].read() == SAMPLE


def test_same_bytes_uploaded_twice_are_two_runs_and_one_copy(pipeline: Pipeline) -> None:
    key = "orders/e2e/twice.csv"
    pipeline.upload(key, SAMPLE)
    pipeline.settle()
    first = pipeline.run_of(key)
    pipeline.upload(key, SAMPLE)
    pipeline.settle()
    runs = {r["run_id"]: r["status"] for r in pipeline.runs_of(key)}
    assert len(runs) == 2 and runs[first["run_id"]] == "SUPERSEDED"
    curated = [k for k in pipeline.keys(pipeline.curated, "orders/") if any(r in k for r in runs)]
    assert curated and all(first["run_id"] not in k for k in curated), "one copy: the newer upload's"


def test_new_content_supersedes_previous_version_after_success(pipeline: Pipeline) -> None:
    key = "orders/e2e/versioned.csv"
    pipeline.upload(key, SAMPLE)
    pipeline.settle()
    first = pipeline.run_of(key)
    smaller = b"\n".join(SAMPLE.split(b"\n")[:50]) + b"\n"
    pipeline.upload(key, smaller)
    pipeline.settle()
    runs = {r["run_id"]: r for r in pipeline.runs_of(key)}
    assert runs[first["run_id"]]["status"] == "SUPERSEDED"
    second = next(r for r in runs.values() if r["status"] == "SUCCEEDED")
    assert runs[first["run_id"]]["superseded_by"] == second["run_id"]
    curated = pipeline.keys(pipeline.curated, "orders/")
    assert not [k for k in curated if first["run_id"] in k], "old version's files must be gone"
    assert [k for k in curated if second["run_id"] in k]


@pytest.mark.parametrize(
    ("key", "data", "error_type", "reason"),
    [
        (
            "orders/e2e/bad-header.csv",
            (ROOT / "samples/orders/orders-bad-header.csv").read_bytes(),
            "InputRejectedError",
            'missing "customer_id"',
        ),
        ("inbox/e2e/unknown.csv", b"id,name\n1,a\n", "UnknownDatasetError", "no dataset contract matches"),
        ("orders/e2e/empty.csv", b"", "InputRejectedError", "empty"),
        (
            "orders/e2e/latin1.csv",
            SAMPLE.replace(b"order_id", b"order_\xe9d", 1),
            "InputRejectedError",
            "not valid utf-8",
        ),
    ],
)
def test_bad_input_is_a_recorded_failure_and_the_raw_object_is_kept(
    pipeline: Pipeline, key: str, data: bytes, error_type: str, reason: str
) -> None:
    pipeline.upload(key, data)
    pipeline.settle()
    run = pipeline.run_of(key)
    assert run["status"] == "FAILED"
    assert run["error_type"] == error_type
    assert reason in run["reason"] and key in run["reason"]
    assert pipeline.s3.get_object(Bucket=pipeline.raw, Key=key)["Body"].read() == data
    assert not [k for k in pipeline.keys(pipeline.curated, "") if run["run_id"] in k]
    execution = next(e for e in pipeline.executions() if e["name"] == run["run_id"])
    assert execution["status"] == "FAILED"


def test_cleanup_tick_runs_the_scheduled_function(pipeline: Pipeline) -> None:
    [result] = pipeline.cloud.tick()
    assert result.function_error is None, result.payload
    assert result.payload["files_checked"] >= 1
    assert result.payload["orphans_deleted"] == []


@pytest.mark.parametrize(
    "key", ["orders/keys/a+b.csv", "orders/keys/pct%41.csv", "orders/keys/with space.csv", "orders/keys/zoë=1/../x.csv"]
)
def test_keys_load_exactly_as_uploaded(pipeline: Pipeline, key: str) -> None:
    """Fails if the Start function decodes EventBridge keys (a+b.csv would run for "a b.csv" and 404)."""
    small = b"\n".join(SAMPLE.split(b"\n")[:11]) + b"\n"
    pipeline.upload(key, small)
    pipeline.settle()
    run = pipeline.run_of(key)
    assert run["status"] == "SUCCEEDED", run
    assert run["source"]["key"] == key and run["rows_in"] == 10


def test_a_one_mib_header_ends_in_a_failed_run_with_a_cut_reason(pipeline: Pipeline) -> None:
    """Fails if the error's text travels whole in the state payload (256 KiB): the run would vanish."""
    key = "orders/e2e/wide-header.csv"
    header = SAMPLE.split(b"\n", 1)[0] + b"," + b",".join(b"extra_column_%06d" % i for i in range(55_000))
    assert len(header) > 1 << 20
    pipeline.upload(key, header + b"\n" + b",".join([b"x"] * 55_009) + b"\n")
    pipeline.settle()
    run = pipeline.run_of(key)
    assert (run["status"], run["error_type"], run["failed_step"]) == ("FAILED", "InputRejectedError", "Validate")
    assert "extra_column_000000" in run["reason"] and len(run["reason"]) <= 4000
