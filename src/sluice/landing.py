"""Transform step: land one raw object as curated Parquet, quarantine and run manifest.

Nothing is half-written: Parquet files are staged locally and uploaded only once the whole file
converted; names derive from the run id, so a retry overwrites instead of duplicating.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from sluice.aggregates import PartialAggregator
from sluice.contracts import Contract
from sluice.errors import RejectThresholdError
from sluice.payloads import TransformResult, ValidateResult
from sluice.ports import ObjectStore
from sluice.preflight import describe
from sluice.transform import ConvertResult, convert
from sluice.uris import s3_uri


def manifest_key(run_id: str) -> str:
    """Work-bucket key of a run's manifest."""
    return f"runs/{run_id}/manifest.json"


def quarantine_prefix(dataset: str, run_id: str) -> str:
    """Quarantine-bucket prefix of a run's rejected rows and report."""
    return f"{dataset}/{run_id}/"


def land_run(
    run: ValidateResult,
    contract: Contract,
    store: ObjectStore,
    *,
    curated_bucket: str,
    quarantine_bucket: str,
    work_bucket: str,
    staging_root: Path,
) -> TransformResult:
    """Convert the run's raw object and publish every output; returns pointers and counts."""
    began = time.monotonic()
    source = run["source"]
    run_id = run["run_id"]
    staging = staging_root / run_id
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    aggregator = PartialAggregator(contract, run_id) if contract.aggregates else None
    try:
        with store.open(source["bucket"], source["key"], source.get("version_id")) as body:
            try:
                result = convert(
                    body,
                    contract,
                    run_id=run_id,
                    source_name=describe(source),
                    staging_dir=staging,
                    observers=[aggregator] if aggregator else [],
                )
            except RejectThresholdError as exc:
                raise _with_published_quarantine(
                    exc, staging, store, quarantine_bucket, quarantine_prefix(contract.dataset, run_id)
                ) from exc
        quarantine_uri = _publish_quarantine(
            result, store, quarantine_bucket, quarantine_prefix(contract.dataset, run_id)
        )
        outputs = []
        for out in result.outputs:
            store.upload_file(out.path, curated_bucket, out.key, "application/vnd.apache.parquet")
            outputs.append(
                {
                    "uri": s3_uri(curated_bucket, out.key),
                    "rows": out.rows,
                    "bytes": out.bytes,
                    "partition": out.partition,
                }
            )
        partials_uri = None
        if aggregator is not None:
            partials_uri = store.put_json(work_bucket, f"runs/{run_id}/partials.json", aggregator.records())
        manifest: dict[str, Any] = {
            **result.to_summary(),
            "run_id": run_id,
            "dataset": contract.dataset,
            "contract_version": contract.version,
            "source": dict(source),
            "outputs": outputs,
            "quarantine_uri": quarantine_uri,
            "partials_uri": partials_uri,
        }
        manifest_uri = store.put_json(work_bucket, manifest_key(run_id), manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    landed = TransformResult(
        run_id=run_id,
        dataset=contract.dataset,
        contract_version=contract.version,
        source=source,
        started_at=run["started_at"],
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        rows_rejected=result.rows_rejected,
        bytes_in=result.bytes_in,
        bytes_out=result.bytes_out,
        output_files=len(result.outputs),
        manifest_uri=manifest_uri,
        quarantine_uri=quarantine_uri,
        duration_ms=int((time.monotonic() - began) * 1000),
    )
    if partials_uri:
        landed["partials_uri"] = partials_uri
    return landed


def _with_published_quarantine(
    exc: RejectThresholdError, staging: Path, store: ObjectStore, bucket: str, prefix: str
) -> RejectThresholdError:
    """Upload the quarantine a refused run left for diagnosis; the error then points at it."""
    message = str(exc)
    for path in sorted((staging / "_quarantine").glob("*")):
        store.upload_file(path, bucket, prefix + path.name)
        message = message.replace(str(path), s3_uri(bucket, prefix + path.name))
    return RejectThresholdError(message)


def _publish_quarantine(result: ConvertResult, store: ObjectStore, bucket: str, prefix: str) -> str | None:
    if not result.rows_rejected:
        return None
    if result.rejected_path is not None:
        store.upload_file(result.rejected_path, bucket, prefix + "rejected.csv", "text/csv")
    if result.report_path is not None:
        store.upload_file(result.report_path, bucket, prefix + "report.json", "application/json")
    return s3_uri(bucket, prefix)
