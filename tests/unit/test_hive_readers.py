"""Every partition layout, written by the real engine, read back as a dataset directory by each reader.

DuckDB (``hive_partitioning`` with the contract's types), pyarrow.dataset, pandas.read_parquet(dir)
and pyarrow's ``read_table(dir)`` must all give back the source rows, partition columns included;
so must PySpark when ``make spark-venv`` installed it (it is not in the dev lock: ~450 MB). polars
is not in the lock, so it is not tested.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Contract
from sluice.engine.partitioning import partition_schema, partition_type
from sluice.pipeline.catalog import hive_type
from tests.unit.conftest import REPO, build_contract, convert_bytes

N = 24
TEXTS = ["DE", "café", "a/b", "x=y", "sp ace", "007", "100%", "日本", None]


def _source() -> list[dict[str, Any]]:
    """The source rows, as Python values (the expectation is computed from these alone)."""
    rows = []
    for i in range(N):
        rows.append(
            {
                "n": i,
                "ts": dt.datetime(1999 + 3 * (i % 5), 1 + i % 12, 1 + i % 28, i % 24, 5, 0, tzinfo=dt.UTC),
                "day": dt.date(2019 + i % 3, 12 - i % 12, 28 - i % 27) if i % 7 else None,
                "s": TEXTS[i % len(TEXTS)],
                "k": (i % 4) - 1 if i % 5 else None,
                "b": (i % 3 == 0) if i % 4 else None,
                "price": Decimal(f"{i % 3}.{(25 * i) % 100:02d}"),
            }
        )
    return rows


def _csv(rows: list[dict[str, Any]]) -> bytes:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dt.datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f'"{v}"' if isinstance(v, str) else str(v)

    names = list(rows[0])
    return ("\n".join([",".join(names)] + [",".join(cell(r[c]) for c in names) for r in rows]) + "\n").encode()


COLUMNS = [
    {"name": "n", "type": "int64", "required": True},
    {"name": "ts", "type": "timestamp", "required": True},
    {"name": "day", "type": "date"},
    {"name": "s", "type": "string"},
    {"name": "k", "type": "int64"},
    {"name": "b", "type": "bool"},
    {"name": "price", "type": "decimal(10,2)"},
]

# layout -> (partition spec, each partition value computed from a source row)
LAYOUTS: dict[str, tuple[list[dict[str, str]], dict[str, Any]]] = {
    "date": ([{"name": "d", "source": "ts", "transform": "date"}], {"d": lambda r: r["ts"].date()}),
    "date-of-date-with-null": (
        [{"name": "d", "source": "day", "transform": "date"}],
        {"d": lambda r: r["day"]},
    ),
    "month": (
        [{"name": "m", "source": "ts", "transform": "month"}],
        {"m": lambda r: f"{r['ts'].year:04d}-{r['ts'].month:02d}"},
    ),
    "year": ([{"name": "y", "source": "ts", "transform": "year"}], {"y": lambda r: r["ts"].year}),
    "string": ([{"name": "sp", "source": "s"}], {"sp": lambda r: r["s"] or None}),
    "int": ([{"name": "kp", "source": "k"}], {"kp": lambda r: r["k"]}),
    "bool": ([{"name": "bp", "source": "b"}], {"bp": lambda r: r["b"]}),
    "decimal": ([{"name": "pp", "source": "price"}], {"pp": lambda r: r["price"]}),
    "year-and-string": (
        [{"name": "y", "source": "ts", "transform": "year"}, {"name": "sp", "source": "s"}],
        {"y": lambda r: r["ts"].year, "sp": lambda r: r["s"] or None},
    ),
}


def _expected(layout: str) -> list[dict[str, Any]]:
    derived = LAYOUTS[layout][1]
    return [{**r, **{name: f(r) for name, f in derived.items()}} for r in _source()]


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def written(request: Any, tmp_path_factory: Any) -> tuple[str, Contract, Any]:
    layout = request.param
    contract = build_contract(COLUMNS, partition=LAYOUTS[layout][0])
    out = convert_bytes(_csv(_source()), contract, tmp_path_factory.mktemp(layout), block_size=512)
    assert out.result.rows_out == N and out.result.rows_rejected == 0
    return layout, contract, out.staging / contract.dataset


def _normal(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value


def _rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: _normal(v) for k, v in r.items()} for r in records), key=lambda r: r["n"])


def _text(value: Any) -> str:
    """A partition value as its folder names it (what a reader without types sees)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check(layout: str, got: list[dict[str, Any]], *, partitions_as_text: bool = False) -> None:
    expected = _expected(layout)
    if partitions_as_text:
        names = LAYOUTS[layout][1]
        expected = [{k: (_text(v) if k in names and v is not None else v) for k, v in r.items()} for r in expected]
    assert _rows(got) == expected


def _typed(table: pa.Table, contract: Contract) -> pa.Table:
    """`table` with its partition columns in their contract types (pyarrow reads a decimal folder as text)."""
    types = {p.name: partition_type(p, contract)[0] for p in contract.partition}
    return table.cast(pa.schema([f.with_type(types.get(f.name, f.type)) for f in table.schema]))


def test_duckdb_reads_the_directory_with_the_contract_types(written):
    layout, contract, root = written
    types = {p.name: hive_type(partition_type(p, contract)[1]) for p in contract.partition}
    rel = duckdb.sql(f"select * from read_parquet('{root}/**/*.parquet', hive_partitioning=true, hive_types={types})")
    got = [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    _check(layout, got)


def test_pyarrow_dataset_reads_the_directory_with_the_contract_types(written):
    layout, contract, root = written
    data = ds.dataset(root, format="parquet", partitioning=ds.partitioning(partition_schema(contract), flavor="hive"))
    _check(layout, _typed(data.to_table(), contract).to_pylist())


def test_pyarrow_read_table_and_pandas_read_the_directory_as_is(written):
    """No types given: the readers infer them from the folder names (text, or integers), with no clash."""
    layout, contract, root = written
    table = pq.read_table(root)
    names = [p.name for p in contract.partition]
    plain = table.cast(
        pa.schema([f.with_type(pa.string()) if f.name in names else f for f in table.schema])
    ).to_pylist()
    _check(layout, plain, partitions_as_text=True)
    nulls = any(v is None for r in _expected(layout) for k, v in r.items() if k in names)
    if not nulls:  # pyarrow 26 cannot yet turn a null in an inferred dictionary into pandas (see docs)
        frame = pd.read_parquet(root)
        for name in names:
            frame[name] = frame[name].astype(str)
        _check(layout, frame.to_dict("records"), partitions_as_text=True)
    read = pq.read_table(root, partitioning=ds.partitioning(partition_schema(contract), flavor="hive"))
    typed = _typed(read, contract).to_pandas()
    _check(layout, typed.astype(object).to_dict("records"))


SPARK_PYTHON = REPO / ".spark-venv" / "bin" / "python"
_SPARK_READ = """
import json, sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]").config("spark.sql.session.timeZone", "UTC")
         .config("spark.ui.enabled", "false").getOrCreate())
out = {}
for layout, root, ddl in json.loads(sys.argv[1]):
    rows = spark.read.schema(ddl).parquet(root).collect()
    out[layout] = [{k: (None if v is None else v.isoformat() if hasattr(v, "isoformat") else str(v))
                    for k, v in r.asDict().items()} for r in rows]
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not SPARK_PYTHON.exists(), reason="PySpark lives in .spark-venv: `make spark-venv` (needs Java 17+)"
)
def test_spark_reads_every_layout(tmp_path):
    """Spark (its Hive-style partition discovery, with the contract's types) gives back the source rows."""
    jobs, contracts = [], {}
    for layout in sorted(LAYOUTS):
        contract = build_contract(COLUMNS, partition=LAYOUTS[layout][0])
        out = convert_bytes(_csv(_source()), contract, tmp_path / layout, block_size=512)
        columns = [(c.name, c.type) for c in contract.columns]
        columns += [(p.name, partition_type(p, contract)[1]) for p in contract.partition]
        ddl = ", ".join(f"`{name}` {hive_type(t)}" for name, t in columns)
        jobs.append((layout, str(out.staging / contract.dataset), ddl))
        contracts[layout] = contract
    done = subprocess.run(
        [str(SPARK_PYTHON), "-c", _SPARK_READ, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYSPARK_PYTHON": str(SPARK_PYTHON)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None).isoformat()
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    for layout in sorted(LAYOUTS):
        expected = [{k: text(v) for k, v in r.items()} for r in _expected(layout)]
        spark_rows = [{k: (v.lower() if v in ("True", "False") else v) for k, v in r.items()} for r in got[layout]]
        assert sorted(spark_rows, key=lambda r: int(r["n"])) == expected, layout
