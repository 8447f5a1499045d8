"""Run records: summaries, failures, and the run a file name belongs to."""

import json
from datetime import UTC, datetime

import pytest

from sluice.pipeline.layout import run_of_output, run_of_staged
from sluice.pipeline.manifest import RunManifest
from sluice.pipeline.runs import (
    COMMITTED,
    FAILED,
    RUNNING,
    SUPERSEDED,
    failed_record,
    failed_step,
    finished,
    summary_fields,
)

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


def test_summary_and_finished_record_carry_counts_schema_outputs_and_ttl():
    manifest = RunManifest.from_json(
        {
            "run_id": "r1",
            "dataset": "orders",
            "contract_version": 1,
            "source": SOURCE,
            "rows_in": 10,
            "rows_out": 8,
            "rows_rejected": 2,
            "bytes_in": 100,
            "bytes_out": 50,
            "outputs": [
                {
                    "uri": "s3://c/k",
                    "staged_uri": "s3://w/staging/r1/k",
                    "rows": 8,
                    "bytes": 50,
                    "partition": {"d": "1"},
                }
            ],
            "schema": [["a", "int64"]],
        }
    )
    fields = summary_fields(transform_result("r1", "2026-11-01T00:00:00+00:00"), manifest)
    record = finished(fields, COMMITTED, retention_days=7)
    assert record["status"] == COMMITTED
    assert (record["rows_in"], record["rows_out"], record["rows_rejected"]) == (10, 8, 2)
    assert record["outputs"] == ["s3://c/k"] and record["partitions"] == ["d=1"]
    assert record["source_uri"] == "s3://raw/orders/a.csv"
    assert record["expires_at"] is None, "a committed record proves its files are committed: it never expires"
    superseded = finished(fields, SUPERSEDED, retention_days=7)
    assert superseded["expires_at"] > datetime.now(UTC).timestamp() + 6 * 86400
    assert record["duration_ms"] > 0 and record["finished_at"] > record["started_at"]


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
    assert (record["failed_step"], plain["failed_step"]) == ("Validate", "Validate")


@pytest.mark.parametrize(
    ("payload", "step"),
    [
        ({"mode": "single"}, "Transform"),
        ({"mode": "fanout"}, "Plan"),
        ({"mode": "fanout", "plan": {}}, "TransformRanges/Merge"),
        ({"manifest_uri": "s3://w/m"}, "Summarize"),
        ({"manifest_uri": "s3://w/m", "commit": {}}, "Publish"),
    ],
)
def test_the_failed_step_is_read_off_the_payload(payload, step):
    assert failed_step({"run_id": "r", "error": {}, **payload}) == step


def test_run_of_output():
    assert run_of_output("orders/d=1/orders-a-0123abcd-0.parquet") == "orders-a-0123abcd"
    assert run_of_output("orders/notes.txt") is None
    assert run_of_staged("staging/orders-a-1/orders/d=1/orders-a-1-0.parquet") == "orders-a-1"
    assert run_of_staged("runs/orders-a-1/manifest.json") is None


def test_long_error_messages_are_cut_so_payloads_stay_small():
    from sluice.errors import MAX_MESSAGE, InputRejectedError

    header = ",".join(f"column_{i}" for i in range(100_000))
    error = InputRejectedError(f"s3://raw/orders/wide.csv line 1: unexpected columns: {header}")
    assert len(str(error)) < MAX_MESSAGE + 100
    assert str(error).startswith("s3://raw/orders/wide.csv line 1: unexpected columns: column_0,column_1")
    assert str(error).endswith("more characters cut]")
    assert str(InputRejectedError("short")) == "short"
