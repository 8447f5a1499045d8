"""``sluice query``: DuckDB SQL over curated Parquet: the local cloud's, a ``sluice convert`` folder, or ``s3://``.

One table per dataset (named after it), across contract versions: the files' schemas are unified
by column name (a column a newer version added is NULL in older files), partition columns come
from the folder names with the contract's types. The quarantine is one table per dataset too,
``<dataset>_rejected`` (run_id, line, rule, column, value, message, text).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from rich.table import Table

from sluice.adapters.runs_table import records_snapshot
from sluice.contracts import Contract, load_contracts
from sluice.engine.partitioning import partition_schema, partition_type
from sluice.engine.rules import contract_schema
from sluice.errors import SluiceError
from sluice.pipeline.catalog import hive_type
from sluice.pipeline.visibility import Snapshots, committed_files
from sluice_cli.connection import REGION, Connection, project_root, running
from sluice_cli.display import make_console

FORMATS = ("table", "csv", "json", "parquet")
QUARANTINE_DIR = "_quarantine"  # where `sluice convert --out DIR` puts rejected rows
_REJECTED_COLUMNS = {"_line": "line", "_rule": "rule", "_column": "column", "_value": "value"}


def register(subparsers: Any) -> None:
    """Add ``query``."""
    p = subparsers.add_parser(
        "query",
        help="run DuckDB SQL over the curated Parquet (tables named after datasets, <dataset>_rejected for rejects)",
        description="Run DuckDB SQL over curated Parquet: by default the running local cloud's; --from a "
        "`sluice convert --out` folder or an s3:// bucket (prefix). Each dataset is a table (all contract versions, "
        "columns matched by name, partition columns typed by the contract); <dataset>_rejected is its quarantine.",
    )
    p.add_argument("sql", help='e.g. "select country, sum(amount) from orders group by 1"')
    p.add_argument("--from", dest="source", metavar="DIR|s3://BUCKET[/PREFIX]", help="where the datasets are")
    p.add_argument("--contracts", type=Path, metavar="DIR", help="contracts folder (default: the project's)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default: a table)")
    p.add_argument("--out", type=Path, metavar="FILE", help="with --format parquet: the file to write")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(func=run)


def s3_filesystem(conn: Connection) -> pafs.S3FileSystem:
    """Pyarrow's S3 filesystem on the local cloud (it ignores AWS_ENDPOINT_URL: pass the endpoint)."""
    url = urlparse(conn.endpoint)
    return pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region=REGION,
        endpoint_override=url.netloc,
        scheme=url.scheme or "http",
    )


class _Records:
    """The runs table of a connection, read as consistent snapshots (what :mod:`sluice.pipeline.visibility` needs)."""

    def __init__(self, conn: Connection) -> None:
        self._dynamodb = conn.client("dynamodb")
        self._table = conn.resource("RunsTable")

    def get_many(self, run_ids: Any) -> dict[str, dict[str, Any]]:
        return records_snapshot(self._dynamodb, self._table, run_ids)


def _files(fs: pafs.FileSystem, base: str, suffix: str) -> list[str]:
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return sorted(f.path for f in fs.get_file_info(selector) if f.path.endswith(suffix))


def dataset_of(
    contract: Contract, base: str, fs: pafs.FileSystem, records: Snapshots | None = None
) -> ds.Dataset | None:
    """The Parquet under ``<base>/<dataset>`` as one pyarrow dataset (None when nothing landed yet).

    Its schema: the contract's columns, then any other column some file holds (matched by name:
    files of older contract versions lack newer columns, which read as NULL), then the partition
    columns typed by the contract. With `records` (the runs table of the curated bucket `base`),
    the files are what is committed (:mod:`sluice.pipeline.visibility`): never both a compaction's inputs
    and its output, nor neither; without, every file listed.
    """
    root = f"{base.rstrip('/')}/{contract.dataset}"
    files = [f for f in _files(fs, root, ".parquet") if "/." not in f[len(root) :]]  # not .staging-* leftovers
    if records is not None and files:
        files = [u.removeprefix("s3://") for u in committed_files([f"s3://{f}" for f in files], records)]
    if not files:
        return None
    parts = partition_schema(contract)
    schemas = [contract_schema(contract), *(pq.read_schema(f, filesystem=fs) for f in files)]
    columns = pa.unify_schemas(schemas, promote_options="permissive")
    schema = pa.schema([f for f in columns if f.name not in parts.names] + list(parts))
    partitioning = ds.partitioning(parts, flavor="hive") if contract.partition else None
    return ds.dataset(
        files, schema=schema, format="parquet", filesystem=fs, partitioning=partitioning, partition_base_dir=root
    )


def rejected_of(contract: Contract, base: str, fs: pafs.FileSystem) -> pa.Table | None:
    """Every ``<base>/<dataset>/<run_id>/rejected.csv`` as one table (None when there is none)."""
    root = f"{base.rstrip('/')}/{contract.dataset}"
    tables = []
    for path in _files(fs, root, "/rejected.csv"):
        with fs.open_input_stream(path) as f:
            table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
        table = table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names]))
        run_id = path[len(root) + 1 :].split("/", 1)[0]
        names = {**_REJECTED_COLUMNS, "_message": "message", "_text": "text"}
        table = table.rename_columns([names.get(n, n) for n in table.column_names])
        table = table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))
        tables.append(table.set_column(1, "line", table.column("line").cast(pa.int64())))
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _register(db: duckdb.DuckDBPyConnection, contract: Contract, data: ds.Dataset) -> None:
    """Dataset `data` as table `<dataset>`: decimal partition columns cast to the contract's type."""
    raw = f"_{contract.dataset}_files"
    db.register(raw, data)
    casts = [
        f'cast("{p.name}" as {hive_type(partition_type(p, contract)[1])}) as "{p.name}"'
        for p in contract.partition
        if pa.types.is_decimal(partition_type(p, contract)[0])
    ]
    replace = f" replace ({', '.join(casts)})" if casts else ""
    db.execute(f'create view "{contract.dataset}" as select *{replace} from "{raw}"')


def _source(spec: str | None, conn: Connection | None) -> tuple[pafs.FileSystem, str, str | None]:
    """Filesystem, curated base and quarantine base (None: none) of `spec` (None: the running local cloud)."""
    if spec is None:
        conn = conn or running()
        fs = s3_filesystem(conn)
        return fs, conn.resource("CuratedBucket"), conn.resource("QuarantineBucket")
    if spec.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")}
        if endpoint:
            url = urlparse(endpoint)
            options |= {"endpoint_override": url.netloc, "scheme": url.scheme or "http"}
        return pafs.S3FileSystem(**{k: v for k, v in options.items() if v}), spec[len("s3://") :], None
    folder = Path(spec).resolve()
    if not folder.is_dir():
        raise SluiceError(f"--from {spec}: no such folder")
    return pafs.LocalFileSystem(), str(folder), str(folder / QUARANTINE_DIR)


def connect_duckdb(
    conn: Connection | None = None, *, source: str | None = None, contracts_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per dataset that has data, and ``<dataset>_rejected`` per quarantine."""
    db = duckdb.connect()
    records = None
    if source is None:  # the running local cloud: read what its runs table says is committed
        conn = conn or running()
        records = _Records(conn)
    fs, base, quarantine = _source(source, conn)
    for contract in load_contracts(contracts_dir or project_root() / "contracts"):
        data = dataset_of(contract, base, fs, records)
        if data is not None:
            _register(db, contract, data)
        rejected = rejected_of(contract, quarantine, fs) if quarantine else None
        if rejected is not None:
            db.register(f"{contract.dataset}_rejected", rejected)
    return db


def query(
    conn: Connection | None, sql: str, *, source: str | None = None, contracts_dir: Path | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `sql`."""
    rel = _relation(connect_duckdb(conn, source=source, contracts_dir=contracts_dir), sql)
    return list(rel.columns), rel.fetchall()


def _relation(db: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
    try:
        return db.sql(sql)
    except duckdb.Error as exc:
        raise SluiceError(f"query failed: {exc}") from exc


def result_table(columns: list[str], rows: list[tuple[Any, ...]], title: str = "") -> Table:
    """A rich table of query results."""
    table = Table(title=title or None, title_justify="left")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def run(args: argparse.Namespace) -> int:
    """Run the query and print (or write) the result."""
    fmt = "json" if args.json else args.format
    if fmt == "parquet" and args.out is None:
        raise SluiceError("--format parquet needs --out FILE")
    db = connect_duckdb(None if args.source else running(), source=args.source, contracts_dir=args.contracts)
    rel = _relation(db, args.sql)
    try:
        if fmt == "parquet":
            pq.write_table(rel.to_arrow_table(), args.out, compression="zstd")
            print(f"wrote {args.out}", file=sys.stderr)
            return 0
        columns, rows = list(rel.columns), rel.fetchall()
    except duckdb.Error as exc:
        raise SluiceError(f"query failed: {exc}") from exc
    if fmt == "json":
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=2, default=str, ensure_ascii=False))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in r] for r in rows)
        sys.stdout.write(out.getvalue())
    else:
        make_console().print(result_table(columns, rows))
    return 0
