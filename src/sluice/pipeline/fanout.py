"""Fan-out of huge files: plan line-aligned byte ranges, then merge what the ranges produced.

Plan reads the file's header the way :func:`sluice.engine.transform.convert` does, then cuts the data
into ranges that each start on a line: the boundary after ``i * range_bytes`` is the byte after
the first LF at or past it (found with small ranged GETs), so CRLF stays whole and no byte is
lost or read twice. A Distributed Map converts every range (``sluice.pipeline.landing.land_range``) into
parts, staging their Parquet like a single worker would; Merge checks that every range left
its part, applies the reject threshold to the totals, concatenates the quarantines with
file-wide line numbers, combines the partial aggregates and writes the run manifest exactly like
the single-worker path, so the commit, Summarize and Publish cannot tell the difference. The
work-bucket keys are named in :mod:`sluice.pipeline.layout`.

``parts/`` and ``plans/`` expire by lifecycle rule, so a failed fan-out leaves nothing behind
for long; Merge deletes a run's parts once its manifest is written.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from sluice.aggregates.records import combine_partials
from sluice.contracts import Contract
from sluice.engine.quarantine import HEADER as QUARANTINE_HEADER
from sluice.engine.quarantine import over_threshold, threshold_error
from sluice.errors import SluiceError
from sluice.pipeline import layout
from sluice.pipeline.manifest import OutputRef, RunManifest
from sluice.pipeline.payloads import ByteRange, PlanRef, PlanResult, SourceObject, TransformResult, ValidateResult
from sluice.pipeline.preflight import describe
from sluice.ports import ObjectStore
from sluice.uris import s3_uri

WINDOW = 64 * 1024  # bytes per ranged GET while looking for a header or a line break
MAX_SCAN = 64 << 20  # no LF within this many bytes of a target: the rest of the file is one range
EXAMPLES_PER_RULE = 5  # as sluice.engine.transform.ConvertOptions.examples_per_rule
_BREAK = re.compile(rb"\r\n|\r|\n")
_UTF8_BOM = b"\xef\xbb\xbf"


class FanoutIncompleteError(SluiceError):
    """A range of a fan-out left no part (its conversion failed or never ran): nothing is merged."""


@dataclass(frozen=True)
class FanoutSettings:
    """How Plan splits files (parameters FanoutRangeBytes, FanoutMaxConcurrency, read by ``sluice.settings``)."""

    range_bytes: int = 256 << 20
    max_concurrency: int = 40


# ---------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class FileHead:
    """Where a file's data starts."""

    cells: tuple[str, ...]  # the header (empty without one)
    lines: int  # physical lines before the first data byte
    data_start: int  # offset of the first data byte
    leading_blank_lines: int  # blank lines before the header


class _RangedReader(io.RawIOBase):
    """A raw stream over an object that fetches it in ranged GETs of `window` bytes, on demand."""

    def __init__(self, store: ObjectStore, source: SourceObject, size: int, window: int) -> None:
        self._store, self._source, self._size, self._window = store, source, size, window
        self.data = bytearray()  # every byte fetched so far: the head of the file
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos == len(self.data) and len(self.data) < self._size:
            start = len(self.data)
            end = min(self._size, start + max(len(buffer), self._window))
            self.data += self._store.read_range(
                self._source["bucket"], self._source["key"], start, end, self._source.get("version_id")
            )
        n = min(len(buffer), len(self.data) - self._pos)
        buffer[:n] = self.data[self._pos : self._pos + n]
        self._pos += n
        return n


def _offset_after_lines(head: bytes, lines: int, at_eof: bool) -> int | None:
    """Offset just past the `lines`-th line terminator (CR, LF or CRLF) of `head`; None: need more bytes."""
    if lines == 0:
        return 0
    for n, match in enumerate(_BREAK.finditer(head), start=1):
        if n == lines:
            end = match.end()
            if match.group() == b"\r" and end == len(head) and not at_eof:
                return None  # a CR at the end may be half of a CRLF
            return end
    return None if not at_eof else len(head)


def read_file_head(store: ObjectStore, source: SourceObject, size: int, contract: Contract) -> FileHead:
    """Read the preamble and header of the file like :func:`sluice.engine.transform.convert` does.

    Raises
    ------
    InputRejectedError
        The header is missing, unreadable or does not match the contract (as the single-worker
        path would say).

    """
    from sluice.engine.csvsource import CsvFormat, CsvReader
    from sluice.engine.drift import plan_header
    from sluice.engine.textstream import Utf8Blocks

    where = describe(source)
    dialect = contract.dialect
    raw = _RangedReader(store, source, size, WINDOW)
    blocks = Utf8Blocks(cast(BinaryIO, raw), dialect.encoding, source_name=where, block_size=WINDOW)
    reader = CsvReader(
        blocks,
        CsvFormat.from_dialect(dialect),
        source_name=where,
        encoding=dialect.encoding,
        contract_label=contract.label,
        chunk_size=WINDOW,
        use_threads=False,
    )
    cells = reader.read_header(skip_lines=dialect.skip_rows, header=dialect.header)
    if cells is not None:
        plan_header(cells, contract, where)
    lines = reader.line - 1
    head = bytes(raw.data)
    start = _offset_after_lines(head, lines, len(head) >= size)
    while start is None:
        more = store.read_range(
            source["bucket"], source["key"], len(head), min(size, len(head) + WINDOW), source.get("version_id")
        )
        head += more
        start = _offset_after_lines(head, lines, len(head) >= size or not more)
    if start == 0 and head.startswith(_UTF8_BOM) and dialect.encoding in ("utf-8", "utf-8-sig"):
        start = len(_UTF8_BOM)  # no header line: the first range starts after the byte order mark
    return FileHead(tuple(cells or ()), lines, start, reader.leading_blank_lines)


def _line_start_at_or_after(store: ObjectStore, source: SourceObject, target: int, size: int) -> int | None:
    """The first offset >= `target` that starts a line (follows an LF); None when none is near."""
    pos = target - 1
    while pos < size and pos - target < MAX_SCAN:
        piece = store.read_range(
            source["bucket"], source["key"], pos, min(size, pos + WINDOW), source.get("version_id")
        )
        if not piece:
            return None
        found = piece.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(piece)
    return size if pos >= size else None


def plan_ranges(
    store: ObjectStore, source: SourceObject, size: int, data_start: int, range_bytes: int
) -> list[ByteRange]:
    """Cut ``[data_start, size)`` into ranges of about `range_bytes` that start on lines.

    Ranges are contiguous, never empty (except the one range of a file without data) and
    together cover every data byte once. A file whose first data bytes have CR-only line
    breaks, or a stretch of :data:`MAX_SCAN` bytes without an LF, gets no cut there.
    """
    if range_bytes <= 0:
        raise ValueError(f"range_bytes must be positive, got {range_bytes}")
    cuts = [data_start]
    if data_start < size:
        sample = store.read_range(
            source["bucket"], source["key"], data_start, min(size, data_start + WINDOW), source.get("version_id")
        )
        cr_only = b"\n" not in sample and b"\r" in sample
        for i in range(1, math.ceil(size / range_bytes)):
            target = i * range_bytes
            if cr_only or target <= cuts[-1]:
                continue
            cut = _line_start_at_or_after(store, source, target, size)
            if cut is None or cut >= size:
                break
            cuts.append(cut)
    cuts.append(max(size, data_start))
    return [ByteRange(index=i, start=a, end=b) for i, (a, b) in enumerate(itertools.pairwise(cuts))]


def plan_run(
    run: ValidateResult,
    contract: Contract,
    store: ObjectStore,
    *,
    work_bucket: str,
    settings: FanoutSettings,
) -> PlanResult:
    """Split the run's raw object into line-aligned ranges; write them for the Distributed Map."""
    source = run["source"]
    size = source.get("size")
    if size is None:
        size = int(store.head(source["bucket"], source["key"], source.get("version_id"))["ContentLength"])
    head = read_file_head(store, source, size, contract)
    ranges = plan_ranges(store, source, size, head.data_start, settings.range_bytes)
    key = layout.plan_key(run["run_id"])
    store.put_json(work_bucket, key, ranges)
    plan = PlanRef(
        bucket=work_bucket,
        key=key,
        ranges=len(ranges),
        header=list(head.cells),
        header_lines=head.lines,
        header_bytes=head.data_start,
        leading_blank_lines=head.leading_blank_lines,
        range_bytes=settings.range_bytes,
        max_concurrency=settings.max_concurrency,
        planned_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
    return PlanResult(**run, plan=plan)


# ---------------------------------------------------------------------------------------- merge
def line_offsets(header_lines: int, part_lines: Sequence[int]) -> list[int]:
    """Per range, the physical lines of the file before its first line (header lines + earlier ranges)."""
    offsets, total = [], header_lines
    for lines in part_lines:
        offsets.append(total)
        total += lines
    return offsets


def shift_message(message: str, where: str, local: int, line: int) -> str:
    """A quarantine message of a range (``<where> line <local>...``) with the file-wide line."""
    prefix = f"{where} line {local}"
    if message.startswith(prefix):
        return f"{where} line {line}{message[len(prefix) :]}"
    return message


def _read_parts(store: ObjectStore, bucket: str, run_id: str, ranges: Sequence[ByteRange]) -> list[dict[str, Any]]:
    present = {key for key, _, _ in store.list_keys(bucket, layout.parts_prefix(run_id))}
    missing = [r["index"] for r in ranges if layout.part_manifest_key(run_id, r["index"]) not in present]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise FanoutIncompleteError(
            f"run {run_id}: {len(missing)} of {len(ranges)} byte ranges left no part (ranges {shown}); "
            f"their conversion failed or never ran (see the TransformRanges map run and the Transform function's "
            f"logs). Nothing was loaded; redrive the execution once the cause is fixed"
        )
    parts = []
    for r in ranges:
        part: dict[str, Any] = store.get_json(s3_uri(bucket, layout.part_manifest_key(run_id, r["index"])))
        if (part.get("run_id"), part.get("start"), part.get("end")) != (run_id, r["start"], r["end"]):
            raise FanoutIncompleteError(
                f"run {run_id}: part {r['index']} covers bytes {part.get('start')}-{part.get('end')} of run "
                f"{part.get('run_id')}, the plan says {r['start']}-{r['end']}: stale part, redrive the execution"
            )
        parts.append(part)
    return parts


def _check_plan(ranges: Sequence[ByteRange], plan: PlanRef, size: int | None) -> None:
    """The plan's ranges are contiguous and cover every data byte once."""
    expected = plan["header_bytes"]
    for i, r in enumerate(ranges):
        if r["index"] != i or r["start"] != expected or r["end"] < r["start"]:
            raise FanoutIncompleteError(f"plan s3://{plan['bucket']}/{plan['key']}: range {i} is {r}, not contiguous")
        expected = r["end"]
    if len(ranges) != plan["ranges"] or (size is not None and expected != max(size, plan["header_bytes"])):
        raise FanoutIncompleteError(
            f"plan s3://{plan['bucket']}/{plan['key']}: {len(ranges)} ranges ending at byte {expected}, "
            f"expected {plan['ranges']} ending at {size}"
        )


class _Quarantine:
    """The merged quarantine of a fan-out: ``rejected.csv`` with file-wide lines and ``report.json``."""

    def __init__(self, directory: Path, where: str, label: str) -> None:
        self.directory = directory
        self.where = where
        self.label = label
        self.rejected_path = directory / "rejected.csv"
        self.report_path = directory / "report.json"
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(
        self, store: ObjectStore, bucket: str, parts: Sequence[Mapping[str, Any]], offsets: Sequence[int]
    ) -> None:
        csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.rejected_path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(QUARANTINE_HEADER)
            for part, offset in zip(parts, offsets, strict=True):
                report = store.get_json(s3_uri(bucket, part["report_key"])) if part.get("report_key") else {}
                for rule, examples in (report.get("examples") or {}).items():
                    kept = self.examples.setdefault(rule, [])
                    for ex in examples:
                        if len(kept) < EXAMPLES_PER_RULE:
                            line = int(ex["line"]) + offset
                            kept.append(
                                {
                                    **ex,
                                    "line": line,
                                    "message": shift_message(ex["message"], self.where, int(ex["line"]), line),
                                }
                            )
                for rule, count in (report.get("rejects_by_rule") or {}).items():
                    self.counts[rule] = self.counts.get(rule, 0) + int(count)
                if part.get("rejected_key"):
                    for row in self._rows(store, bucket, part["rejected_key"]):
                        local = int(row[0])
                        row[0] = str(local + offset)
                        row[4] = shift_message(row[4], self.where, local, local + offset)
                        writer.writerow(row)
        # rules in order of first occurrence in the file, as the single-worker path counts them
        self.counts = {rule: self.counts[rule] for rule in [*self.examples, *self.counts] if rule in self.counts}

    def _rows(self, store: ObjectStore, bucket: str, key: str) -> Iterator[list[str]]:
        with store.open(bucket, key) as body:
            text = io.TextIOWrapper(body, encoding="utf-8", newline="")
            rows = csv.reader(text)
            head = next(rows, None)
            if head is None or tuple(head) != QUARANTINE_HEADER:
                raise FanoutIncompleteError(f"s3://{bucket}/{key}: not a quarantine file (header {head})")
            yield from rows

    def write_report(self, summary: Mapping[str, Any]) -> None:
        report = {
            **summary,
            "source": self.where,
            "contract": self.label,
            "rows_rejected": self.total,
            "rejects_by_rule": dict(sorted(self.counts.items())),
            "examples": self.examples,
            "rejected_file": self.rejected_path.name if self.total else None,
            "rejected_columns": list(QUARANTINE_HEADER),
        }
        self.report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def publish(self, store: ObjectStore, bucket: str, prefix: str) -> str:
        if self.total:
            store.upload_file(self.rejected_path, bucket, prefix + "rejected.csv", "text/csv")
        store.upload_file(self.report_path, bucket, prefix + "report.json", "application/json")
        return s3_uri(bucket, prefix)


def _delete_parts(store: ObjectStore, bucket: str, run_id: str) -> None:
    """Remove a run's parts: data first, part manifests last (they mark parts as complete)."""
    prefix = layout.parts_prefix(run_id)
    keys = [key for key, _, _ in store.list_keys(bucket, prefix)]
    manifests = [k for k in keys if k.endswith(".json") and "/" not in k[len(prefix) :]]
    store.delete_keys(bucket, [k for k in keys if k not in manifests])
    store.delete_keys(bucket, manifests)


def _merged_already(store: ObjectStore, bucket: str, run: PlanResult) -> RunManifest | None:
    """The manifest of an earlier Merge of this run (a retry after it finished), else None."""
    key = layout.manifest_key(run["run_id"])
    if not any(k == key for k, _, _ in store.list_keys(bucket, key)):
        return None
    manifest = RunManifest.from_json(store.get_json(s3_uri(bucket, key)))
    if (manifest.fanout or {}).get("plan_uri") != s3_uri(run["plan"]["bucket"], run["plan"]["key"]):
        return None
    return manifest


def merge_run(
    run: PlanResult,
    contract: Contract,
    store: ObjectStore,
    *,
    quarantine_bucket: str,
    work_bucket: str,
    staging_root: Path,
) -> TransformResult:
    """Combine what the ranges of a fan-out left into one run manifest; idempotent given the run id.

    The ranges' Parquet stays staged (``staging/<run_id>/``) for the commit to publish, exactly as
    a single worker's would.

    Raises
    ------
    FanoutIncompleteError
        A range left no part (or a stale one); nothing is merged.
    RejectThresholdError
        The file as a whole broke ``max_reject_ratio``: the merged quarantine is published,
        nothing will be loaded, the parts are deleted.

    """
    run_id, plan = run["run_id"], run["plan"]
    planned = datetime.fromisoformat(plan["planned_at"])
    done = _merged_already(store, work_bucket, run)
    if done is not None:
        _delete_parts(store, work_bucket, run_id)
        duration = int((done.fanout or {}).get("duration_ms", 0))
        return done.result(s3_uri(work_bucket, layout.manifest_key(run_id)), run["started_at"], duration)
    ranges: list[ByteRange] = store.get_json(s3_uri(plan["bucket"], plan["key"]))
    _check_plan(ranges, plan, run["source"].get("size"))
    parts = _read_parts(store, work_bucket, run_id, ranges)
    offsets = line_offsets(plan["header_lines"], [int(p["lines"]) for p in parts])
    rows_in = sum(int(p["rows_in"]) for p in parts)
    rows_out = sum(int(p["rows_out"]) for p in parts)
    blank_lines = plan["leading_blank_lines"] + sum(int(p["blank_lines"]) for p in parts)
    summary = {"run_id": run_id, "rows_in": rows_in, "rows_out": rows_out, "blank_lines": blank_lines}
    staging = layout.work_dir(staging_root, run_id, "merge")
    shutil.rmtree(staging, ignore_errors=True)
    where = describe(run["source"])
    quarantine = _Quarantine(staging, where, contract.label)
    prefix = layout.quarantine_prefix(contract.dataset, run_id)
    try:
        quarantine.merge(store, work_bucket, parts, offsets)
        quarantine.write_report(summary)
        rejected = quarantine.total
        if rejected != sum(int(p["rows_rejected"]) for p in parts):
            raise FanoutIncompleteError(f"run {run_id}: the parts' quarantines disagree with their manifests")
        if over_threshold(rows_in, rejected, contract):
            report_uri = quarantine.publish(store, quarantine_bucket, prefix) + "report.json"
            _delete_parts(store, work_bucket, run_id)
            raise threshold_error(where, contract, rows_in, quarantine.counts, report_uri)
        quarantine_uri = quarantine.publish(store, quarantine_bucket, prefix) if rejected else None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    outputs = tuple(OutputRef.from_json(o) for p in parts for o in p["outputs"])
    partials_uri = None
    if contract.aggregates is not None:
        records = combine_partials(
            (store.get_json(s3_uri(work_bucket, p["partials_key"])) for p in parts),
            run_id=run_id,
            contract_version=contract.version,
        )
        partials_uri = store.put_json(work_bucket, layout.partials_key(run_id), records)
    with_rows = [p for p in parts if p["rows_out"]] or parts
    duration_ms = int((datetime.now(UTC) - planned).total_seconds() * 1000)
    from sluice.pipeline.catalog import unprojected  # the engine's partition types (pyarrow): Merge imports light

    rows_unprojected, warnings = unprojected(contract, ((o.partition, o.rows) for o in outputs))
    manifest = RunManifest(
        run_id=run_id,
        dataset=contract.dataset,
        contract_version=contract.version,
        source=dict(run["source"]),
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rejected,
        bytes_in=plan["header_bytes"] + sum(int(p["bytes_in"]) for p in parts),
        bytes_out=sum(o.bytes for o in outputs),
        blank_lines=blank_lines,
        rejects_by_rule=dict(sorted(quarantine.counts.items())),
        schema=with_rows[0]["schema"],
        partition_columns=with_rows[0]["partition_columns"],
        outputs=outputs,
        quarantine_uri=quarantine_uri,
        partials_uri=partials_uri,
        fanout={
            "plan_uri": s3_uri(plan["bucket"], plan["key"]),
            "ranges": len(parts),
            "range_bytes": plan["range_bytes"],
            "duration_ms": duration_ms,
        },
        rows_unprojected=rows_unprojected,
        warnings=tuple(warnings),
    )
    uri = store.put_json(work_bucket, layout.manifest_key(run_id), manifest.to_json())
    _delete_parts(store, work_bucket, run_id)
    return manifest.result(uri, run["started_at"], duration_ms)
