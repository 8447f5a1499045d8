"""sluice: land CSV files as clean, queryable Parquet (the domain package shipped in the Lambda layer)."""

import os
import sys

# pyarrow's jemalloc pool: on Firecracker VMs (Lambda, this project's dev machines) page faults are
# expensive and mimalloc, pyarrow's default, gives freed chunks back and faults them in again;
# jemalloc converted a 1 GB file ~15 % faster with a lower peak RSS (docs/engine.md). It must be
# chosen before pyarrow is imported; an explicit ARROW_DEFAULT_MEMORY_POOL wins.
if sys.platform == "linux":
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"
