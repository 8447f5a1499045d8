"""Hive-style partitions and the bounded-memory, parallel Parquet writer behind them.

Partition columns are derived from a contract column (``identity``, ``date``, ``month``,
``year``) and live in the path only: they name the directory ``<name>=<value>`` the rows land
in and are not written inside the files (the Hive convention Athena, Spark, DuckDB, polars and
pyarrow datasets expect, so that a reader never meets the column twice with two types). The
folder text of a value is :func:`folder_values` (also what the Glue projection lists, see
:mod:`sluice.pipeline.catalog`): Hive's escaping (``/`` as ``%2F``; non-ASCII kept as UTF-8, which
Spark's per-byte unescaping would garble) and null as ``__HIVE_DEFAULT_PARTITION__``.

Each partition gets exactly one Parquet file per run, ``<dataset>/<name>=<value>/<run_id>-0.parquet``,
so a rerun overwrites instead of duplicating
(an unpartitioned output may be split over ``<run_id>-0.parquet``, ``-1``, ... to encode in
parallel).

Memory stays bounded whatever the number of partitions: a partition's rows are written as one
row group once they reach ``row_group_rows`` / ``row_group_bytes``; when the rows waiting pass
``buffer_bytes`` (many partitions), or more than ``max_open_writers`` partitions would need an
open file, they are spilled to a local Arrow IPC file and written as full row groups at the end
(see :class:`PartitionedWriter`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.contracts import Contract, Partition
from sluice.engine.rules import arrow_type, one_array
from sluice.errors import ContractError

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PROPERTY_SAMPLE_ROWS = 16_384  # rows the Parquet writer properties are chosen on
STATS_VALUE_BYTES = 4096  # Parquet (parquet-cpp's max_statistics_size) drops min/max longer than this
# the characters Hive's FileUtils.escapePathName (and Spark's, Trino's) escapes; the rest stays as is
_HIVE_ESCAPED = frozenset(
    [*map(chr, range(0x20)), '"', "#", "%", "'", "*", "/", ":", "=", "?", "\\", "\x7f", "{", "[", "]", "^"]
)


def partition_type(partition: Partition, contract: Contract) -> tuple[pa.DataType, str]:
    """Arrow type and contract type name of a partition column.

    Raises
    ------
    ContractError
        The transform does not fit the source column's type.

    """
    source_type = contract.column(partition.source).type
    if partition.transform == "identity":
        return arrow_type(source_type), source_type
    if source_type not in ("date", "timestamp"):
        raise ContractError(
            f"contract {contract.label}: partition {partition.name!r} uses transform {partition.transform} "
            f"on column {partition.source!r} of type {source_type}; it needs a date or timestamp column"
        )
    return {"date": (pa.date32(), "date"), "month": (pa.string(), "string"), "year": (pa.int64(), "int64")}[
        partition.transform
    ]


def partition_schema(contract: Contract) -> pa.Schema:
    """The partition columns with their Arrow types: what a reader should parse the folder names as.

    Readers that infer types from folder names guess (``007`` as an integer, ``true`` as text);
    pass this instead, e.g. ``pyarrow.dataset.partitioning(partition_schema(c), flavor="hive")``.
    pyarrow cannot parse a decimal from a folder name: decimals come as text here (exact; cast
    the column to :func:`partition_type` after reading).
    """
    fields = []
    for p in contract.partition:
        arrow = partition_type(p, contract)[0]
        fields.append(pa.field(p.name, pa.string() if pa.types.is_decimal(arrow) else arrow))
    return pa.schema(fields)


def derive(partition: Partition, source: pa.Array) -> pa.Array:
    """Values of a partition column computed from its source column."""
    if partition.transform == "identity":
        return source
    if partition.transform == "date":
        if pa.types.is_timestamp(source.type) and source.type.tz in ("UTC", "+00:00"):
            # the same instants without the zone: ~10x cheaper than the zone-aware cast, and exact for UTC
            source = source.cast(pa.timestamp(source.type.unit))
        return pc.cast(source, pa.date32())
    as_ts = source if pa.types.is_timestamp(source.type) else pc.cast(source, pa.timestamp("s"))
    if partition.transform == "month":
        return pc.strftime(as_ts, format="%Y-%m")
    return pc.cast(pc.year(as_ts), pa.int64())


def path_text(values: pa.Array) -> pa.Array:
    """Text of partition values as they appear in a path (before escaping)."""
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "true", "false")
    if pa.types.is_timestamp(values.type):
        text = pc.strftime(values, format="%Y-%m-%dT%H:%M:%S")  # %S carries the fraction
        return pc.replace_substring_regex(text, pattern=r"\.0+$", replacement="")
    return pc.cast(values, pa.string())


@lru_cache(maxsize=4096)  # every batch names the same few partitions again
def escape(value: str | None) -> str:
    """A partition value as a path segment, escaped as Hive escapes it; null and ``""`` as the default.

    ``%XX`` for the characters Hive's ``escapePathName`` escapes, anything else (non-ASCII
    included) as is.
    """
    if not value:
        return DEFAULT_PARTITION
    if not any(ch in _HIVE_ESCAPED for ch in value):
        return value
    return "".join(f"%{ord(ch):02X}" if ch in _HIVE_ESCAPED else ch for ch in value)


def unescape(segment: str) -> str | None:
    """The partition value a path segment's value names (None: the default partition)."""
    return None if segment == DEFAULT_PARTITION else unquote(segment)


def folder_values(values: pa.Array) -> list[str]:
    """The folder text (escaped, as in ``<name>=<text>``) of each partition value of `values`.

    The one function that names partition folders: the writer and the Glue projection
    (:func:`sluice.pipeline.catalog.glue_table`) both use it, so the projection lists what the folders say.
    """
    return [escape(v) for v in path_text(values).to_pylist()]


def partition_paths(table: pa.Table, contract: Contract) -> pa.DictionaryArray | None:
    """Each row's partition path (None: unpartitioned); the partition columns go in the path only.

    The paths come as a dictionary array: the text is built once per distinct partition value,
    not per row (a dictionary may list one path twice, e.g. for null and ``""``).
    """
    if not contract.partition:
        return None
    key: np.ndarray[Any, np.dtype[np.int64]] | None = None
    indices: pa.Array | None = None
    levels: list[list[str]] = []
    for p in contract.partition:
        values = derive(p, one_array(table.column(p.source)))
        encoded = pc.dictionary_encode(values, null_encoding="encode")
        levels.append([f"{p.name}={v}" for v in folder_values(encoded.dictionary)])
        indices = encoded.indices
        codes = indices.to_numpy(zero_copy_only=False).astype(np.int64)
        key = codes if key is None else key * len(levels[-1]) + codes
    assert key is not None and indices is not None
    if len(levels) == 1:
        return pa.DictionaryArray.from_arrays(indices, pa.array(levels[0], pa.string()))
    combined = pc.dictionary_encode(pa.array(key))
    names = []
    for code in combined.dictionary.to_pylist():
        segments, rest = [], code
        for level in reversed(levels):
            rest, i = divmod(rest, len(level))
            segments.append(level[i])
        names.append("/".join(reversed(segments)))
    return pa.DictionaryArray.from_arrays(combined.indices, pa.array(names, pa.string()))


MAX_SEGMENT_BYTES = 255  # a directory name (NAME_MAX on Linux, most file systems)
MAX_KEY_BYTES = 1024  # an S3 key


@dataclass(frozen=True)
class LongPaths:
    """Rows whose partition path cannot be a file name: their positions, and for each the partition at fault."""

    rows: np.ndarray
    partitions: list[Partition]
    sizes: list[int]


def long_paths(paths: pa.DictionaryArray, contract: Contract, run_id: str) -> LongPaths | None:
    """The rows of `paths` (from :func:`partition_paths`) whose path has a segment or a key too long to store.

    A segment (``name=value``, escaped) may take :data:`MAX_SEGMENT_BYTES`, the whole key of a
    file :data:`MAX_KEY_BYTES`. Only the distinct paths are measured. None when every path fits.
    """
    fixed = len(contract.dataset) + len(run_id) + len("//-999.parquet")
    faults = {
        code: fault
        for code, name in enumerate(paths.dictionary.to_pylist())
        if (fault := _path_fault(name, fixed)) is not None
    }
    if not faults:
        return None
    codes = np.asarray(paths.indices.to_numpy(zero_copy_only=False))
    rows = np.flatnonzero(np.isin(codes, list(faults)))
    which = [faults[int(c)] for c in codes[rows].tolist()]
    return LongPaths(rows, [contract.partition[w] for w, _ in which], [size for _, size in which])


@lru_cache(maxsize=4096)  # every batch names the same few partitions again
def _path_fault(name: str, fixed: int) -> tuple[int, int] | None:
    """``(segment, bytes)`` of the longest segment of partition path `name` when it does not fit, else None."""
    sizes = [len(seg.encode()) for seg in name.split("/")]
    worst = max(range(len(sizes)), key=sizes.__getitem__)
    if sizes[worst] > MAX_SEGMENT_BYTES or sum(sizes) + len(sizes) + fixed > MAX_KEY_BYTES:
        return worst, sizes[worst]
    return None


def parse_path(path: str) -> dict[str, str]:
    """``{"name": "value"}`` of a partition path (``""``: unpartitioned), values unescaped.

    The default partition stays ``__HIVE_DEFAULT_PARTITION__`` (a manifest holds text).
    """
    out: dict[str, str] = {}
    for seg in filter(None, path.split("/")):
        name, _, value = seg.partition("=")
        out[name] = value if value == DEFAULT_PARTITION else unquote(value)
    return out


@dataclass(frozen=True)
class WriterOptions:
    """Parquet writer settings.

    ``row_group_rows`` / ``row_group_bytes`` cap a row group (bytes as Arrow data, estimated);
    ``buffer_bytes`` caps the rows waiting for their row group (and, with ``encode_threads`` > 1,
    the spill run being written meanwhile: each then gets half) before they are spilled to a local
    Arrow IPC file compressed with ``spill_compression`` (``"lz4"``, ``"zstd"`` or None: lz4 halves
    the local disk the spill takes, e.g. 0.7 instead of 1.4 byte per byte of CSV, for a few % of
    time with 2 CPUs; a spill only happens with many partitions in mixed order);
    ``max_open_writers`` caps the Parquet files open at once while rows arrive.

    ``encode_threads`` > 1 encodes up to that many row groups at once on background threads
    (pyarrow releases the GIL, but one file is encoded by one thread at a time): an unpartitioned
    output is then split round-robin over up to ``encode_threads`` files ``<run_id>-0.parquet``,
    ``-1``, ... (row group k goes to file k % encode_threads; a small input still gives one file)
    unless ``split_unpartitioned`` is False; a partitioned output keeps one file per partition and
    encodes different partitions in parallel. 1 encodes inline, on the caller's thread.
    """

    row_group_rows: int = 1 << 20
    row_group_bytes: int = 24 << 20
    buffer_bytes: int = 64 << 20
    max_open_writers: int = 64
    compression: str = "zstd"
    compression_level: int | None = None
    encode_threads: int = 1
    split_unpartitioned: bool = True
    spill_compression: str | None = "lz4"


@dataclass(frozen=True)
class OutputFile:
    """A finished Parquet file, staged at ``path`` for ``key`` (``<dataset>/<partition path>/<run_id>-<n>.parquet``)."""

    key: str
    path: Path
    rows: int
    bytes: int
    partition: dict[str, str]


_Codes = np.ndarray[Any, np.dtype[np.integer[Any]]]


class _Chain:
    """The tasks on one file: each is handed to the pool only once the one before it is done.

    So they never overlap, keep their order, and no pool thread ever sits waiting for another.
    """

    def __init__(self) -> None:
        self.last: Future[None] | None = None


def _run(future: Future[None], fn: Callable[[], None]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        fn()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)


class _File(_Chain):
    """One Parquet file of the run (opened by its first row group, on whichever thread writes it)."""

    def __init__(self, key: str, path: Path) -> None:
        super().__init__()
        self.key = key
        self.path = path
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.open = True


class _RowGroups:
    """Cut the tables added into row groups of at most `max_rows` rows and about `max_bytes` bytes."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max(1, max_rows)
        self.max_bytes = max(1, max_bytes)
        self.pieces: list[pa.Table] = []
        self.rows = 0
        self.nbytes = 0.0

    def add(self, table: pa.Table, nbytes: float) -> list[tuple[pa.Table, float]]:
        """Take `table` (of `nbytes` bytes); return the row groups it completes."""
        full: list[tuple[pa.Table, float]] = []
        n = table.num_rows
        row_bytes = nbytes / n if n else 0.0
        start = 0
        while start < n:
            room = self.max_rows - self.rows
            if row_bytes > 0:
                room = min(room, int((self.max_bytes - self.nbytes) / row_bytes))
            if room <= 0:
                if self.pieces:
                    full.append(self._cut())
                    continue
                room = 1  # a single row larger than a row group
            take = min(room, n - start)
            self.pieces.append(table if take == n else table.slice(start, take))
            self.rows += take
            self.nbytes += take * row_bytes
            start += take
            if self.rows >= self.max_rows or self.nbytes + row_bytes > self.max_bytes:
                full.append(self._cut())
        return full

    def rest(self) -> tuple[pa.Table, float] | None:
        """The rows of a row group not full yet (None: nothing)."""
        return self._cut() if self.pieces else None

    def _cut(self) -> tuple[pa.Table, float]:
        table = self.pieces[0] if len(self.pieces) == 1 else pa.concat_tables(self.pieces)
        group = (table, self.nbytes)
        self.pieces, self.rows, self.nbytes = [], 0, 0.0
        return group


class _Part:
    """One partition: its files, the rows it has waiting in the buffer, and its spilled batches."""

    def __init__(self, pid: int, path: str, width: int, pending: _RowGroups) -> None:
        self.pid = pid
        self.path = path
        self.width = width  # files the row groups go to, round-robin
        self.files: list[_File] = []
        self.groups = 0  # row groups emitted
        self.rows = 0  # rows waiting in the buffered batches
        self.nbytes = 0.0  # their (estimated) size
        self.pending = pending  # rows taken out of the buffer, short of a full row group
        self.spilled: list[int] = []  # its batches in the spill file, in order (one per run)
        self.spilled_bytes = 0.0  # their (estimated) size in memory


class _Entry:
    """A batch given to :meth:`PartitionedWriter.write`, held until all its rows are flushed or spilled."""

    def __init__(self, table: pa.Table, codes: _Codes | None, pids: list[int], counts: list[int], nbytes: int) -> None:
        self.table = table
        self.codes = codes  # each row's index into pids (None: every row is in pids[0])
        self.pids = pids  # partition ids present
        self.counts = counts  # rows of each not taken yet
        self.local = {pid: i for i, pid in enumerate(pids)}
        self.remaining = table.num_rows
        self.nbytes = nbytes
        self.row_bytes = nbytes / table.num_rows


def _grouped(entries: list[_Entry], sentinel: int) -> Iterator[tuple[int, pa.Table, float]]:
    """The rows of `entries` not taken yet, grouped by partition id (ascending), in input order within one.

    One stable sort of the partition ids and one ``take`` per column for all the entries (no copy
    at all when they arrive grouped already: input sorted by the partition column). `entries` is
    emptied: each column of the batches is released once sorted, so the copy costs one column.
    """
    dtype = np.int16 if sentinel < np.iinfo(np.int16).max else np.int32
    codes = []
    for e in entries:
        ids = np.array([pid if c else sentinel for pid, c in zip(e.pids, e.counts, strict=True)], dtype=dtype)
        codes.append(np.full(e.table.num_rows, ids[0], dtype=dtype) if e.codes is None else ids[e.codes])
    g = np.concatenate(codes)
    counts = np.bincount(g, minlength=sentinel + 1)[:sentinel]
    keep = int(counts.sum())
    row_bytes = sum(e.nbytes for e in entries) / len(g)
    table = pa.concat_tables([e.table for e in entries]) if len(entries) > 1 else entries[0].table
    entries.clear()
    if keep < len(g) or not bool((g[1:] >= g[:-1]).all()):
        order = pa.array(np.argsort(g, kind="stable")[:keep])
        schema, columns = table.schema, []
        while table.num_columns:
            columns.append(table.column(0).take(order))
            table = table.remove_column(0)
        table = pa.Table.from_arrays(columns, schema=schema)
        del columns
    start = 0
    for pid in np.flatnonzero(counts).tolist():
        n = int(counts[pid])
        yield pid, table.slice(start, n), n * row_bytes
        start += n


_REMAP_BYTES = 8 << 20  # an uncompressed spill file is mapped afresh every this many bytes read
_INT64_DIGITS = 18  # decimals of up to this many digits fit their unscaled value in an int64


def _narrow_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with each decimal of at most 18 digits as int64 (how the spill stores it)."""
    fields = [
        f.with_type(pa.int64()) if pa.types.is_decimal128(f.type) and f.type.precision <= _INT64_DIGITS else f
        for f in schema
    ]
    return pa.schema(fields)


def _narrow_decimals(table: pa.Table) -> pa.Table:
    """Decimals of at most 18 digits as their unscaled int64 values: 8 bytes a value to sort, spill and read, not 16."""
    narrow = _narrow_schema(table.schema)
    if narrow.equals(table.schema):
        return table
    columns = []
    for wide, field in zip(table.schema, narrow, strict=True):
        column = table.column(wide.name)
        if field.type == wide.type:
            columns.append(column)
            continue
        arr = one_array(column)
        end = arr.offset + len(arr)  # the low half of each 16-byte little-endian value, from the buffer's start
        low = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=2 * end)[::2].copy()
        columns.append(
            pa.Array.from_buffers(pa.int64(), len(arr), [arr.buffers()[0], pa.py_buffer(low)], offset=arr.offset)
        )
    return pa.Table.from_arrays(columns, schema=narrow)


def _widen_decimals(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Spilled rows back in `schema`'s types (see :func:`_narrow_decimals`)."""
    columns = []
    for field, column in zip(schema, table.columns, strict=True):
        if field.type == column.type:
            columns.append(column)
            continue
        arr = one_array(column)
        end = arr.offset + len(arr)
        low = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=end)
        wide = np.empty((end, 2), dtype=np.int64)
        wide[:, 0] = low
        wide[:, 1] = low >> 63  # two's complement: the high half is the sign
        columns.append(
            pa.Array.from_buffers(field.type, len(arr), [arr.buffers()[0], pa.py_buffer(wide)], offset=arr.offset)
        )
    return pa.Table.from_arrays(columns, schema=schema)


class _SpillFile(_Chain):
    """One append-only Arrow IPC file holding the spilled runs: one batch per partition and run.

    Decimals of up to 18 digits are held narrow (:func:`_narrow_decimals`). Batches may be read
    from several threads at once, each through its own reader. Compressed, they are read with
    plain reads: each batch is decompressed into memory that is freed once the batch is written,
    so nothing read stays resident. Uncompressed, they are read through a memory map (no copy),
    mapped afresh every `remap_bytes` read so that the mapped pages read (which count as the
    process's resident memory) stay under that.
    """

    def __init__(self, path: Path, schema: pa.Schema, compression: str | None, remap_bytes: int) -> None:
        super().__init__()
        self.path = path
        self._wide = schema
        self._schema = _narrow_schema(schema)  # what the file holds
        self._narrowed = sum(not a.equals(b) for a, b in zip(schema.types, self._schema.types, strict=True))
        self._compression = compression
        self._remap_bytes = remap_bytes
        self.count = 0  # batches planned (written once the tasks ran)
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._readers = threading.local()  # per thread: (source, reader, bytes mapped)
        self._sources: list[pa.NativeFile] = []  # every source opened, to close at the end
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = pa.BufferedOutputStream(pa.OSFile(str(self.path), "wb"), buffer_size=1 << 20)
            # compressing on this thread: Arrow's pool costs more than it saves on a partition's small buffers
            options = pa.ipc.IpcWriteOptions(compression=self._compression, use_threads=False)
            self._writer = pa.ipc.new_file(self._sink, self._schema, options=options)

    def write(self, table: pa.Table) -> None:
        """Append `table` (narrow already) as one batch."""
        assert self._writer is not None
        batches = table.combine_chunks().to_batches()
        self._writer.write_batch(batches[0] if len(batches) == 1 else pa.concat_batches(batches))

    def finish(self) -> None:
        """Close the file for writing (every spill task done)."""
        assert self._writer is not None and self._sink is not None
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None

    def batch(self, i: int) -> pa.RecordBatch:
        """Spilled batch `i`, narrow (see :meth:`widen`)."""
        state: list[Any] | None = getattr(self._readers, "state", None)
        if state is None or (self._compression is None and state[2] >= self._remap_bytes):
            if state is not None:
                state[0].close()  # unmapped once the batches read from it are gone
            source = pa.memory_map(str(self.path)) if self._compression is None else pa.OSFile(str(self.path))
            with self._lock:
                self._sources.append(source)
            state = [source, pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(use_threads=False)), 0]
            self._readers.state = state
        batch: pa.RecordBatch = state[1].get_batch(i)
        state[2] += batch.get_total_buffer_size()
        return batch

    def wide_bytes(self, batch: pa.RecordBatch) -> float:
        """The memory `batch` takes once widened."""
        return float(batch.get_total_buffer_size() + 8 * batch.num_rows * self._narrowed)

    def widen(self, table: pa.Table) -> pa.Table:
        """Spilled rows back in the writer's schema."""
        return _widen_decimals(table, self._wide) if self._narrowed else table

    def remove(self) -> None:
        for closable in (self._writer, self._sink, *self._sources):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
        self._writer = self._sink = None
        self._sources.clear()
        self._readers = threading.local()
        self.path.unlink(missing_ok=True)


class PartitionedWriter:
    """Write batches into Parquet files under `staging_dir`, in bounded memory, optionally in parallel.

    Each batch is kept whole, with each row's partition (the dictionary of `paths`): no copy
    per partition as it arrives. A partition whose waiting rows reach a full row group
    (``row_group_rows`` / ``row_group_bytes``) takes them out (one ``take`` per batch holding
    some, none for a batch all of one partition) and writes them to its own file, at most
    ``max_open_writers`` files being open (a partition beyond that waits). When the waiting
    batches pass the spill limit (``buffer_bytes``, half of it with ``encode_threads`` > 1),
    partitions with an open file take their rows out, and all other waiting rows are spilled as
    one *run*: one stable sort by partition and one ``take`` per column, then each partition
    present becomes one batch of the local Arrow IPC spill file (only the partition-to-batch
    numbers stay in memory); a partition without a file but with half a row group waiting opens
    one instead (if it may). If the rows held by partitions with a file still pass half the limit,
    the largest are written as shorter row groups. A partition that spilled keeps spilling; at
    :meth:`close` its batches, run by run, then its rows still waiting, are written as full row
    groups, ``encode_threads`` partitions at a time with their row groups interleaved. Rows keep
    their input order within every file.

    Encoding (``write_table``, closing a file) and writing a spill run run on ``encode_threads``
    threads when above 1 (inline otherwise). One file's tasks run one after another, in order:
    a task is handed to the pool only when the previous one on its file is done. An error in a
    task is raised by a later :meth:`write`, at the latest by :meth:`close` (which then aborts).

    Memory bound, on top of the batch being written (B: a batch's size; L: the spill limit above):

    - rows waiting for their row group or their run: at most L + B;
    - with ``encode_threads`` > 1, one spill run being written: at most L + B (plus, while it is
      sorted, one column's copy); the run after it waits for it;
    - row groups queued or being encoded: at most ``encode_threads`` x ``row_group_bytes`` (at
      least one row group), and at most 2 x ``encode_threads`` tasks;
    - at :meth:`close`: the rows still waiting, grouped by partition (one column copied at a
      time), and, per spilled partition being finished, the row group being gathered (spill
      batches are read through a memory map, mapped afresh every ``buffer_bytes`` read).

    So at most about ``buffer_bytes`` + ``encode_threads`` x ``row_group_bytes`` + 2 batches.

    Parameters
    ----------
    staging_dir
        Local directory; files land at ``staging_dir / key``, the spill file under ``_spill/``.
    dataset, run_id
        Name the files: ``<dataset>/<partition path>/<run_id>-0.parquet`` (unpartitioned:
        ``<dataset>/<run_id>-<n>.parquet``, n < ``encode_threads``).
    schema
        Schema of every batch written (the partition columns are in the paths, not here).

    """

    def __init__(
        self, staging_dir: Path, *, dataset: str, run_id: str, schema: pa.Schema, options: WriterOptions
    ) -> None:
        self._dir = staging_dir
        self._dataset = dataset
        self._run_id = run_id
        self.schema = schema
        self._opts = options
        self._threads = max(1, options.encode_threads)
        self._split = max(1, min(self._threads, options.max_open_writers)) if options.split_unpartitioned else 1
        self._parts: dict[str, _Part] = {}
        self._by_pid: list[_Part] = []
        self._entries: list[_Entry] = []
        self._entry_bytes = 0
        self._pending_bytes = 0.0
        self._open = 0
        self._props: dict[str, Any] | None = None
        self._sample: list[pa.Table] = []  # the first PROPERTY_SAMPLE_ROWS rows, until the properties are chosen
        self._sample_rows = 0
        self._spill = _SpillFile(
            staging_dir / "_spill" / f"{run_id}.arrow",
            schema,
            options.spill_compression,
            min(options.buffer_bytes, _REMAP_BYTES),
        )
        self._pool = (
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="parquet") if self._threads > 1 else None
        )
        self._inflight: deque[tuple[Future[None], float]] = deque()
        self._inflight_bytes = 0.0
        self._closing: deque[Future[None]] = deque()  # tasks closing a file, not known to be done
        self._max_tasks = 2 * self._threads
        self._max_bytes = float(self._threads * options.row_group_bytes)
        # a run is written in the background while the next one fills: each gets half the buffer
        self._spill_at = options.buffer_bytes // 2 if self._pool is not None else options.buffer_bytes

    # ------------------------------------------------------------------ background work
    def _submit(self, chain: _Chain, fn: Callable[[], None], cost: float) -> Future[None] | None:
        """Run `fn` after the previous task of `chain`; block while too much is in flight (None: ran inline)."""
        if self._pool is None:
            fn()
            return None
        self._check()
        while self._inflight and (
            len(self._inflight) >= self._max_tasks or self._inflight_bytes + cost > self._max_bytes
        ):
            self._wait_oldest()
        pool = self._pool
        future: Future[None] = Future()
        previous, chain.last = chain.last, future

        def start(done: Future[None] | None = None) -> None:
            if done is not None and done.cancelled():
                future.cancel()
            elif done is not None and (error := done.exception()) is not None:
                future.set_exception(error)  # what follows a failed task fails with it
            else:
                try:
                    pool.submit(_run, future, fn)
                except RuntimeError as error:  # the pool was shut down (abort)
                    future.set_exception(error)

        self._inflight.append((future, cost))
        self._inflight_bytes += cost
        if previous is None:
            start()
        else:
            previous.add_done_callback(start)  # runs on the thread finishing `previous`
        return future

    def _wait_oldest(self) -> None:
        future, cost = self._inflight.popleft()
        self._inflight_bytes -= cost
        future.result()

    def _check(self) -> None:
        """Raise the error of any task that failed; forget the finished ones."""
        for future, _ in self._inflight:
            if future.done():
                future.result()
        while self._inflight and self._inflight[0][0].done():
            self._wait_oldest()

    def _drain(self) -> None:
        while self._inflight:
            self._wait_oldest()

    # ------------------------------------------------------------------ writing
    def write(self, table: pa.Table, paths: pa.Array | pa.ChunkedArray | None) -> None:
        """Buffer `table` (its rows go to the partitions named by `paths`, row by row)."""
        n = table.num_rows
        if n == 0:
            return
        self._check()
        if self._props is None and self._sample_rows < PROPERTY_SAMPLE_ROWS:
            take = min(n, PROPERTY_SAMPLE_ROWS - self._sample_rows)
            self._sample.append(table if take == n else table.slice(0, take))
            self._sample_rows += take
            if self._sample_rows == PROPERTY_SAMPLE_ROWS:
                self._properties()
        codes: _Codes | None = None
        if paths is None:
            pids, counts = [self._part("").pid], [n]
        else:
            pids, counts, codes = self._partition_codes(paths, n)
        entry = _Entry(table, codes, pids, counts, table.nbytes)
        self._entries.append(entry)
        self._entry_bytes += entry.nbytes
        opts = self._opts
        for pid, count in zip(pids, counts, strict=True):
            part = self._by_pid[pid]
            part.rows += count
            part.nbytes += count * entry.row_bytes
            if part.spilled or (
                part.rows + part.pending.rows < opts.row_group_rows
                and part.nbytes + part.pending.nbytes < opts.row_group_bytes
            ):
                continue
            if part.files or self._open < opts.max_open_writers:
                self._flush(part, final=False)
        if self._entry_bytes + self._pending_bytes > self._spill_at:
            self._spill_run()

    def _partition_codes(self, paths: pa.Array | pa.ChunkedArray, n: int) -> tuple[list[int], list[int], _Codes | None]:
        """The partitions of a batch's rows: ids present, rows of each, each row's index into the ids."""
        if isinstance(paths, pa.ChunkedArray):
            paths = paths.combine_chunks()
        encoded = paths if pa.types.is_dictionary(paths.type) else pc.dictionary_encode(paths)
        names = encoded.dictionary.to_pylist()
        if len(names) == 1:
            return [self._part(names[0]).pid], [n], None
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        counts = np.bincount(codes, minlength=len(names))
        pids = [self._part(name).pid if count else -1 for name, count in zip(names, counts.tolist(), strict=True)]
        present = [pid for pid in pids if pid >= 0]
        if len(present) == len(pids) and len(set(present)) == len(present):
            return pids, counts.tolist(), codes
        # unused or repeated dictionary entries: renumber the rows by distinct partition
        distinct = list(dict.fromkeys(present))
        local = np.array([distinct.index(pid) if pid >= 0 else 0 for pid in pids], dtype=np.int32)
        codes = local[codes]
        if len(distinct) == 1:
            return distinct, [n], None
        return distinct, np.bincount(codes, minlength=len(distinct)).tolist(), codes

    def _part(self, path: str) -> _Part:
        part = self._parts.get(path)
        if part is None:
            pending = _RowGroups(self._opts.row_group_rows, self._opts.row_group_bytes)
            part = _Part(len(self._by_pid), path, 1 if path else self._split, pending)
            self._parts[path] = part
            self._by_pid.append(part)
        return part

    def _take_rows(self, part: _Part) -> list[tuple[pa.Table, float]]:
        """Take the partition's waiting rows out of the buffered batches, in order."""
        taken: list[tuple[pa.Table, float]] = []
        if not part.rows:
            return taken
        for e in self._entries:
            i = e.local.get(part.pid)
            if i is None or not e.counts[i]:
                continue
            n = e.counts[i]
            rows = e.table if e.codes is None else e.table.take(np.flatnonzero(e.codes == i))
            taken.append((rows, n * e.row_bytes))
            e.counts[i] = 0
            e.remaining -= n
            if not e.remaining:
                self._entry_bytes -= e.nbytes
        self._entries = [e for e in self._entries if e.remaining]
        part.rows, part.nbytes = 0, 0.0
        return taken

    def _flush(self, part: _Part, *, final: bool) -> None:
        """Write the partition's full row groups (and, if `final`, the rest) to its file(s)."""
        before = part.pending.nbytes
        groups: list[tuple[pa.Table, float]] = []
        for rows, nbytes in self._take_rows(part):
            groups += part.pending.add(rows, nbytes)
        if final and (rest := part.pending.rest()) is not None:
            groups.append(rest)
        self._pending_bytes += part.pending.nbytes - before
        for table, nbytes in groups:
            self._emit(part, table, nbytes)

    def _emit(self, part: _Part, table: pa.Table, nbytes: float, *, last: bool = False) -> None:
        """Write `table` as one row group of the partition's next file (round-robin); `last`: then close it."""
        self._properties()
        k = part.groups % part.width
        part.groups += 1
        file = part.files[k] if k < len(part.files) else self._new_file(part)
        file.rows += table.num_rows
        if last:
            file.open = False
            self._open -= 1
        future = self._submit(file, partial(self._write_group, file, table, last), nbytes)
        if last and future is not None:
            self._closing.append(future)

    def _new_file(self, part: _Part) -> _File:
        """Open the partition's next file (once fewer than ``max_open_writers`` are open)."""
        self._make_room()
        key = f"{self._dataset}/{part.path + '/' if part.path else ''}{self._run_id}-{len(part.files)}.parquet"
        part.files.append(_File(key, self._dir / key))
        self._open += 1
        return part.files[-1]

    def _make_room(self) -> None:
        """Wait until a file may open: fewer than ``max_open_writers`` open or still closing."""
        limit = max(1, self._opts.max_open_writers)
        while self._closing and (self._closing[0].done() or self._open + len(self._closing) >= limit):
            self._closing.popleft().result()

    def _write_group(self, file: _File, table: pa.Table, last: bool) -> None:
        if file.writer is None:
            file.path.parent.mkdir(parents=True, exist_ok=True)
            file.writer = pq.ParquetWriter(file.path, self.schema, **self._properties())
        file.writer.write_table(table, row_group_size=table.num_rows)
        if last:
            _close_writer(file)

    def _close_files(self, part: _Part) -> None:
        for file in part.files:
            if file.open:
                file.open = False
                self._open -= 1
                future = self._submit(file, partial(_close_writer, file), 0.0)
                if future is not None:
                    self._closing.append(future)

    def _spill_run(self) -> None:
        """Free the buffer without writing small row groups.

        Partitions with a file take their rows out of the shared batches; a partition without
        one but with half a row group waiting opens a file (if it may) and writes them; all other
        waiting rows spill as one run. If the partitions with a file then hold more than half the
        limit, the largest write what they hold as a shorter row group.
        """
        opts = self._opts
        for part in self._by_pid:
            if not part.rows or part.spilled:
                continue
            if part.files:
                self._flush(part, final=False)
            elif (
                2 * (part.rows + part.pending.rows) >= opts.row_group_rows
                or 2 * (part.nbytes + part.pending.nbytes) >= opts.row_group_bytes
            ) and self._open < opts.max_open_writers:
                self._flush(part, final=True)
        if self._entries:
            self._write_spill()
        if self._pending_bytes > self._spill_at / 2:
            for part in sorted(self._by_pid, key=lambda p: p.pending.nbytes, reverse=True):
                if self._pending_bytes <= self._spill_at / 2 or not part.pending.rows:
                    break
                self._flush(part, final=True)

    def _write_spill(self) -> None:
        totals: dict[int, int] = {}
        for e in self._entries:
            for pid, count in zip(e.pids, e.counts, strict=True):
                if count:
                    totals[pid] = totals.get(pid, 0) + count
        order = sorted(totals)
        for pid in order:
            part = self._by_pid[pid]
            part.spilled.append(self._spill.count)
            part.spilled_bytes += part.nbytes
            self._spill.count += 1
            part.rows, part.nbytes = 0, 0.0
        entries, self._entries, self._entry_bytes = self._entries, [], 0
        self._spill.start()
        if self._spill.last is not None:
            self._spill.last.result()  # one run in the background at a time: memory stays bounded
        self._submit(self._spill, partial(self._write_run, entries, order, len(self._by_pid)), 0.0)

    def _write_run(self, entries: list[_Entry], order: list[int], sentinel: int) -> None:
        for entry in entries:
            entry.table = _narrow_decimals(entry.table)
        written = []
        for pid, table, _ in _grouped(entries, sentinel):
            self._spill.write(table)
            written.append(pid)
        if written != order:  # the batch numbers handed out assume this order
            raise RuntimeError(f"spill run wrote partitions {written[:5]}..., expected {order[:5]}...")

    def _properties(self) -> dict[str, Any]:
        """The writer properties, chosen on the first rows written (see :meth:`_choose_properties`).

        They are chosen once :data:`PROPERTY_SAMPLE_ROWS` rows arrived, or at the first row group
        written if that comes first (all rows so far), so the same rows give the same files
        whatever batches they came in.
        """
        if self._props is None:
            sample = pa.concat_tables(self._sample) if self._sample else self.schema.empty_table()
            self._props = self._choose_properties(sample)
            self._sample, self._sample_rows = [], PROPERTY_SAMPLE_ROWS
        return self._props

    def _choose_properties(self, head: pa.Table) -> dict[str, Any]:
        """Dictionary encoding where it pays; min/max statistics on every column.

        Dictionaries for low-cardinality columns. Statistics on every column, text included, so
        that engines skip row groups on any filter (Athena, DuckDB, pyarrow, Spark); min and max
        of text in no order span nearly every value and skip little, but sorted or clustered text
        (ids, codes, dates as text) prunes well, and readers cannot tell which is which without
        them. Not for text with values longer than :data:`STATS_VALUE_BYTES`: Parquet does not
        store such statistics, and computing them copies the values (a 16 MiB value: +110 MB).
        """
        dictionary, stats = [], []
        for name in head.column_names:
            col = one_array(head.column(name))
            if pc.count_distinct(col).as_py() <= max(1, head.num_rows // 4):
                dictionary.append(name)
            text = pa.types.is_string(col.type) or pa.types.is_binary(col.type)
            if text and len(col) and (pc.max(pc.binary_length(col)).as_py() or 0) > STATS_VALUE_BYTES:
                continue
            stats.append(name)
        return {
            "compression": self._opts.compression,
            "compression_level": self._opts.compression_level,
            "use_dictionary": dictionary,
            "write_statistics": stats,
        }

    # ------------------------------------------------------------------ finishing
    def close(self) -> list[OutputFile]:
        """Write what is buffered and spilled, close every file and list them (on error: :meth:`abort`)."""
        try:
            self._finish()
            if self._pool is not None:
                self._pool.shutdown()
        except BaseException:
            self.abort()
            raise
        self._spill.remove()
        return [
            OutputFile(f.key, f.path, f.rows, f.path.stat().st_size, parse_path(p.path))
            for p in self._parts.values()
            for f in p.files
            if f.rows
        ]

    def _finish(self) -> None:
        if self._by_pid:
            self._properties()  # here, before any task needs them
        entries, self._entries, self._entry_bytes = self._entries, [], 0
        waiting: dict[int, tuple[pa.Table, float]] = {}
        if entries:
            waiting = {pid: (table, nbytes) for pid, table, nbytes in _grouped(entries, len(self._by_pid))}
        # files already open first, so that they are closed before others open
        parts = sorted(self._parts.values(), key=lambda p: (bool(p.spilled), not p.files))
        spilled = deque(p for p in parts if p.spilled)
        for part in parts:
            if part.spilled:
                break
            groups = part.pending.add(*waiting.pop(part.pid)) if part.pid in waiting else []
            if (rest := part.pending.rest()) is not None:
                groups.append(rest)
            for i, (table, nbytes) in enumerate(groups):
                self._emit(part, table, nbytes, last=part.width == 1 and i == len(groups) - 1)
            self._close_files(part)
        if spilled:
            if self._spill.last is not None:
                self._spill.last.result()
            self._spill.finish()
            # one task per partition reads its spilled batches and writes its file: on encode_threads threads
            for part in spilled:
                if part.width != 1 or part.files:
                    raise RuntimeError(f"spilled partition {part.path!r} already has files")
                rest = waiting.pop(part.pid, None)
                file = self._new_file(part)
                file.open = False  # its task closes it
                self._open -= 1
                # a task holds up to a row group read back and its widened copy
                cost = 2 * min(self._opts.row_group_bytes, part.spilled_bytes + (rest[1] if rest else 0.0))
                future = self._submit(file, partial(self._write_spilled, part, file, rest), cost)
                if future is not None:
                    self._closing.append(future)
        self._drain()

    def _write_spilled(self, part: _Part, file: _File, waiting: tuple[pa.Table, float] | None) -> None:
        """Write a spilled partition's one file (a task): its batches run by run, then its rows still waiting.

        The batches come back narrow (:func:`_narrow_decimals`); each row group is widened once.
        """
        groups = _RowGroups(self._opts.row_group_rows, self._opts.row_group_bytes)

        def write(full: list[tuple[pa.Table, float]]) -> None:
            for group, _ in full:
                file.rows += group.num_rows
                self._write_group(file, self._spill.widen(group), False)

        if (held := part.pending.rest()) is not None:  # rows taken out before the partition spilled
            write(groups.add(_narrow_decimals(held[0]), held[1]))
        for i in part.spilled:
            batch = self._spill.batch(i)
            write(groups.add(pa.Table.from_batches([batch]), self._spill.wide_bytes(batch)))
        if waiting is not None:
            write(groups.add(_narrow_decimals(waiting[0]), waiting[1]))
        if (last := groups.rest()) is not None:
            write([last])
        _close_writer(file)

    def abort(self) -> None:
        """Stop and remove every file written so far (and the spill file)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._inflight.clear()
        self._inflight_bytes = 0.0
        self._closing.clear()
        for part in self._parts.values():
            for file in part.files:
                if file.writer is not None:
                    with contextlib.suppress(Exception):
                        file.writer.close()
                file.path.unlink(missing_ok=True)
        self._entries = []
        self._spill.remove()


def _close_writer(file: _File) -> None:
    """Close the file's writer and let it go: a closed pyarrow ParquetWriter keeps ~2 bytes per row it wrote."""
    if file.writer is not None:
        file.writer.close()
        file.writer = None
