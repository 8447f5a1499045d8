"""PartitionedWriter on its own: file naming, row order, spill runs, threads, errors, open-file cap."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine.partitioning import OutputFile, PartitionedWriter, WriterOptions

SCHEMA = pa.schema([("n", pa.int64()), ("s", pa.string()), ("p", pa.string())])


def _table(ns: list[int], parts: list[str] | None = None) -> pa.Table:
    parts = parts if parts is not None else ["" for _ in ns]
    return pa.table(
        {"n": pa.array(ns, pa.int64()), "s": [f"value-{n}" for n in ns], "p": pa.array(parts, pa.string())},
        schema=SCHEMA,
    )


def _write(
    tmp_path: Path,
    batches: list[tuple[pa.Table, pa.Array | None]],
    before_close: Any = None,
    **options: Any,
) -> list[OutputFile]:
    writer = PartitionedWriter(tmp_path, dataset="d", run_id="r", schema=SCHEMA, options=WriterOptions(**options))
    for table, paths in batches:
        writer.write(table, paths)
    if before_close is not None:
        before_close(writer)
    return writer.close()


def _unpartitioned(total: int, batch: int) -> list[tuple[pa.Table, pa.Array | None]]:
    return [(_table(list(range(start, min(total, start + batch)))), None) for start in range(0, total, batch)]


def _partitioned(assignment: list[int], batch: int) -> list[tuple[pa.Table, pa.Array | None]]:
    """Row i (n = i) goes to partition ``p=<assignment[i]>``."""
    out = []
    for start in range(0, len(assignment), batch):
        ns = list(range(start, min(len(assignment), start + batch)))
        names = [f"p={assignment[n]}" for n in ns]
        out.append((_table(ns, names), pa.array(names, pa.string())))
    return out


def _rows(file: OutputFile) -> list[int]:
    table = pq.read_table(file.path)
    assert table.num_rows == file.rows
    return [int(n) for n in table.column("n").to_pylist()]


def _row_groups(file: OutputFile) -> list[int]:
    meta = pq.ParquetFile(file.path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


# --------------------------------------------------------------------------- unpartitioned
@pytest.mark.parametrize("threads", [2, 3])
def test_unpartitioned_row_groups_go_round_robin_over_the_encoding_threads(tmp_path, threads):
    files = _write(tmp_path, _unpartitioned(1000, 70), row_group_rows=150, encode_threads=threads)
    assert [f.key for f in files] == [f"d/r-{k}.parquet" for k in range(threads)]
    groups = [list(range(start, min(1000, start + 150))) for start in range(0, 1000, 150)]
    for k, file in enumerate(files):
        mine = groups[k::threads]  # row group g went to file g % threads
        assert _row_groups(file) == [len(g) for g in mine]
        assert _rows(file) == [n for g in mine for n in g]
        assert file.partition == {}
        assert file.bytes == file.path.stat().st_size
    assert sorted(n for f in files for n in _rows(f)) == list(range(1000))


def test_unpartitioned_with_one_thread_is_one_file_in_order(tmp_path):
    files = _write(tmp_path, _unpartitioned(1000, 70), row_group_rows=150)
    assert [f.key for f in files] == ["d/r-0.parquet"]
    assert _rows(files[0]) == list(range(1000))
    assert _row_groups(files[0]) == [150] * 6 + [100]


def test_unpartitioned_output_stays_one_file_when_not_split(tmp_path):
    files = _write(tmp_path, _unpartitioned(1000, 70), row_group_rows=150, encode_threads=2, split_unpartitioned=False)
    assert [f.key for f in files] == ["d/r-0.parquet"]
    assert _rows(files[0]) == list(range(1000))


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_single_row_group_gives_only_file_0(tmp_path, threads):
    files = _write(tmp_path, _unpartitioned(120, 50), row_group_rows=1000, encode_threads=threads)
    assert [(f.key, f.rows) for f in files] == [("d/r-0.parquet", 120)]
    assert _rows(files[0]) == list(range(120))


def test_row_groups_are_capped_by_bytes_too(tmp_path):
    table = _table(list(range(2000)))
    files = _write(tmp_path, [(table, None)], row_group_bytes=table.nbytes // 5)
    sizes = _row_groups(files[0])
    assert len(sizes) >= 5 and sum(sizes) == 2000
    assert max(sizes) <= 2000 // 5 + 1
    assert _rows(files[0]) == list(range(2000))


# --------------------------------------------------------------------------- partitioned
def _skewed(total: int, partitions: int, seed: int) -> list[int]:
    """Random partitions in random order, partition 0 holding about half the rows."""
    rng = random.Random(seed)
    return [0 if rng.random() < 0.5 else rng.randrange(1, partitions) for _ in range(total)]


@pytest.mark.parametrize(("threads", "compression"), [(1, "lz4"), (1, None), (2, "lz4"), (3, None), (3, "zstd")])
def test_spill_runs_give_one_file_per_partition_with_rows_in_input_order(tmp_path, threads, compression):
    assignment = _skewed(6000, 23, seed=threads)
    seen_spill: list[bool] = []
    files = _write(
        tmp_path,
        _partitioned(assignment, 97),
        before_close=lambda w: seen_spill.append((tmp_path / "_spill" / "r.arrow").exists()),
        buffer_bytes=24 << 10,  # a few batches: dozens of spill runs
        row_group_rows=400,
        max_open_writers=4,
        encode_threads=threads,
        spill_compression=compression,
    )
    assert seen_spill == [True]
    assert not (tmp_path / "_spill" / "r.arrow").exists()
    expected = {p: [n for n, q in enumerate(assignment) if q == p] for p in set(assignment)}
    assert sorted(f.key for f in files) == sorted(f"d/p={p}/r-0.parquet" for p in expected)
    for file in files:
        p = int(file.partition["p"])
        assert _rows(file) == expected[p]
        assert max(_row_groups(file)) <= 400
        assert pq.read_table(file.path).column("p").to_pylist() == [f"p={p}"] * len(expected[p])


@pytest.mark.parametrize(("threads", "compression"), [(1, "lz4"), (2, None)])
def test_spilled_decimals_come_back_exact(tmp_path, threads, compression):
    """Decimals spill as their unscaled int64 (up to 18 digits) and are widened again: nulls, signs, bounds."""
    from decimal import Decimal

    schema = pa.schema(
        [("n", pa.int64()), ("d", pa.decimal128(18, 2)), ("w", pa.decimal128(38, 4)), ("p", pa.string())]
    )
    rng = random.Random(7)
    extremes = [Decimal("9999999999999999.99"), Decimal("-9999999999999999.99"), Decimal("0.00"), Decimal("-0.01")]
    rows = []
    for n in range(3000):
        d = None if n % 11 == 0 else extremes[n % 4] if n % 7 == 0 else Decimal(rng.randint(-(10**9), 10**9)) / 100
        w = None if n % 13 == 0 else Decimal(rng.randint(-(10**30), 10**30)) / 10**4
        rows.append((n, d, w, f"p={rng.randrange(17)}"))
    writer = PartitionedWriter(
        tmp_path,
        dataset="d",
        run_id="r",
        schema=schema,
        options=WriterOptions(
            buffer_bytes=16 << 10, max_open_writers=2, encode_threads=threads, spill_compression=compression
        ),
    )
    for start in range(0, len(rows), 89):
        part = rows[start : start + 89]
        table = pa.table({name: [r[i] for r in part] for i, name in enumerate(schema.names)}, schema=schema)
        writer.write(table.slice(0), table.column("p"))  # a slice: offsets into the buffers must survive
    files = writer.close()
    assert len(files) == 17
    back = pa.concat_tables(pq.read_table(f.path) for f in files).sort_by("n")
    assert back.schema.field("d").type == pa.decimal128(18, 2) and back.schema.field("w").type == pa.decimal128(38, 4)
    assert [tuple(r.values()) for r in back.to_pylist()] == rows


def test_narrow_decimals_round_trip():
    from decimal import Decimal

    from sluice.engine.partitioning import _narrow_decimals, _widen_decimals

    values = [Decimal("-9999999999999999.99"), None, Decimal("-0.01"), Decimal("0.00"), Decimal("12.34"), None]
    table = pa.table(
        {
            "d": pa.array(values, pa.decimal128(18, 2)),
            "w": pa.array(values, pa.decimal128(38, 2)),
            "s": [str(v) for v in values],
        }
    ).slice(1)
    narrow = _narrow_decimals(table)
    assert narrow.schema.types == [pa.int64(), pa.decimal128(38, 2), pa.string()]
    assert narrow.column("d").to_pylist() == [None, -1, 0, 1234, None]
    assert _widen_decimals(narrow, table.schema).equals(table)


def test_partitions_that_fill_row_groups_are_written_directly(tmp_path):
    assignment = [n // 700 for n in range(7000)]  # sorted input: one partition after the other
    seen_spill: list[bool] = []
    files = _write(
        tmp_path,
        _partitioned(assignment, 64),
        before_close=lambda w: seen_spill.append((tmp_path / "_spill").exists()),
        row_group_rows=300,
        encode_threads=2,
    )
    assert seen_spill == [False]
    assert [f.key for f in files] == [f"d/p={p}/r-0.parquet" for p in range(10)]
    for p, file in enumerate(files):
        assert _rows(file) == list(range(p * 700, (p + 1) * 700))
        assert _row_groups(file) == [300, 300, 100]


@pytest.mark.parametrize("threads", [1, 2])
def test_sorted_input_with_a_small_buffer_keeps_order_and_row_group_sizes(tmp_path, threads):
    assignment = [n // 700 for n in range(7000)]
    files = _write(
        tmp_path,
        _partitioned(assignment, 64),
        buffer_bytes=48 << 10,
        row_group_rows=300,
        encode_threads=threads,
    )
    assert [f.key for f in files] == [f"d/p={p}/r-0.parquet" for p in range(10)]
    for p, file in enumerate(files):
        assert _rows(file) == list(range(p * 700, (p + 1) * 700))
        assert max(_row_groups(file)) <= 300


def test_dictionary_paths_with_repeated_and_unused_entries(tmp_path):
    names = pa.array(["p=a", "p=b", "p=a", "p=unused"], pa.string())
    indices = pa.array([0, 2, 1, 0, 2, 1], pa.int32())  # entries 0 and 2 are the same partition
    paths = pa.DictionaryArray.from_arrays(indices, names)
    table = _table(list(range(6)), paths.to_pylist())
    files = _write(tmp_path, [(table, paths), (table, paths)], encode_threads=2)
    assert sorted((f.key, _rows(f)) for f in files) == [
        ("d/p=a/r-0.parquet", [0, 1, 3, 4, 0, 1, 3, 4]),
        ("d/p=b/r-0.parquet", [2, 5, 2, 5]),
    ]


# --------------------------------------------------------------------------- limits and failures
class _OpenFiles:
    """Count the Parquet writers open at once (on any thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = self.peak = 0
        self._lock = threading.Lock()
        init, close = pq.ParquetWriter.__init__, pq.ParquetWriter.close
        counter = self

        def counting_init(self: pq.ParquetWriter, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            with counter._lock:
                counter.open += 1
                counter.peak = max(counter.peak, counter.open)

        def counting_close(self: pq.ParquetWriter) -> None:
            if self.is_open:
                with counter._lock:
                    counter.open -= 1
            close(self)

        monkeypatch.setattr(pq.ParquetWriter, "__init__", counting_init)
        monkeypatch.setattr(pq.ParquetWriter, "close", counting_close)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_max_open_writers_is_respected(tmp_path, monkeypatch, threads):
    counter = _OpenFiles(monkeypatch)
    assignment = [n % 12 for n in range(4800)]  # 12 partitions, all growing at once
    files = _write(
        tmp_path,
        _partitioned(assignment, 120),
        row_group_rows=50,
        buffer_bytes=1 << 30,
        max_open_writers=3,
        encode_threads=threads,
    )
    assert len(files) == 12
    assert counter.peak <= 3
    assert counter.open == 0
    for file in files:
        p = int(file.partition["p"])
        assert _rows(file) == list(range(p, 4800, 12))


def test_max_open_writers_holds_while_closing_in_parallel(tmp_path, monkeypatch):
    counter = _OpenFiles(monkeypatch)
    write_table = pq.ParquetWriter.write_table

    def slow(self: pq.ParquetWriter, table: pa.Table, row_group_size: int | None = None) -> None:
        time.sleep(0.01)  # encodes overlap: several files would be open at once without the cap
        write_table(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", slow)
    assignment = [n % 12 for n in range(600)]  # 12 small partitions, all written at close
    files = _write(tmp_path, _partitioned(assignment, 100), max_open_writers=2, encode_threads=4)
    assert len(files) == 12
    assert counter.peak == 2
    assert counter.open == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_failed_encode_is_raised_and_abort_removes_every_file(tmp_path, monkeypatch, threads):
    write_table = pq.ParquetWriter.write_table
    calls = 0
    lock = threading.Lock()

    def failing(self: pq.ParquetWriter, table: pa.Table, row_group_size: int | None = None) -> None:
        nonlocal calls
        with lock:
            calls += 1
            fail = calls == 4
        if fail:
            raise OSError("disk full")
        write_table(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    writer = PartitionedWriter(
        tmp_path,
        dataset="d",
        run_id="r",
        schema=SCHEMA,
        options=WriterOptions(row_group_rows=100, buffer_bytes=16 << 10, encode_threads=threads),
    )
    with pytest.raises(OSError, match="disk full"):
        for table, paths in _partitioned(_skewed(5000, 5, seed=1), 80):
            writer.write(table, paths)
        writer.close()
    assert list(tmp_path.rglob("*.parquet"))  # some files were written before the failure
    writer.abort()
    assert not list(tmp_path.rglob("*.parquet"))
    assert not list(tmp_path.rglob("*.arrow"))


def test_a_failure_at_close_aborts(tmp_path, monkeypatch):
    def failing(self: pq.ParquetWriter, table: pa.Table, row_group_size: int | None = None) -> None:
        raise OSError("disk full")

    writer = PartitionedWriter(
        tmp_path, dataset="d", run_id="r", schema=SCHEMA, options=WriterOptions(buffer_bytes=4 << 10, encode_threads=2)
    )
    for table, paths in _partitioned(_skewed(2000, 5, seed=2), 50):
        writer.write(table, paths)
    assert (tmp_path / "_spill" / "r.arrow").exists()
    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert not list(tmp_path.rglob("*.parquet"))
    assert not list(tmp_path.rglob("*.arrow"))
    writer.abort()  # again: harmless


def test_empty_batches_and_no_rows_write_nothing(tmp_path):
    assert _write(tmp_path, [(_table([]), None)], encode_threads=2) == []
    assert not list(tmp_path.rglob("*.parquet"))


def test_finished_files_hold_no_memory(tmp_path):
    """A closed pyarrow ParquetWriter keeps ~2 bytes per row it wrote: finished files must let theirs go."""
    before = pa.total_allocated_bytes()
    writer = PartitionedWriter(
        tmp_path,
        dataset="d",
        run_id="r",
        schema=SCHEMA,
        options=WriterOptions(buffer_bytes=1 << 20, max_open_writers=4),
    )
    for table, paths in _partitioned([n % 40 for n in range(600_000)], 20_000):
        writer.write(table, paths)
    del table, paths
    files = writer.close()
    assert len(files) == 40
    assert pa.total_allocated_bytes() - before < 16 << 10  # the writer object is still alive here
