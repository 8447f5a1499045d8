"""Run records: what the runs table holds about each run, and superseding older versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.payloads import FailureInput, TransformResult, ValidateResult
from sluice.ports import ObjectStore, RunTable
from sluice.uris import split_uri

RUNNING, SUCCEEDED, FAILED, SUPERSEDED = "RUNNING", "SUCCEEDED", "FAILED", "SUPERSEDED"
MAX_LISTED_OUTPUTS = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _expiry(retention_days: int, moment: datetime) -> int:
    return int((moment + timedelta(days=retention_days)).timestamp())


def source_uri(source: Mapping[str, Any]) -> str:
    """``s3://bucket/key`` of a run's raw object (the ``by-source`` index key)."""
    return f"s3://{source['bucket']}/{source['key']}"


def _identity(result: ValidateResult | TransformResult, status: str) -> dict[str, Any]:
    """The fields every record of a run that passed Validate starts with."""
    return {
        "run_id": result["run_id"],
        "dataset": result["dataset"],
        "status": status,
        "contract_version": result["contract_version"],
        "source_uri": source_uri(result["source"]),
        "source": dict(result["source"]),
    }


def started_record(result: ValidateResult, retention_days: int) -> dict[str, Any]:
    """The RUNNING record Validate writes once the contract accepted the file."""
    now = _now()
    return {
        **_identity(result, RUNNING),
        "bytes_in": result["source"].get("size"),
        "mode": result["mode"],
        "started_at": result["started_at"],
        "updated_at": _iso(now),
        "expires_at": _expiry(retention_days, now),
    }


def succeeded_record(result: TransformResult, manifest: Mapping[str, Any], retention_days: int) -> dict[str, Any]:
    """The SUCCEEDED record Summarize writes: counts, bytes, schema, timings, outputs."""
    now = _now()
    started = datetime.fromisoformat(result["started_at"])
    outputs = [o["uri"] for o in manifest.get("outputs", [])]
    return {
        **_identity(result, SUCCEEDED),
        "rows_in": result["rows_in"],
        "rows_out": result["rows_out"],
        "rows_rejected": result["rows_rejected"],
        "bytes_in": result["bytes_in"],
        "bytes_out": result["bytes_out"],
        "output_files": result["output_files"],
        "outputs": outputs if len(outputs) <= MAX_LISTED_OUTPUTS else None,
        "partitions": sorted(
            {
                "/".join(f"{k}={v}" for k, v in o["partition"].items())
                for o in manifest.get("outputs", [])
                if o.get("partition")
            }
        )[:MAX_LISTED_OUTPUTS],
        "schema": manifest.get("schema"),
        "rejects_by_rule": manifest.get("rejects_by_rule") or None,
        "blank_lines": manifest.get("blank_lines"),
        "manifest_uri": result["manifest_uri"],
        "quarantine_uri": result.get("quarantine_uri"),
        "transform_ms": result["duration_ms"],
        "started_at": result["started_at"],
        "finished_at": _iso(now),
        "duration_ms": int((now - started).total_seconds() * 1000),
        "updated_at": _iso(now),
        "expires_at": _expiry(retention_days, now),
    }


def failure_reason(error: Mapping[str, str]) -> tuple[str, str]:
    """``(error type, message)`` from the ``{"Error", "Cause"}`` Step Functions caught."""
    kind = error.get("Error", "Unknown")
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return kind, cause
    if isinstance(parsed, dict):
        return str(parsed.get("errorType", kind)), str(parsed.get("errorMessage", cause))
    return kind, cause


def failed_record(failure: FailureInput, previous: Mapping[str, Any] | None, retention_days: int) -> dict[str, Any]:
    """The FAILED record: whatever was known of the run, plus the error and its reason."""
    now = _now()
    kind, message = failure_reason(failure["error"])
    record: dict[str, Any] = dict(previous or {})
    source = failure.get("source") or record.get("source")
    record.update(
        {
            "run_id": failure["run_id"],
            "dataset": failure.get("dataset") or record.get("dataset") or "unknown",
            "status": FAILED,
            "error_type": kind,
            "reason": message[:4000],
            "started_at": record.get("started_at") or failure.get("started_at") or _iso(now),
            "finished_at": _iso(now),
            "updated_at": _iso(now),
            "expires_at": _expiry(retention_days, now),
        }
    )
    if source:
        record["source"] = dict(source)
        record["source_uri"] = source_uri(source)
    return record


def supersede_older_versions(current: Mapping[str, Any], runs: RunTable, store: ObjectStore) -> list[str]:
    """Delete curated files of earlier versions of the same raw key, now that `current` succeeded.

    Returns the run ids marked SUPERSEDED. Files the current run wrote are never touched.
    """
    mine = set(current.get("outputs") or [])
    superseded = []
    for old in runs.runs_by_source(current["source_uri"]):
        if old["run_id"] == current["run_id"] or old.get("status") != SUCCEEDED:
            continue
        if str(old.get("started_at", "")) > str(current.get("started_at", "")):
            continue  # a newer version landed meanwhile: it supersedes us, not the reverse
        uris = old.get("outputs")
        if uris is None and old.get("manifest_uri"):
            uris = [o["uri"] for o in store.get_json(old["manifest_uri"]).get("outputs", [])]
        by_bucket: dict[str, list[str]] = {}
        for uri in uris or []:
            if uri not in mine:
                bucket, key = split_uri(uri)
                by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            store.delete_keys(bucket, keys)
        runs.put_run({**old, "status": SUPERSEDED, "superseded_by": current["run_id"], "updated_at": _iso(_now())})
        superseded.append(old["run_id"])
    return superseded
