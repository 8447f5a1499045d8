"""Landing: convert a raw object (or one byte range of it) and place everything it produced.

One routine, :func:`land`, runs the conversion and puts the Parquet files, the quarantine and
the partial aggregates where they belong; its callers only choose the destinations:

- :func:`land_run` (Transform, one worker): Parquet is *staged* in the work bucket
  (``staging/<run_id>/<curated key>``), where no reader looks; the commit
  (:mod:`sluice.pipeline.commit`) makes it visible. The quarantine goes to the quarantine bucket, and the
  run manifest (:class:`sluice.pipeline.manifest.RunManifest`) is written last.
- :func:`land_range` (Transform, one range of a fan-out): the same staging, with the range's
  quarantine and partials under ``parts/<run_id>/<index>/`` and its part manifest written last;
  Merge (:mod:`sluice.pipeline.fanout`) combines the parts into the run manifest.
- ``sluice convert`` lands a local file into a folder (:class:`LocalDir`).

Nothing is half-written: Parquet is encoded in a local staging folder and placed only once the
whole input converted; names derive from the run id, so a retry overwrites instead of
duplicating.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from sluice.aggregates.partials import PartialAggregator
from sluice.contracts import Contract
from sluice.engine.counts import counts_json
from sluice.engine.csvsource import count_line_breaks
from sluice.engine.partitioning import WriterOptions
from sluice.engine.transform import ConvertOptions, ConvertResult, ProgressHook, convert
from sluice.errors import InputRejectedError, RejectThresholdError, TransientError
from sluice.pipeline import layout
from sluice.pipeline.catalog import unprojected
from sluice.pipeline.manifest import OutputRef, RunManifest
from sluice.pipeline.payloads import RangeResult, RangeTask, SourceObject, TransformResult, ValidateResult
from sluice.pipeline.preflight import describe
from sluice.ports import ObjectStore
from sluice.uris import s3_uri

PARQUET = "application/vnd.apache.parquet"
_CONTENT_TYPES = {".csv": "text/csv", ".json": "application/json", ".parquet": PARQUET}


class Destination(Protocol):
    """Where landed files go: a prefix of a bucket, or a local folder."""

    def put_file(self, path: Path, name: str) -> str:
        """Place the finished local file `path` as `name`; returns where it now is (URI or path)."""
        ...

    def location(self, name: str = "") -> str:
        """Where `name` is (or would be) placed."""
        ...


@dataclass(frozen=True)
class S3Prefix:
    """A :class:`Destination` under ``s3://bucket/prefix``."""

    store: ObjectStore
    bucket: str
    prefix: str

    def put_file(self, path: Path, name: str) -> str:
        """Upload `path` to ``prefix + name`` (multipart when large)."""
        self.store.upload_file(path, self.bucket, self.prefix + name, _CONTENT_TYPES.get(Path(name).suffix))
        return self.location(name)

    def location(self, name: str = "") -> str:
        """``s3://bucket/prefix<name>``."""
        return s3_uri(self.bucket, self.prefix + name)


@dataclass(frozen=True)
class LocalDir:
    """A :class:`Destination` in a local folder (``sluice convert``)."""

    root: Path

    def put_file(self, path: Path, name: str) -> str:
        """Move `path` to ``root / name``."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        return str(target)

    def location(self, name: str = "") -> str:
        """The path ``root / name``."""
        return str(self.root / name) if name else str(self.root)


@dataclass(frozen=True)
class Landed:
    """What one landing produced, already placed at its destinations."""

    result: ConvertResult
    outputs: tuple[OutputRef, ...]
    rejected: str | None  # where rejected.csv went (None: nothing rejected)
    report: str | None  # where report.json went
    partials: list[dict[str, Any]] | None  # partial aggregates (None: the contract has none)


def land(
    body: BinaryIO,
    contract: Contract,
    *,
    run_id: str,
    source_name: str,
    work_dir: Path,
    parquet: Destination,
    published_as: Callable[[str], str],
    quarantine: Destination,
    rename: Callable[[str], str] = lambda key: key,
    options: ConvertOptions | None = None,
    progress: ProgressHook | None = None,
) -> Landed:
    """Convert `body` and place its Parquet (as ``rename(key)``) and quarantine; `work_dir` is emptied.

    `published_as` gives the URI a Parquet key will have once committed (readers' view).

    Raises
    ------
    RejectThresholdError
        Too many rows broke the contract: the quarantine is placed for diagnosis (the message
        points at it), no Parquet is.
    InputRejectedError
        The input cannot be converted; nothing is placed.

    """
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    aggregator = PartialAggregator(contract, run_id) if contract.aggregates else None
    try:
        try:
            result = convert(
                body,
                contract,
                run_id=run_id,
                source_name=source_name,
                staging_dir=work_dir,
                observers=[aggregator] if aggregator else [],
                options=options,
                progress=progress,
            )
        except RejectThresholdError as exc:
            raise _pointing_at_quarantine(exc, work_dir / "_quarantine", quarantine) from exc
        outputs = []
        for out in result.outputs:
            key = rename(out.key)
            staged = parquet.put_file(out.path, key)
            outputs.append(OutputRef(published_as(key), staged, out.rows, out.bytes, dict(out.partition)))
        rejected = report = None
        if result.rows_rejected and result.rejected_path is not None:
            rejected = quarantine.put_file(result.rejected_path, "rejected.csv")
        if result.rows_rejected and result.report_path is not None:
            report = quarantine.put_file(result.report_path, "report.json")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return Landed(result, tuple(outputs), rejected, report, aggregator.records() if aggregator else None)


def _pointing_at_quarantine(exc: RejectThresholdError, folder: Path, quarantine: Destination) -> RejectThresholdError:
    """Place the quarantine a refused conversion left; the error then points at it."""
    message = str(exc)
    for path in sorted(folder.glob("*")):
        placed = quarantine.put_file(path, path.name)
        message = message.replace(str(path), placed)
    report = quarantine.location("report.json")
    if report not in message:
        message += f"; see {report}"
    return RejectThresholdError(message)


def staging(store: ObjectStore, work_bucket: str, run_id: str) -> S3Prefix:
    """The destination of a run's Parquet until its commit."""
    return S3Prefix(store, work_bucket, layout.staging_prefix(run_id))


def curated_uri(curated_bucket: str) -> Callable[[str], str]:
    """Curated key -> the URI readers will see once the run commits."""
    return lambda key: s3_uri(curated_bucket, key)


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
    """Convert the run's raw object, stage its Parquet and write its manifest; returns pointers and counts."""
    began = time.monotonic()
    source, run_id = run["source"], run["run_id"]
    quarantine = S3Prefix(store, quarantine_bucket, layout.quarantine_prefix(contract.dataset, run_id))
    with store.open(source["bucket"], source["key"], source.get("version_id")) as body:
        landed = land(
            body,
            contract,
            run_id=run_id,
            source_name=describe(source),
            work_dir=layout.work_dir(staging_root, run_id),
            parquet=staging(store, work_bucket, run_id),
            published_as=curated_uri(curated_bucket),
            quarantine=quarantine,
            progress=progress,
        )
    partials_uri = None
    if landed.partials is not None:
        partials_uri = store.put_json(work_bucket, layout.partials_key(run_id), landed.partials)
    manifest = run_manifest(
        run_id,
        source,
        contract,
        landed,
        quarantine_uri=quarantine.location() if landed.rejected else None,
        partials_uri=partials_uri,
    )
    manifest_uri = store.put_json(work_bucket, layout.manifest_key(run_id), manifest.to_json())
    return manifest.result(manifest_uri, run["started_at"], int((time.monotonic() - began) * 1000))


def run_manifest(
    run_id: str,
    source: SourceObject,
    contract: Contract,
    landed: Landed,
    *,
    quarantine_uri: str | None,
    partials_uri: str | None,
) -> RunManifest:
    """The manifest of what one landing produced (a whole run, or one range of a fan-out)."""
    result = landed.result
    rows_unprojected, warnings = unprojected(contract, ((o.partition, o.rows) for o in landed.outputs))
    return RunManifest(
        run_id=run_id,
        dataset=contract.dataset,
        contract_version=contract.version,
        source=dict(source),
        **counts_json(result),
        outputs=landed.outputs,
        quarantine_uri=quarantine_uri,
        partials_uri=partials_uri,
        rows_unprojected=rows_unprojected,
        warnings=tuple(warnings),
    )


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
    curated_bucket: str,
    work_bucket: str,
    staging_root: Path,
    progress: ProgressHook | None = None,
) -> RangeResult:
    """Convert one byte range of a fan-out: Parquet staged like a run's, the rest under ``parts/<run_id>/<index>/``.

    The range is read with one ranged GET and converted with the file's header; line numbers
    count from the range's first line (Merge shifts them). The reject threshold applies to the
    whole file, so Merge checks it, not the range. A retry first removes what an earlier attempt
    left; the part manifest is written last.

    Raises
    ------
    InputRejectedError
        The range cannot be converted (e.g. a quote that never closes); the message names the range.
    TransientError
        The ranged GET returned fewer bytes than asked (retried by the state machine).

    """
    source, plan, rng = task["source"], task["plan"], task["range"]
    run_id, index, start, end = task["run_id"], rng["index"], rng["start"], rng["end"]
    _forget_part(store, work_bucket, run_id, index)
    part = S3Prefix(store, work_bucket, layout.part_prefix(run_id, index))
    whole_file_threshold = contract.model_copy(update={"max_reject_ratio": 1.0})
    # one file per range (and partition): range_output_key gives it the range's index
    options = ConvertOptions(
        header=tuple(plan["header"]), first_line=1, writer=WriterOptions(split_unpartitioned=False)
    )
    with store.open_range(source["bucket"], source["key"], start, end, source.get("version_id")) as body:
        counter = LineCounter(body)
        try:
            landed = land(
                cast(BinaryIO, counter),
                whole_file_threshold,
                run_id=run_id,
                source_name=describe(source),
                work_dir=layout.work_dir(staging_root, run_id, f"part-{int(index)}"),
                parquet=staging(store, work_bucket, run_id),
                published_as=curated_uri(curated_bucket),
                quarantine=part,
                rename=lambda key: layout.range_output_key(key, run_id, index),
                options=options,
                progress=progress,
            )
        except InputRejectedError as exc:
            raise InputRejectedError(
                f"{exc} [byte range {index + 1} of {plan['ranges']}: bytes {start}-{end - 1} of the file; "
                f"line numbers here count from the range's first line]"
            ) from exc
    if counter.bytes != end - start:
        raise TransientError(f"{describe(source)}: read {counter.bytes} of the {end - start} bytes of range {index}")
    partials = None
    if landed.partials is not None:
        partials = layout.part_prefix(run_id, index) + "partials.json"
        store.put_json(work_bucket, partials, landed.partials)
    result = landed.result
    manifest = {
        **run_manifest(run_id, source, contract, landed, quarantine_uri=None, partials_uri=None).to_json(),
        "index": index,
        "start": start,
        "end": end,
        "lines": counter.lines,
        "rejected_key": layout.part_prefix(run_id, index) + "rejected.csv" if landed.rejected else None,
        "report_key": layout.part_prefix(run_id, index) + "report.json" if landed.report else None,
        "partials_key": partials,
    }
    part_uri = store.put_json(work_bucket, layout.part_manifest_key(run_id, index), manifest)
    return RangeResult(
        run_id=run_id,
        index=index,
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        rows_rejected=result.rows_rejected,
        lines=counter.lines,
        part_uri=part_uri,
    )


def _forget_part(store: ObjectStore, work_bucket: str, run_id: str, index: int) -> None:
    """Remove what an earlier attempt at range `index` left: its manifest first, then its files."""
    store.delete_keys(work_bucket, [layout.part_manifest_key(run_id, index)])
    suffix = f"/{run_id}-{index}.parquet"
    staged = [k for k, _, _ in store.list_keys(work_bucket, layout.staging_prefix(run_id)) if k.endswith(suffix)]
    rest = [k for k, _, _ in store.list_keys(work_bucket, layout.part_prefix(run_id, index))]
    store.delete_keys(work_bucket, staged + rest)
