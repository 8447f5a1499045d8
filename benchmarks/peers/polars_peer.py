"""polars ``scan_csv(...).sink_parquet(..., compression="zstd")`` (streaming engine)."""

from __future__ import annotations

import sys

import polars as pl
from peer_io import Stopwatch, contract_columns, parse_args


def main() -> int:
    args = parse_args(__doc__ or "")
    clock = Stopwatch()
    overrides: dict[str, pl.DataType] = {}
    if args.types == "contract":
        assert args.contract is not None
        kinds: dict[str, pl.DataType] = {
            "string": pl.String(),
            "int64": pl.Int64(),
            "float64": pl.Float64(),
            "bool": pl.Boolean(),
            "date": pl.Date(),
            "timestamp": pl.Datetime("us", "UTC"),
        }
        overrides = {
            name: pl.Decimal(ps[0], ps[1]) if ps else kinds[kind] for name, kind, ps in contract_columns(args.contract)
        }
    frame = pl.scan_csv(args.source, schema_overrides=overrides or None)
    frame.sink_parquet(args.out_dir / "part-0.parquet", compression="zstd")
    clock.report("polars", version=pl.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
