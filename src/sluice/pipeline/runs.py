"""Run records: what the runs table holds about each run, and the states a run moves through."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.pipeline.manifest import RunManifest, output_uris
from sluice.pipeline.payloads import FailureInput, TransformResult, ValidateResult

# Run states (docs/commit-protocol.md draws them): what a record says is what readers see.
RUNNING = "RUNNING"  # validating or converting; output staged where no reader looks
FAILED = "FAILED"  # failed before the commit; nothing of it was ever visible
COMMITTING = "COMMITTING"  # the commit decided: this is the key's live version; files being published
COMMITTED = "COMMITTED"  # output visible, previous version retired; aggregates not (yet) published
SUCCEEDED = "SUCCEEDED"  # committed and its aggregates published
SUPERSEDED = "SUPERSEDED"  # a newer version of the key is live (its files retired, or never published)
LIVE = (COMMITTING, COMMITTED, SUCCEEDED)  # states whose curated files are owned by a commit
MAX_LISTED_OUTPUTS = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _expiry(retention_days: int, moment: datetime) -> int:
    return int((moment + timedelta(days=retention_days)).timestamp())


def head_id(source_uri: str) -> str:
    """Runs-table id of the commit head of raw key `source_uri` (see :mod:`sluice.pipeline.commit`)."""
    return f"key#{source_uri}"


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


def summary_fields(result: TransformResult, manifest: RunManifest) -> dict[str, Any]:
    """Counts, bytes, schema, outputs and timings of a converted run (its record from the commit on)."""
    outputs = output_uris(manifest.outputs)
    return {
        **_identity(result, RUNNING),
        "rows_in": result["rows_in"],
        "rows_out": result["rows_out"],
        "rows_rejected": result["rows_rejected"],
        "bytes_in": result["bytes_in"],
        "bytes_out": result["bytes_out"],
        "output_files": result["output_files"],
        "outputs": outputs if len(outputs) <= MAX_LISTED_OUTPUTS else None,
        "partitions": manifest.partitions[:MAX_LISTED_OUTPUTS],
        "schema": manifest.schema,
        "rejects_by_rule": manifest.rejects_by_rule or None,
        "blank_lines": manifest.blank_lines,
        "manifest_uri": result["manifest_uri"],
        "quarantine_uri": result.get("quarantine_uri"),
        "transform_ms": result["duration_ms"],
        "started_at": result["started_at"],
        "rows_unprojected": result.get("rows_unprojected"),
        "warnings": result.get("warnings"),
    }


def expiry(status: str, retention_days: int, moment: datetime | None = None) -> int | None:
    """``expires_at`` (DynamoDB TTL) of a record entering `status`: none while the run owns visible data.

    A COMMITTING, COMMITTED or SUCCEEDED record is what proves its curated files are committed
    (cleanup deletes files whose run is FAILED or SUPERSEDED), so it never expires; the others
    expire `retention_days` after they end.
    """
    return None if status in LIVE else _expiry(retention_days, moment or _now())


def finished(record: Mapping[str, Any], status: str, retention_days: int, **extra: Any) -> dict[str, Any]:
    """`record` moved to `status` now: ``finished_at``, ``duration_ms``, ``updated_at``, its expiry (none if live)."""
    now = _now()
    started = datetime.fromisoformat(str(record.get("started_at") or _iso(now)))
    return {
        **record,
        **extra,
        "status": status,
        "finished_at": _iso(now),
        "duration_ms": int((now - started).total_seconds() * 1000),
        "updated_at": _iso(now),
        "expires_at": expiry(status, retention_days, now),
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


def failed_step(failure: Mapping[str, object]) -> str:
    """The state that failed, read off the payload it left (each state adds its own fields)."""
    if "commit" in failure:
        return "Publish"
    if "manifest_uri" in failure:
        return "Summarize"
    if "plan" in failure:
        return "TransformRanges/Merge"
    if "mode" in failure:
        return "Plan" if failure["mode"] == "fanout" else "Transform"
    return "Validate"


def failed_record(failure: FailureInput, previous: Mapping[str, Any] | None, retention_days: int) -> dict[str, Any]:
    """The record of a run whose execution failed, with the error and its reason.

    A run that failed before its commit becomes FAILED. A run already past the commit decision
    (COMMITTING, COMMITTED, SUCCEEDED, SUPERSEDED) keeps its state: its data stays as committed,
    and the error is recorded as ``error_type``/``reason`` beside it (``failed_step`` says
    where), so that nothing, cleanup included, mistakes committed output for a failed run's.
    """
    now = _now()
    kind, message = failure_reason(failure["error"])
    record: dict[str, Any] = dict(previous or {})
    committed = record.get("status") in (*LIVE, SUPERSEDED)
    source = failure.get("source") or record.get("source")
    record.update(
        {
            "run_id": failure["run_id"],
            "dataset": failure.get("dataset") or record.get("dataset") or "unknown",
            "status": record["status"] if committed else FAILED,
            "error_type": kind,
            "reason": message[:4000],
            "started_at": record.get("started_at") or failure.get("started_at") or _iso(now),
            "updated_at": _iso(now),
            "expires_at": expiry(record["status"] if committed else FAILED, retention_days, now),
        }
    )
    if not committed:
        record["finished_at"] = _iso(now)
    record["failed_step"] = failed_step(failure)
    if source:
        record["source"] = dict(source)
        record["source_uri"] = source_uri(source)
    return record
