"""Run records and superseding earlier versions of a raw key."""

import json
from datetime import UTC, datetime, timedelta

from sluice.cleanup import clean, run_of_output
from sluice.contracts import load_contracts
from sluice.runs import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    SUPERSEDED,
    failed_record,
    succeeded_record,
    supersede_older_versions,
)
from tests.fakes import MemoryRunTable, MemoryStore

CONTRACTS = load_contracts("contracts")
SOURCE = {"bucket": "raw", "key": "orders/a.csv", "version_id": "v1", "etag": "e1", "size": 10}


def transform_result(run_id: str, started_at: str) -> dict:
    return {
        "run_id": run_id,
        "dataset": "orders",
        "contract_version": 1,
        "source": SOURCE,
        "started_at": started_at,
        "rows_in": 10,
        "rows_out": 8,
        "rows_rejected": 2,
        "bytes_in": 100,
        "bytes_out": 50,
        "output_files": 1,
        "manifest_uri": f"s3://work/runs/{run_id}/manifest.json",
        "quarantine_uri": "s3://q/orders/r/",
        "duration_ms": 5,
    }


def landed(store: MemoryStore, runs: MemoryRunTable, run_id: str, started_at: str) -> dict:
    key = f"orders/order_date=2026-11-01/{run_id}-0.parquet"
    store.put("curated", key, b"parquet")
    manifest = {
        "outputs": [{"uri": f"s3://curated/{key}", "rows": 8, "bytes": 7, "partition": {"order_date": "2026-11-01"}}],
        "schema": [["order_id", "string"]],
        "rejects_by_rule": {"country.in": 2},
        "blank_lines": 0,
    }
    store.put_json("work", f"runs/{run_id}/manifest.json", manifest)
    record = succeeded_record(transform_result(run_id, started_at), manifest, 90)
    runs.put_run(record)
    return record


def test_succeeded_record_carries_counts_schema_outputs_and_ttl():
    record = succeeded_record(
        transform_result("r1", "2026-11-01T00:00:00+00:00"),
        {"outputs": [{"uri": "s3://c/k", "partition": {"d": "1"}}], "schema": [["a", "int64"]]},
        retention_days=7,
    )
    assert record["status"] == SUCCEEDED
    assert (record["rows_in"], record["rows_out"], record["rows_rejected"]) == (10, 8, 2)
    assert record["outputs"] == ["s3://c/k"] and record["partitions"] == ["d=1"]
    assert record["source_uri"] == "s3://raw/orders/a.csv"
    assert record["expires_at"] > datetime.now(UTC).timestamp() + 6 * 86400


def test_failed_record_keeps_what_was_known_and_the_reason():
    previous = {"run_id": "r1", "status": RUNNING, "started_at": "2026-11-01T00:00:00", "bytes_in": 5}
    cause = json.dumps({"errorType": "InputRejectedError", "errorMessage": "header does not match", "stackTrace": []})
    record = failed_record(
        {"run_id": "r1", "source": SOURCE, "error": {"Error": "InputRejectedError", "Cause": cause}}, previous, 90
    )
    assert record["status"] == FAILED
    assert record["error_type"] == "InputRejectedError"
    assert record["reason"] == "header does not match"
    assert record["started_at"] == "2026-11-01T00:00:00" and record["bytes_in"] == 5
    plain = failed_record({"run_id": "r2", "error": {"Error": "States.Timeout", "Cause": "took too long"}}, None, 90)
    assert (plain["error_type"], plain["reason"], plain["dataset"]) == ("States.Timeout", "took too long", "unknown")


def test_new_version_supersedes_the_old_one_only_after_success():
    store, runs = MemoryStore(), MemoryRunTable()
    old = landed(store, runs, "orders-a-old", "2026-11-01T00:00:00+00:00")
    new = landed(store, runs, "orders-a-new", "2026-11-02T00:00:00+00:00")
    assert supersede_older_versions(new, runs, store) == ["orders-a-old"]
    assert runs.get_run("orders-a-old")["status"] == SUPERSEDED
    assert ("curated", old["outputs"][0].split("/", 3)[3]) not in store.objects
    assert ("curated", new["outputs"][0].split("/", 3)[3]) in store.objects


def test_an_older_run_finishing_late_does_not_supersede_a_newer_one():
    store, runs = MemoryStore(), MemoryRunTable()
    newer = landed(store, runs, "orders-a-new", "2026-11-02T00:00:00+00:00")
    late = landed(store, runs, "orders-a-old", "2026-11-01T00:00:00+00:00")
    assert supersede_older_versions(late, runs, store) == []
    assert runs.get_run(newer["run_id"])["status"] == SUCCEEDED


def test_cleanup_removes_orphans_after_grace_and_fails_stuck_runs():
    store, runs = MemoryStore(), MemoryRunTable()
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    old = now - timedelta(days=1)
    owned = landed(store, runs, "orders-a-ok", "2026-11-01T00:00:00+00:00")
    store.modified = dict.fromkeys(store.modified, old)
    store.put("curated", "orders/order_date=2026-11-01/orders-a-failed-0.parquet", b"x", old)
    store.put("curated", "orders/order_date=2026-11-01/orders-a-fresh-0.parquet", b"x", now)
    store.put("curated", "orders/_README.txt", b"x", old)
    runs.put_run({"run_id": "orders-a-failed", "status": FAILED, "started_at": "2026-11-01T00:00:00+00:00"})
    runs.put_run({"run_id": "stuck", "status": RUNNING, "started_at": (now - timedelta(hours=5)).isoformat()})
    runs.put_run({"run_id": "busy", "status": RUNNING, "started_at": (now - timedelta(minutes=5)).isoformat()})
    report = clean(CONTRACTS, store, runs, "curated", now=now)
    assert report.orphans_deleted == ["s3://curated/orders/order_date=2026-11-01/orders-a-failed-0.parquet"]
    assert ("curated", owned["outputs"][0].split("/", 3)[3]) in store.objects
    assert ("curated", "orders/order_date=2026-11-01/orders-a-fresh-0.parquet") in store.objects
    assert report.stuck_runs_failed == ["stuck"]
    assert runs.get_run("stuck")["status"] == FAILED and runs.get_run("busy")["status"] == RUNNING


def test_run_of_output():
    assert run_of_output("orders/d=1/orders-a-0123abcd-0.parquet") == "orders-a-0123abcd"
    assert run_of_output("orders/notes.txt") is None
