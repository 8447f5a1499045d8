"""Hive-style partitions and the bounded-memory Parquet writer behind them.

Partition columns are derived from a contract column (``identity``, ``date``, ``month``,
``year``), appended to every batch after the contract's columns, and name the directory
``<name>=<value>`` the rows land in. Each partition gets exactly one Parquet file per run,
``<dataset>/<name>=<value>/<run_id>-0.parquet``, so a rerun overwrites instead of duplicating.

Memory stays bounded whatever the number of partitions: rows are buffered per partition and
written as one row group when the partition reaches ``row_group_rows`` / ``row_group_bytes``;
when the buffers of many partitions together exceed ``buffer_bytes``, or more than
``max_open_writers`` partitions would need an open file, rows are spilled to a local Arrow IPC
file and written as full row groups at the end (see :class:`PartitionedWriter`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.contracts import Contract, Partition
from sluice.errors import ContractError
from sluice.rules import arrow_type

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_SAFE = " -._~+,;@!$&'()*"


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


def derive(partition: Partition, source: pa.Array) -> pa.Array:
    """Values of a partition column computed from its source column."""
    if partition.transform == "identity":
        return source
    if partition.transform == "date":
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


def escape(value: str | None) -> str:
    """A partition value as a path segment (Hive-style percent escaping; null as the Hive default)."""
    if value is None:
        return DEFAULT_PARTITION
    return quote(value, safe=_SAFE) if value else DEFAULT_PARTITION


def add_partitions(table: pa.Table, contract: Contract) -> tuple[pa.Table, pa.Array | None]:
    """`table` with the partition columns appended, and each row's partition path (None: unpartitioned)."""
    if not contract.partition:
        return table, None
    paths: pa.Array | None = None
    for p in contract.partition:
        values = derive(p, table.column(p.source).combine_chunks())
        table = table.append_column(p.name, values)
        text = path_text(values)
        uniq = pc.unique(text)
        escaped = pa.array([f"{p.name}={escape(v)}" for v in uniq.to_pylist()], pa.string())
        segment = pc.take(escaped, pc.index_in(text, value_set=uniq))
        paths = segment if paths is None else pc.binary_join_element_wise(paths, segment, "/")
    return table, paths


def parse_path(path: str) -> dict[str, str]:
    """``{"name": "value"}`` of a partition path (``""``: unpartitioned)."""
    out: dict[str, str] = {}
    for seg in filter(None, path.split("/")):
        name, _, value = seg.partition("=")
        out[name] = unquote(value)
    return out


@dataclass(frozen=True)
class WriterOptions:
    """Parquet writer settings."""

    row_group_rows: int = 1 << 20
    row_group_bytes: int = 24 << 20
    buffer_bytes: int = 64 << 20
    max_open_writers: int = 64
    compression: str = "zstd"
    compression_level: int | None = None
    background: bool = False


@dataclass(frozen=True)
class WrittenFile:
    """A finished Parquet file."""

    key: str
    path: Path
    rows: int
    bytes: int
    partition: dict[str, str]


@dataclass
class _Part:
    path: str
    key: str
    file: Path
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    writer: pq.ParquetWriter | None = None
    spilled: list[int] | None = None  # batches in the spill file, once the partition spills
    written: int = 0


class _SpillFile:
    """One append-only Arrow IPC file (lz4) holding the spilled batches of every partition."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self._schema = schema
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._count = 0
        self._reader: pa.ipc.RecordBatchFileReader | None = None

    def append(self, table: pa.Table) -> list[int]:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = pa.OSFile(str(self.path), "wb")
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            self._writer = pa.ipc.new_file(self._sink, self._schema, options=options)
        first = self._count
        for batch in table.to_batches():
            self._writer.write_batch(batch)
            self._count += 1
        return list(range(first, self._count))

    def batch(self, i: int) -> pa.RecordBatch:
        if self._reader is None:
            assert self._writer is not None and self._sink is not None
            self._writer.close()
            self._sink.close()
            self._reader = pa.ipc.open_file(pa.OSFile(str(self.path), "rb"))
        return self._reader.get_batch(i)

    def remove(self) -> None:
        if self._writer is not None and self._reader is None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._sink is not None:
            with contextlib.suppress(Exception):
                self._sink.close()
        self.path.unlink(missing_ok=True)


class PartitionedWriter:
    """Write batches into one Parquet file per partition under `staging_dir`, in bounded memory.

    Rows are buffered per partition. A partition whose buffer holds a full row group
    (``row_group_rows`` / ``row_group_bytes``) writes it to its own Parquet file (at most
    ``max_open_writers`` files open). When all buffers together pass ``buffer_bytes`` (many
    partitions), the largest buffers are spilled to one local Arrow IPC file instead of being
    written as tiny row groups; a partition that spilled keeps spilling, and at :meth:`close`
    its rows are written, in their original order, as full row groups, one file at a time.

    Parameters
    ----------
    staging_dir
        Local directory; files land at ``staging_dir / key``.
    dataset, run_id
        Name the files: ``<dataset>/<partition path>/<run_id>-0.parquet``.
    schema
        Schema of every batch written (partition columns included).

    """

    def __init__(
        self, staging_dir: Path, *, dataset: str, run_id: str, schema: pa.Schema, options: WriterOptions
    ) -> None:
        self._dir = staging_dir
        self._dataset = dataset
        self._run_id = run_id
        self.schema = schema
        self._opts = options
        self._parts: dict[str, _Part] = {}
        self._open = 0
        self._buffered = 0
        self._props: dict[str, Any] | None = None
        self._spill = _SpillFile(staging_dir / "_spill" / f"{run_id}.arrow", schema)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet") if options.background else None
        self._inflight: deque[Future[None]] = deque()

    # ------------------------------------------------------------------ background work
    def _run(self, fn: Callable[[], None]) -> None:
        if self._pool is None:
            fn()
            return
        # at most one write in flight: the next batch is prepared while the previous one encodes
        while self._inflight:
            self._inflight.popleft().result()
        self._inflight.append(self._pool.submit(fn))

    def _drain(self) -> None:
        while self._inflight:
            self._inflight.popleft().result()

    # ------------------------------------------------------------------ writing
    def write(self, table: pa.Table, paths: pa.Array | None) -> None:
        """Buffer `table` (its rows go to the partitions named by `paths`, row by row)."""
        if table.num_rows == 0:
            return
        if self._props is None:
            self._props = self._choose_properties(table)
        if paths is None:
            self._append("", table)
        else:
            encoded = pc.dictionary_encode(paths)
            names = encoded.dictionary.to_pylist()
            if len(names) == 1:
                self._append(names[0], table)
            else:
                codes = encoded.indices.to_numpy(zero_copy_only=False)
                order = np.argsort(codes, kind="stable")
                bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
                for k, name in enumerate(names):
                    self._append(name, table.take(pa.array(order[bounds[k] : bounds[k + 1]])))
        if self._buffered > self._opts.buffer_bytes:
            for part in sorted(self._parts.values(), key=lambda p: p.nbytes, reverse=True):
                if self._buffered <= self._opts.buffer_bytes // 2:
                    break
                self._spill_part(part)

    def _append(self, path: str, table: pa.Table) -> None:
        part = self._parts.get(path)
        if part is None:
            key = f"{self._dataset}/{path + '/' if path else ''}{self._run_id}-0.parquet"
            part = self._parts[path] = _Part(path, key, self._dir / key)
        part.tables.append(table)
        part.rows += table.num_rows
        size = table.nbytes
        part.nbytes += size
        self._buffered += size
        if part.rows >= self._opts.row_group_rows or part.nbytes >= self._opts.row_group_bytes:
            if part.spilled is None and (part.writer is not None or self._open < self._opts.max_open_writers):
                self._flush(part)
            else:
                self._spill_part(part)

    def _take_buffer(self, part: _Part) -> pa.Table:
        table = pa.concat_tables(part.tables)
        self._buffered -= part.nbytes
        part.tables, part.rows, part.nbytes = [], 0, 0
        part.written += table.num_rows
        return table

    def _flush(self, part: _Part) -> None:
        """Write the partition's buffer as one row group of its Parquet file."""
        if not part.tables:
            return
        table = self._take_buffer(part)
        if part.writer is None:
            part.writer = self._new_writer(part)
        writer = part.writer
        self._run(lambda: writer.write_table(table, row_group_size=table.num_rows))

    def _spill_part(self, part: _Part) -> None:
        if not part.tables:
            return
        table = self._take_buffer(part)
        if part.spilled is None:
            part.spilled = []
        part.spilled.extend(self._spill.append(table))

    def _new_writer(self, part: _Part) -> pq.ParquetWriter:
        part.file.parent.mkdir(parents=True, exist_ok=True)
        self._open += 1
        assert self._props is not None
        return pq.ParquetWriter(part.file, self.schema, **self._props)

    def _choose_properties(self, sample: pa.Table) -> dict[str, Any]:
        """Dictionary encoding and statistics only where they pay (low-cardinality or non-text columns)."""
        head = sample.slice(0, 100_000)
        dictionary, stats = [], []
        for name in head.column_names:
            col = head.column(name)
            distinct = pc.count_distinct(col).as_py()
            low = distinct <= max(1, head.num_rows // 4)
            if low:
                dictionary.append(name)
            if low or not (pa.types.is_string(col.type) or pa.types.is_binary(col.type)):
                stats.append(name)
        return {
            "compression": self._opts.compression,
            "compression_level": self._opts.compression_level,
            "use_dictionary": dictionary,
            "write_statistics": stats,
        }

    # ------------------------------------------------------------------ finishing
    def close(self) -> list[WrittenFile]:
        """Write what is buffered and spilled, close every file (one at a time) and list them."""
        for part in self._parts.values():
            if part.spilled is None:
                self._flush(part)
                if part.writer is not None:
                    self._run(part.writer.close)
        self._drain()
        for part in self._parts.values():
            if part.spilled is not None:
                self._finish_spilled(part)
        if self._pool is not None:
            self._pool.shutdown()
        self._spill.remove()
        return [
            WrittenFile(p.key, p.file, p.written, p.file.stat().st_size, parse_path(p.path))
            for p in self._parts.values()
            if p.written
        ]

    def _finish_spilled(self, part: _Part) -> None:
        """Write a spilled partition's rows, in order, as full row groups."""
        writer = part.writer or self._new_writer(part)
        assert part.spilled is not None
        pending: list[pa.RecordBatch] = []
        rows = size = 0

        def emit() -> None:
            nonlocal pending, rows, size
            if pending:
                table = pa.Table.from_batches(pending, schema=self.schema)
                writer.write_table(table, row_group_size=table.num_rows)
            pending, rows, size = [], 0, 0

        rest = self._take_buffer(part).to_batches() if part.tables else []
        for batch in [*(self._spill.batch(i) for i in part.spilled), *rest]:
            pending.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if rows >= self._opts.row_group_rows or size >= self._opts.row_group_bytes:
                emit()
        emit()
        writer.close()
        self._open -= 1

    def abort(self) -> None:
        """Stop and remove every file written so far."""
        with contextlib.suppress(Exception):
            self._drain()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        for part in self._parts.values():
            if part.writer is not None:
                with contextlib.suppress(Exception):
                    part.writer.close()
            part.file.unlink(missing_ok=True)
        self._spill.remove()
