"""One ``sluice tune`` measurement: ``sluice convert``'s engine entry in this (pinned) process, timed.

Run by ``sluice tune`` as ``python -m sluice_cli.tune_worker FILE CONTRACT OUT`` with the CPU
affinity and ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` of one memory size; prints one JSON line.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402  (imports are part of what is measured)
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# What the engine imports on its first call: a warm invocation has them loaded already.
import pyarrow.compute  # noqa: E402
import pyarrow.csv  # noqa: E402
import pyarrow.parquet  # noqa: E402, F401

from sluice.engine.transform import ConvertOptions  # noqa: E402
from sluice_cli.convert_cmd import _convert_file  # noqa: E402


def main(argv: list[str]) -> int:
    """Convert FILE with CONTRACT into OUT like ``sluice convert --progress never``; print the timings."""
    file, contract, out = (Path(a) for a in argv)
    args = argparse.Namespace(
        file=file, contract=contract, out=out, run_id=None, block_size_mib=2, threads=0, progress="never"
    )
    init = time.perf_counter() - STARTED
    began = time.perf_counter()
    summary = _convert_file(args, {}, [])
    seconds = time.perf_counter() - began
    report = {
        "seconds": seconds,
        "init_seconds": init,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
        "threads": ConvertOptions().thread_count,
        "input_bytes": file.stat().st_size,
        "rows_in": summary["rows_in"],
        "rows_rejected": summary["rows_rejected"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
