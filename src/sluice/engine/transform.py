"""CSV to Parquet in one streaming pass: decode, parse, validate, quarantine, partition, write.

:func:`convert` reads a (possibly non-seekable) binary stream once, in record-aligned chunks of
``block_size`` bytes, so memory depends on the options, not on the file. Every input record ends
up either in a Parquet file or in the quarantine (``rows_in == rows_out + rows_rejected``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa

from sluice.contracts import Contract
from sluice.engine.compressed import RATIO_SLACK, open_source
from sluice.engine.counts import counts_json
from sluice.engine.csvsource import Chunk, CsvFormat, CsvReader, Piece, count_line_breaks
from sluice.engine.drift import HeaderPlan, plan_header, same_header
from sluice.engine.partitioning import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    LongPaths,
    OutputFile,
    PartitionedWriter,
    WriterOptions,
    long_paths,
    partition_paths,
    partition_type,
)
from sluice.engine.quarantine import (
    QuarantineFullError,
    QuarantineWriter,
    Rejected,
    early_stop_error,
    over_threshold,
    threshold_error,
)
from sluice.engine.rules import Checked, Validator, contract_schema
from sluice.engine.textstream import Utf8Blocks
from sluice.errors import InputRejectedError, RejectThresholdError

if TYPE_CHECKING:
    from sluice.engine.hooks import HookRunner

Observer = Callable[[pa.Table], None]


LAMBDA_MB_PER_VCPU = 1769


def available_cpus() -> int:
    """CPUs this process can use: those it may run on, and on Lambda its share of them.

    A Lambda function sees 2 CPUs at any memory size (up to 6 at 10 GB) but gets one vCPU of
    time per 1,769 MB, so at the default 1,769 MB a second thread would only share that one.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        cpus = min(cpus, max(1, round(int(memory) / LAMBDA_MB_PER_VCPU)))
    return cpus


@dataclass(frozen=True)
class Progress:
    """How far a conversion has got: bytes read from the source, records finished, time spent."""

    bytes_read: int
    rows_in: int
    rows_rejected: int
    seconds: float


ProgressHook = Callable[[Progress], None]


def throttled(hook: ProgressHook, seconds: float, clock: Callable[[], float] = time.monotonic) -> ProgressHook:
    """`hook`, called at most once every `seconds` (the first report waits that long too)."""
    due = clock() + seconds

    def report(progress: Progress) -> None:
        nonlocal due
        now = clock()
        if now >= due:
            due = now + seconds
            hook(progress)

    return report


@dataclass(frozen=True)
class ConvertOptions:
    """Knobs of :func:`convert`; memory depends on them, not on the file.

    ``threads`` (0: one per available CPU, at most 4) parse and check that many chunks at once
    and encode that many Parquet row groups at once (it sets ``writer.encode_threads``); an
    unpartitioned output is then split over up to ``threads`` files (``<run_id>-0.parquet``,
    ``-1``, ...) unless ``writer.split_unpartitioned`` is False. ``writer`` holds the Parquet
    writer's options (:class:`~sluice.engine.partitioning.WriterOptions`: row groups, buffer and spill,
    open files, compression). With ``newlines_in_values`` a chunk cut ahead may end inside a record when the quoting
    is irregular; from such a chunk on, the file is parsed one chunk at a time.

    Working memory is roughly (2 x ``threads`` + 2) x 4 x ``block_size`` (chunks being parsed
    and checked; long rows add to it, see :meth:`working_memory`) + ``writer.buffer_bytes``
    (rows waiting for their row group) + ``threads`` x ``writer.row_group_bytes`` (row groups
    being encoded) + 8 bytes per distinct value of each ``unique`` column (twice that while its
    index merges), on top of ~85 MB for Python and pyarrow once imported (pandas only with a
    contract hook) and ~30-50 MB the allocators keep.

    ``header`` and ``first_line`` convert a byte range: `source` then starts at a record boundary
    on physical line ``first_line``, has no header of its own, and ``header`` is the file's
    header (already checked against the contract by whoever split the file).

    ``source_bytes`` is the size of the object as stored (compressed or not). It bounds how many
    rows may still follow, so a file bound to break ``max_reject_ratio`` stops early; a seekable
    `source` (a local file) tells it itself.
    """

    block_size: int = 2 << 20
    max_record_bytes: int | None = None  # None: the contract's limits.max_row_bytes
    writer: WriterOptions = field(default_factory=WriterOptions)
    threads: int = 0
    parse_threads: bool = False  # pyarrow's multi-threaded CSV parse inside one chunk (rarely pays)
    examples_per_rule: int = 5
    header: tuple[str, ...] | None = None
    first_line: int = 1
    source_bytes: int | None = None  # size of the object as stored, for the early stop (default: asked of `source`)

    @property
    def thread_count(self) -> int:
        """``threads``, with 0 resolved to the available CPUs (at most 4)."""
        return self.threads if self.threads > 0 else max(1, min(4, available_cpus()))

    def writer_options(self) -> WriterOptions:
        """``writer``, encoding on ``thread_count`` threads."""
        return replace(self.writer, encode_threads=self.thread_count)

    def working_memory(self, max_row_bytes: int) -> int:
        """The working memory bound above in bytes, for rows of up to `max_row_bytes`.

        Long rows add to it: the piece being parsed and the one read ahead may each pass
        ``block_size`` by one row, and so may each row group being encoded. The index of
        ``unique`` columns and the fixed base (Python, pyarrow, allocator caches) are not counted.
        """
        threads, writer = self.thread_count, self.writer
        pieces = (2 * threads + 2) * 4 * self.block_size + 2 * 4 * max_row_bytes
        return pieces + writer.buffer_bytes + threads * (writer.row_group_bytes + max_row_bytes)


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion produced.

    ``schema`` lists the Parquet columns in file order: the contract's columns (contract type
    names), then columns added by the contract's pandas hook (Arrow type names), then the
    partition columns (which are stored in the files as well as in the hive path).
    """

    rows_in: int
    rows_out: int
    rows_rejected: int
    bytes_in: int
    bytes_out: int
    outputs: tuple[OutputFile, ...]
    rejected_path: Path | None
    report_path: Path | None
    rejects_by_rule: dict[str, int]
    schema: tuple[tuple[str, str], ...]
    blank_lines: int
    partition_columns: tuple[str, ...] = field(default=())

    def to_summary(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            **counts_json(self),
            "outputs": [
                {"key": o.key, "path": str(o.path), "rows": o.rows, "bytes": o.bytes, "partition": o.partition}
                for o in self.outputs
            ],
            "rejected_path": str(self.rejected_path) if self.rejected_path else None,
            "report_path": str(self.report_path) if self.report_path else None,
        }


def _text(value: object) -> str | None:
    """A value as the quarantine's ``_value`` shows it."""
    return None if value is None else str(value)


class _Stopped(Exception):
    """The run is bound to fail for its rejects: stop reading (`why` says what made it certain)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def stored_size(source: BinaryIO) -> int | None:
    """Bytes left in `source` when it can tell (a seekable file), else None."""
    try:
        if source.seekable():
            here = source.tell()
            end = source.seek(0, os.SEEK_END)
            source.seek(here)
            return int(end - here)
    except (OSError, ValueError, AttributeError):
        pass
    return None


class _Run:
    """State of one conversion."""

    def __init__(
        self,
        contract: Contract,
        *,
        run_id: str,
        source_name: str,
        staging_dir: Path,
        observers: Sequence[Observer],
        options: ConvertOptions,
    ) -> None:
        self.contract = contract
        self.run_id = run_id
        self.source_name = source_name
        self.staging_dir = staging_dir
        self.observers = observers
        self.options = options
        self.validator = Validator(contract, compact=bool(contract.partition))
        self.base_schema = contract_schema(contract)
        self.header = same_header(contract)
        for p in contract.partition:
            partition_type(p, contract)  # raises when a transform does not fit its column
        self.hook: HookRunner | None = None
        if contract.transform:
            from sluice.engine.hooks import HookRunner

            self.hook = HookRunner(contract.transform, contract, self.base_schema, source_name)
        self.quarantine = QuarantineWriter(
            staging_dir / "_quarantine",
            source_name=source_name,
            contract_label=contract.label,
            examples_per_rule=options.examples_per_rule,
            max_bytes=contract.limits.quarantine_bytes,
        )
        self.writer: PartitionedWriter | None = None
        self.rows_in = 0
        self.rows_out = 0
        self.blank_lines = 0
        self.after_chunk: Callable[[], None] | None = None
        self.more_rows: Callable[[], int | None] = lambda: None  # most rows that may still follow
        self.ahead = 0  # bytes of pieces cut but not finished yet (their rows are not in rows_in)

    def adopt(self, header: HeaderPlan) -> None:
        """Read the file's columns as `header` says (by name; kept extra columns join the run's contract)."""
        self.header = header
        if header.contract is not self.contract:
            self.contract = header.contract
            self.validator = Validator(header.contract, compact=bool(header.contract.partition))

    def check(self, chunk: Chunk) -> Checked:
        """The stateless part of a chunk's work (any thread, any order)."""
        return self.validator.check(self.header.shape(chunk.table))

    def process(self, chunk: Chunk, checked: Checked | None = None) -> None:
        """The rest, in file order: ``unique``, quarantine, hook, observers, writing."""
        self.rows_in += chunk.records
        self.blank_lines += chunk.blank_lines
        rejected = list(chunk.bad)
        typed, rejects = self.validator.finish(checked if checked is not None else self.check(chunk))
        if len(rejects):
            for (line, text), rule, col, value, reason in zip(
                chunk.locate(rejects.rows.tolist()),
                rejects.rules,
                rejects.columns,
                rejects.values,
                rejects.reasons,
                strict=True,
            ):
                rejected.append(Rejected(line, text, rule, col, value, reason))
        kept: np.ndarray | None = None  # the chunk's rows that `typed` holds, once rows leave it after `finish`
        if self.hook is not None and typed.num_rows:
            typed, dropped = self.hook(typed, chunk.first_line)
            if len(dropped):
                kept = np.setdiff1d(np.arange(chunk.table.num_rows), rejects.rows)
                reason = f"was dropped by transform hook {self.contract.transform}"
                for line, text in chunk.locate(kept[dropped].tolist()):
                    rejected.append(Rejected(line, text, "row.transform", None, None, reason))
                kept = np.delete(kept, dropped)
        paths = partition_paths(typed, self.contract) if typed.num_rows else None
        long = long_paths(paths, self.contract, self.run_id) if isinstance(paths, pa.DictionaryArray) else None
        if long is not None and paths is not None:
            if kept is None:
                kept = np.setdiff1d(np.arange(chunk.table.num_rows), rejects.rows)
            rejected += self._long_path_rejects(chunk, long, kept, typed)
            keep = np.ones(typed.num_rows, dtype=bool)
            keep[long.rows] = False
            mask = pa.array(keep)
            typed, paths = typed.filter(mask), paths.filter(mask)
        rejected.sort(key=lambda r: r.line)
        try:
            self.quarantine.add(rejected)
        except QuarantineFullError:
            raise _Stopped(
                f"its rejected rows passed limits.max_quarantine_bytes "
                f"({self.contract.limits.quarantine_bytes >> 20} MiB) of contract {self.contract.label}"
            ) from None
        self._check_ratio()
        if typed.num_rows:
            self.rows_out += typed.num_rows
            if self.observers:
                base = typed.select(self.base_schema.names)
                for observe in self.observers:
                    observe(base)
            self._writer(typed.schema).write(typed, paths)
        if self.after_chunk is not None:
            self.after_chunk()

    def _long_path_rejects(self, chunk: Chunk, long: LongPaths, kept: np.ndarray, typed: pa.Table) -> list[Rejected]:
        """The rows of `typed` whose partition path is too long to store (`kept`: their rows in `chunk`)."""
        values = typed.take(pa.array(long.rows))
        located = chunk.locate(kept[long.rows].tolist())
        rejected = []
        for k, ((line, text), p, size) in enumerate(zip(located, long.partitions, long.sizes, strict=True)):
            reason = (
                f"makes a partition path segment of {size} bytes ({p.name}=..., escaped); a directory name "
                f"takes at most {MAX_SEGMENT_BYTES} bytes and an S3 key {MAX_KEY_BYTES}"
            )
            value = _text(values.column(p.source)[k].as_py())
            rejected.append(Rejected(line, text, f"{p.source}.partition", p.source, value, reason))
        return rejected

    def _check_ratio(self) -> None:
        """Stop once the file cannot meet ``max_reject_ratio`` whatever follows (see docs/engine.md)."""
        ratio = self.contract.max_reject_ratio
        rejected = self.quarantine.total
        if ratio >= 1.0 or rejected <= ratio * self.rows_in:
            return
        more = self.more_rows()
        if more and rejected > ratio * (self.rows_in + more):  # at the end the usual check says it
            raise _Stopped(
                f"{rejected} of its first {self.rows_in} rows were rejected and at most {more} more rows can "
                f"follow, so more than max_reject_ratio {ratio:g} of its rows break contract {self.contract.label}"
            )

    def _writer(self, schema: pa.Schema) -> PartitionedWriter:
        if self.writer is None:
            self.writer = PartitionedWriter(
                self.staging_dir,
                dataset=self.contract.dataset,
                run_id=self.run_id,
                schema=schema,
                options=self.options.writer_options(),
            )
        return self.writer

    def schema(self) -> tuple[tuple[str, str], ...]:
        cols = [(c.name, c.type) for c in self.contract.columns]
        if self.hook is not None and self.hook.extra is not None:
            cols += [(f.name, str(f.type)) for f in self.hook.extra]
        cols += [(p.name, partition_type(p, self.contract)[1]) for p in self.contract.partition]
        return tuple(cols)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _process_in_parallel(reader: CsvReader, run: _Run, threads: int, block_size: int) -> None:
    """Parse and check up to `threads` pieces at once; finish them in file order on this thread.

    pyarrow releases the GIL while it parses and computes, so the pieces really run in
    parallel; what must follow the file's order (``unique``, the quarantine, the writers)
    stays here. At most ``threads + 1`` pieces are in flight, and at most ``(threads + 1) x
    block_size`` bytes of them unless one piece alone is larger. With line breaks in values, a
    piece whose cut fell inside a record (irregular quoting) is parsed only in part: the rest
    of it and the pieces cut after it go back to the reader, and the file is finished one
    chunk at a time (:func:`_process_in_order`), which is what one thread would have done.
    """
    names = run.header.parse_names
    pool = pa.default_memory_pool()

    def work(piece: Piece) -> tuple[Chunk, int, Checked]:
        chunk, used = reader.parse_piece(piece, names)
        return chunk, used, run.check(chunk)

    window: deque[tuple[Piece, Future[tuple[Chunk, int, Checked]]]] = deque()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sluice-parse")
    pieces = reader.pieces()
    budget = (threads + 1) * block_size  # bytes in flight: pieces of long lines go fewer at a time
    held: Piece | None = None
    in_flight = 0
    try:
        while True:
            if held is None:
                held = next(pieces, None)
            if held is not None and (not window or (len(window) <= threads and in_flight + len(held.data) <= budget)):
                window.append((held, executor.submit(work, held)))
                in_flight += len(held.data)
                held = None
                continue
            if not window:
                return
            done, future = window.popleft()
            in_flight -= len(done.data)
            chunk, used, checked = future.result()
            run.ahead = in_flight + (len(held.data) if held is not None else 0)
            if used or done.bad:
                run.process(chunk, checked)
            del chunk, checked
            pool.release_unused()
            if used < len(done.data):
                for _, later in window:
                    later.cancel()
                rest = done.data[used:] + b"".join(p.data for p, _ in window) + (held.data if held else b"")
                window.clear()
                held = None
                run.ahead = 0
                pieces.close()
                reader.unread(rest, done.first_line + count_line_breaks(done.data[:used]))
                del done, rest
                _process_in_order(reader, run)
                return
    finally:
        for _, future in window:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        pool.release_unused()


def _process_in_order(reader: CsvReader, run: _Run) -> None:
    """Parse, check and finish the rest of the stream one chunk at a time."""
    pool = pa.default_memory_pool()
    for chunk in reader.chunks(run.header.parse_names):
        run.process(chunk)
        del chunk
        pool.release_unused()  # hand freed chunk memory back to the OS: keeps RSS flat


def _read(reader: CsvReader, run: _Run, opts: ConvertOptions) -> None:
    """Check the header (a whole file) and process every record of the stream."""
    contract = run.contract
    cells: Sequence[str] | None = opts.header or None
    if opts.header is None:
        cells = reader.read_header(skip_lines=contract.dialect.skip_rows, header=contract.dialect.header)
    if cells is not None:
        run.adopt(plan_header(cells, contract, run.source_name))
    if opts.thread_count > 1:
        _process_in_parallel(reader, run, opts.thread_count, opts.block_size)
    else:
        _process_in_order(reader, run)


def _rows_bound(
    run: _Run, blocks: Utf8Blocks, reader: CsvReader, stored: int | None, *, compressed: bool
) -> Callable[[], int | None]:
    """How many more records the stream can hold at most, from what is left of it (None: unknown).

    Every record takes at least one character, so one byte, per column (its delimiters and line
    break): what is left of the object, and of what was read but not finished yet, divided by the
    number of columns. A compressed object can only yield what its limits let it decompress to.
    """
    limits = run.contract.limits
    if compressed:
        most = limits.decompressed_bytes
        stored = most if stored is None else min(most, RATIO_SLACK + int(limits.max_expansion_ratio * stored))
    if stored is None:
        return lambda: None
    total, ncols = stored, len(run.contract.columns)

    def more_rows() -> int:
        if reader.exhausted and not run.ahead:
            return 0
        unread = max(0, total - blocks.bytes_in)
        undone = max(0, blocks.bytes_out - reader.consumed) + run.ahead
        return (unread + undone) // ncols + 2  # + a last record without a line break, + a character held back

    return more_rows


def convert(
    source: BinaryIO,
    contract: Contract,
    *,
    run_id: str,
    source_name: str,
    staging_dir: Path,
    observers: Sequence[Observer] = (),
    options: ConvertOptions | None = None,
    progress: ProgressHook | None = None,
) -> ConvertResult:
    """Convert one CSV stream to Parquet files and a quarantine under `staging_dir`.

    Parquet files land at ``staging_dir / key`` (see :class:`OutputFile`); the quarantine at
    ``staging_dir / "_quarantine" / {rejected.csv, report.json}``. `observers` get every batch
    of valid rows (contract columns and types) before partition columns are added. `progress`
    hears after every chunk how far the conversion is (see :func:`throttled`).

    Raises
    ------
    InputRejectedError
        The file as a whole cannot be loaded (empty, header mismatch, encoding, quoting that
        never closes, a line break in a value the contract does not allow); nothing is left
        in `staging_dir`.
    RejectThresholdError
        More rows were rejected than ``contract.max_reject_ratio`` allows; no Parquet file is
        left, the quarantine files are kept for diagnosis.
    ContractError
        The contract cannot be applied (a rule that does not fit its type, a missing hook).

    """
    opts = options or ConvertOptions()
    run = _Run(
        contract, run_id=run_id, source_name=source_name, staging_dir=staging_dir, observers=observers, options=opts
    )
    raw, compression = None, None
    stored = opts.source_bytes if opts.source_bytes is not None else stored_size(source)
    if opts.header is None:  # a whole object, maybe compressed (a byte range never is: it is never fanned out)
        source, raw, compression = open_source(source, source_name, contract.limits, contract.label)
    blocks = Utf8Blocks(
        source,
        contract.dialect.encoding,
        source_name=source_name,
        block_size=opts.block_size,
        at_start=opts.header is None,
    )
    reader = CsvReader(
        blocks,
        CsvFormat.from_dialect(contract.dialect),
        source_name=source_name,
        encoding=contract.dialect.encoding,
        contract_label=contract.label,
        chunk_size=opts.block_size,
        max_record_bytes=opts.max_record_bytes or contract.limits.row_bytes,
        first_line=opts.first_line,
        use_threads=opts.parse_threads,
    )
    run.more_rows = _rows_bound(run, blocks, reader, stored, compressed=compression is not None)
    if progress is not None:
        began, report = time.monotonic(), progress

        def after_chunk() -> None:
            read = raw.consumed if raw is not None else blocks.bytes_in  # bytes of the object, compressed or not
            report(Progress(read, run.rows_in, run.quarantine.total, time.monotonic() - began))

        run.after_chunk = after_chunk
    try:
        _read(reader, run, opts)
        rejected = run.quarantine.total
        run.blank_lines += reader.leading_blank_lines
        summary = {"run_id": run_id, "rows_in": run.rows_in, "rows_out": run.rows_out, "blank_lines": run.blank_lines}
        if over_threshold(run.rows_in, rejected, contract):
            run.abort()
            run.quarantine.close(summary)
            raise threshold_error(
                source_name,
                contract,
                run.rows_in,
                run.quarantine.counts,
                "rejected.csv and report.json in the quarantine, which list every rejected row",
            )
        outputs = run.writer.close() if run.writer is not None else []
        rejected_path, report_path = run.quarantine.close(summary)
    except _Stopped as stop:
        run.abort()
        summary = {"run_id": run_id, "rows_in": run.rows_in, "rows_out": 0, "blank_lines": run.blank_lines}
        run.quarantine.close({**summary, "stopped_early": stop.why})
        raise early_stop_error(
            source_name,
            run.quarantine.counts,
            f"stopped after {run.rows_in} rows: {stop.why}",
            "rejected.csv and report.json in the quarantine, which list the rejected rows up to there",
        ) from None
    except RejectThresholdError:
        raise
    except BaseException:
        run.abort()
        run.quarantine.discard()
        raise
    finally:
        shutil.rmtree(staging_dir / "_spill", ignore_errors=True)
    files = tuple(outputs)
    return ConvertResult(
        rows_in=run.rows_in,
        rows_out=run.rows_out,
        rows_rejected=rejected,
        bytes_in=blocks.bytes_in,
        bytes_out=sum(f.bytes for f in files),
        outputs=files,
        rejected_path=rejected_path,
        report_path=report_path,
        rejects_by_rule=dict(sorted(run.quarantine.counts.items())),
        schema=run.schema(),
        blank_lines=run.blank_lines,
        partition_columns=tuple(p.name for p in contract.partition),
    )


__all__ = [
    "ConvertOptions",
    "ConvertResult",
    "InputRejectedError",
    "OutputFile",
    "Progress",
    "ProgressHook",
    "convert",
    "throttled",
]
