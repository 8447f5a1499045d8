"""The pyarrow floor: parse and encode only, the fastest pipeline pyarrow's parts make, no validation.

pyarrow's streaming CSV reader (multi-threaded, 2 MiB blocks, the contract's column types) feeds
the Parquet writer sluice uses (same dictionary, statistics, row-group and zstd settings, one
encoder thread per CPU). No rules, no quarantine, no line numbers, no text kept for messages:
what is left is the CPU pyarrow itself needs to turn these bytes into this Parquet. sluice's
ratio to it is the price of validation; its ratio to polars bounds what any engine built on
pyarrow can reach.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.csv as pacsv
from peer_io import Stopwatch, parse_args

from sluice.contracts import load_contract
from sluice.engine.partitioning import PartitionedWriter, WriterOptions
from sluice.engine.rules import contract_schema
from sluice.engine.transform import ConvertOptions


def main() -> int:
    args = parse_args(__doc__ or "")
    if args.contract is None:
        raise SystemExit("the floor needs --contract (its column types)")
    clock = Stopwatch()
    contract = load_contract(args.contract)
    schema = contract_schema(contract)
    threads = ConvertOptions().thread_count  # as many as sluice uses here
    reader = pacsv.open_csv(
        args.source,
        read_options=pacsv.ReadOptions(use_threads=threads > 1, block_size=2 << 20),
        convert_options=pacsv.ConvertOptions(column_types=dict(zip(schema.names, schema.types, strict=True))),
    )
    writer = PartitionedWriter(
        args.out_dir, dataset="floor", run_id="floor", schema=schema, options=WriterOptions(encode_threads=threads)
    )
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        writer.write(pa.Table.from_batches([batch]), None)
    files = writer.close()
    clock.report(
        "floor",
        module=sys.modules[PartitionedWriter.__module__].__file__,
        version=pa.__version__,
        threads=threads,
        rows=rows,
        files=len(files),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
