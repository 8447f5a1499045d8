"""Transform step: land one raw object as curated Parquet, quarantine and run manifest.

Nothing is half-written: Parquet files are staged locally and uploaded only once the whole file
converted; names derive from the run id, so a retry overwrites instead of duplicating.

In a fan-out (:mod:`sluice.fanout`) each byte range is landed by :func:`land_range` as a *part*
in the work bucket (Parquet, quarantine, partial aggregates, and last the part manifest); Merge
publishes the parts as one run.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

from sluice.aggregates import PartialAggregator
from sluice.contracts import Contract
from sluice.csvsource import count_line_breaks
from sluice.errors import InputRejectedError, RejectThresholdError, TransientError
from sluice.payloads import RangeResult, RangeTask, TransformResult, ValidateResult
from sluice.ports import ObjectStore
from sluice.preflight import describe
from sluice.transform import ConvertOptions, ConvertResult, ProgressHook, convert
from sluice.uris import s3_uri


def manifest_key(run_id: str) -> str:
    """Work-bucket key of a run's manifest."""
    return f"runs/{run_id}/manifest.json"


def quarantine_prefix(dataset: str, run_id: str) -> str:
    """Quarantine-bucket prefix of a run's rejected rows and report."""
    return f"{dataset}/{run_id}/"


def parts_prefix(run_id: str) -> str:
    """Work-bucket prefix of everything the byte ranges of a fan-out run staged."""
    return f"parts/{run_id}/"


def part_prefix(run_id: str, index: int) -> str:
    """Work-bucket prefix of the files byte range `index` staged."""
    return f"parts/{run_id}/{index}/"


def part_manifest_key(run_id: str, index: int) -> str:
    """Work-bucket key of range `index`'s manifest (written last: its presence means the part is complete)."""
    return f"parts/{run_id}/{index}.json"


def range_output_key(key: str, run_id: str, index: int) -> str:
    """Curated key of a range's Parquet file: ``<run_id>-0.parquet`` becomes ``<run_id>-<index>.parquet``.

    Raises
    ------
    ValueError
        `key` is not a file of run `run_id`.

    """
    single = f"{run_id}-0.parquet"
    if key.rsplit("/", 1)[-1] != single:
        raise ValueError(f"{key!r} is not a Parquet file of run {run_id}")
    return f"{key[: -len(single)]}{run_id}-{index}.parquet"


def land_run(
    run: ValidateResult,
    contract: Contract,
    store: ObjectStore,
    *,
    curated_bucket: str,
    quarantine_bucket: str,
    work_bucket: str,
    staging_root: Path,
    progress: ProgressHook | None = None,
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
                    progress=progress,
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
    report = s3_uri(bucket, prefix + "report.json")
    if report not in message:
        message += f"; see {report}"
    return RejectThresholdError(message)


def _publish_quarantine(result: ConvertResult, store: ObjectStore, bucket: str, prefix: str) -> str | None:
    if not result.rows_rejected:
        return None
    if result.rejected_path is not None:
        store.upload_file(result.rejected_path, bucket, prefix + "rejected.csv", "text/csv")
    if result.report_path is not None:
        store.upload_file(result.report_path, bucket, prefix + "report.json", "application/json")
    return s3_uri(bucket, prefix)


class LineCounter(io.RawIOBase):
    """Pass a binary stream through, counting its bytes and line terminators (CR, LF, CRLF)."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.bytes = 0
        self.lines = 0
        self._after_cr = False

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read into `buffer` from the inner stream, counting what passes."""
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.bytes += n
            self.lines += count_line_breaks(data) - (1 if self._after_cr and data[:1] == b"\n" else 0)
            self._after_cr = data[-1:] == b"\r"
        return n


def land_range(
    task: RangeTask,
    contract: Contract,
    store: ObjectStore,
    *,
    work_bucket: str,
    staging_root: Path,
    progress: ProgressHook | None = None,
) -> RangeResult:
    """Convert one byte range of a fan-out into a part staged under ``parts/<run_id>/<index>/``.

    The range is read with one ranged GET and converted with the file's header; line numbers
    count from the range's first line (Merge shifts them). The reject threshold applies to the
    whole file, so Merge checks it, not the range. A retry first removes what an earlier attempt
    staged; the part manifest is written last.

    Raises
    ------
    InputRejectedError
        The range cannot be converted (e.g. a quote that never closes); the message names the range.
    TransientError
        The ranged GET returned fewer bytes than asked (retried by the state machine).

    """
    source, plan, rng = task["source"], task["plan"], task["range"]
    run_id, index, start, end = task["run_id"], rng["index"], rng["start"], rng["end"]
    prefix = part_prefix(run_id, index)
    store.delete_keys(work_bucket, [part_manifest_key(run_id, index)])
    store.delete_keys(work_bucket, [k for k, _, _ in store.list_keys(work_bucket, prefix)])
    staging = staging_root / f"{run_id}-part-{index}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    aggregator = PartialAggregator(contract, run_id) if contract.aggregates else None
    whole_file_threshold = contract.model_copy(update={"max_reject_ratio": 1.0})
    # one file per range (and partition): range_output_key renames it to the range's index
    options = ConvertOptions(header=tuple(plan["header"]), first_line=1, split_output=False)
    try:
        with store.open_range(source["bucket"], source["key"], start, end, source.get("version_id")) as body:
            counter = LineCounter(body)
            try:
                result = convert(
                    cast(BinaryIO, counter),
                    whole_file_threshold,
                    run_id=run_id,
                    source_name=describe(source),
                    staging_dir=staging,
                    observers=[aggregator] if aggregator else [],
                    options=options,
                    progress=progress,
                )
            except InputRejectedError as exc:
                raise InputRejectedError(
                    f"{exc} [byte range {index + 1} of {plan['ranges']}: bytes {start}-{end - 1} of the file; "
                    f"line numbers here count from the range's first line]"
                ) from exc
        if counter.bytes != end - start:
            raise TransientError(
                f"{describe(source)}: read {counter.bytes} of the {end - start} bytes of range {index}"
            )
        outputs = []
        for out in result.outputs:
            key = range_output_key(out.key, run_id, index)
            staged = f"{prefix}curated/{key}"
            store.upload_file(out.path, work_bucket, staged, "application/vnd.apache.parquet")
            outputs.append(
                {"key": key, "staged_key": staged, "rows": out.rows, "bytes": out.bytes, "partition": out.partition}
            )
        rejected_key = None
        if result.rejected_path is not None:
            rejected_key = prefix + "rejected.csv"
            store.upload_file(result.rejected_path, work_bucket, rejected_key, "text/csv")
        report_key = None
        if result.report_path is not None:
            report_key = prefix + "report.json"
            store.upload_file(result.report_path, work_bucket, report_key, "application/json")
        partials = None
        if aggregator is not None:
            partials = prefix + "partials.json"
            store.put_json(work_bucket, partials, aggregator.records())
        summary = result.to_summary()
        for local in ("outputs", "rejected_path", "report_path"):
            summary.pop(local)
        part = {
            **summary,
            "run_id": run_id,
            "index": index,
            "start": start,
            "end": end,
            "lines": counter.lines,
            "outputs": outputs,
            "rejected_key": rejected_key,
            "report_key": report_key,
            "partials_key": partials,
        }
        part_uri = store.put_json(work_bucket, part_manifest_key(run_id, index), part)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RangeResult(
        run_id=run_id,
        index=index,
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        rows_rejected=result.rows_rejected,
        lines=counter.lines,
        part_uri=part_uri,
    )
