"""``sluice query``: DuckDB SQL over the curated Parquet of the local cloud."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from rich.table import Table

from sluice.contracts import Contract, load_contracts
from sluice.partitioning import partition_schema
from sluice_cli.connection import REGION, Connection, project_root, running
from sluice_cli.display import make_console


def register(subparsers: Any) -> None:
    """Add ``query``."""
    p = subparsers.add_parser("query", help="run DuckDB SQL over the curated Parquet (tables named after datasets)")
    p.add_argument("sql", help='e.g. "select country, sum(amount) from orders group by 1"')
    p.add_argument("--json", action="store_true", help="print rows as JSON")
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


def dataset_of(contract: Contract, bucket: str, fs: pafs.FileSystem) -> ds.Dataset | None:
    """The curated Parquet of `contract` as a pyarrow dataset (None when nothing landed yet)."""
    selector = pafs.FileSelector(f"{bucket}/{contract.dataset}", recursive=True, allow_not_found=True)
    files = [f.path for f in fs.get_file_info(selector) if f.path.endswith(".parquet")]
    if not files:
        return None
    partitioning = ds.partitioning(partition_schema(contract), flavor="hive") if contract.partition else None
    return ds.dataset(
        files,
        format="parquet",
        filesystem=fs,
        partitioning=partitioning,
        partition_base_dir=f"{bucket}/{contract.dataset}",
    )


def connect_duckdb(conn: Connection) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per dataset that has landed data."""
    db = duckdb.connect()
    fs = s3_filesystem(conn)
    bucket = conn.resource("CuratedBucket")
    for contract in load_contracts(project_root() / "contracts"):
        data = dataset_of(contract, bucket, fs)
        if data is not None:
            db.register(contract.dataset, data)
    return db


def query(conn: Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `sql`."""
    db = connect_duckdb(conn)
    try:
        rel = db.sql(sql)
        return list(rel.columns), rel.fetchall()
    except duckdb.Error as exc:
        from sluice.errors import SluiceError

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
    """Run the query and print the result."""
    columns, rows = query(running(), args.sql)
    if args.json:
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=2, default=str))
    else:
        make_console().print(result_table(columns, rows))
    return 0
