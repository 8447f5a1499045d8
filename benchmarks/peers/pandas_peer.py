"""pandas ``read_csv`` -> ``to_parquet`` (pyarrow engine, zstd): the popular recipe, whole file in memory."""

from __future__ import annotations

import sys

import pandas as pd
from peer_io import Stopwatch, contract_columns, parse_args


def main() -> int:
    args = parse_args(__doc__ or "")
    clock = Stopwatch()
    kwargs: dict[str, object] = {}
    if args.types == "contract":
        assert args.contract is not None
        dtypes: dict[str, str] = {}
        dates: list[str] = []
        for name, kind, _ in contract_columns(args.contract):
            if kind == "timestamp":
                dates.append(name)
            else:  # pandas has no decimal dtype: decimals stay float64
                dtypes[name] = {
                    "int64": "Int64",
                    "bool": "boolean",
                    "decimal": "float64",
                    "float64": "float64",
                    "date": "str",
                }.get(kind, "str")
        kwargs = {"dtype": dtypes, "parse_dates": dates}
    frame = pd.read_csv(args.source, **kwargs)  # type: ignore[call-overload]
    frame.to_parquet(args.out_dir / "part-0.parquet", engine="pyarrow", compression="zstd", index=False)
    clock.report("pandas", rows=len(frame), version=pd.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
