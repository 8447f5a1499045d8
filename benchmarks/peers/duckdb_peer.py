"""DuckDB ``COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet, COMPRESSION zstd)``."""

from __future__ import annotations

import os
import sys

import duckdb
from peer_io import Stopwatch, contract_columns, parse_args


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> int:
    args = parse_args(__doc__ or "")
    clock = Stopwatch()
    options = "header = true"
    if args.types == "contract":
        assert args.contract is not None
        kinds = {
            "string": "VARCHAR",
            "int64": "BIGINT",
            "float64": "DOUBLE",
            "bool": "BOOLEAN",
            "date": "DATE",
            "timestamp": "TIMESTAMPTZ",
        }
        cols = ", ".join(
            f"{_literal(name)}: {_literal(f'DECIMAL({ps[0]},{ps[1]})' if ps else kinds[kind])}"
            for name, kind, ps in contract_columns(args.contract)
        )
        options += f", columns = {{{cols}}}"
    target = args.out_dir / "part-0.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # pyarrow and polars size their pools to the CPUs the process may use (taskset); DuckDB counts
    # the machine's CPUs, so tell it
    con.execute(f"SET threads = {len(os.sched_getaffinity(0))}")
    con.execute(
        f"COPY (SELECT * FROM read_csv({_literal(str(args.source))}, {options})) "
        f"TO {_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)"
    )
    clock.report("duckdb", version=duckdb.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
