"""pyarrow ``dataset.write_dataset`` from a CSV dataset to zstd Parquet: the library sluice is built on, no validation.

This is the floor under sluice's engine: pyarrow's own multi-threaded streaming CSV parse and
Parquet encode, nothing else (no rules, no quarantine, no line bookkeeping). sluice's ratio to
it is what validation and row-level quarantine cost.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
from peer_io import Stopwatch, contract_columns, parse_args


def main() -> int:
    args = parse_args(__doc__ or "")
    clock = Stopwatch()
    types: dict[str, pa.DataType] = {}
    if args.types == "contract":
        assert args.contract is not None
        kinds = {
            "string": pa.string(),
            "int64": pa.int64(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us", tz="UTC"),
        }
        types = {
            name: pa.decimal128(ps[0], ps[1]) if ps else kinds[kind]
            for name, kind, ps in contract_columns(args.contract)
        }
    csv_format = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=types))
    parquet = ds.ParquetFileFormat()
    ds.write_dataset(
        ds.dataset(str(args.source), format=csv_format),
        str(args.out_dir),
        format=parquet,
        file_options=parquet.make_write_options(compression="zstd"),
        basename_template="part-{i}.parquet",
        min_rows_per_group=1 << 17,
        max_rows_per_group=1 << 20,
        existing_data_behavior="overwrite_or_ignore",
    )
    clock.report("pyarrow", version=pa.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
