"""Every S3 key sluice reads or writes, named in one place.

Curated bucket (what readers query; only the commit writes here)::

    <dataset>/<partition>=<value>/.../<run_id>-<n>.parquet

Quarantine bucket (diagnosis; never read by tables)::

    <dataset>/<run_id>/rejected.csv, report.json

Work bucket (where readers never look)::

    staging/<run_id>/<curated key>          Parquet a run staged; the commit copies it to <curated key>
    runs/<run_id>/manifest.json             the run manifest (sluice.pipeline.manifest.RunManifest)
    runs/<run_id>/partials.json             the run's partial aggregates
    plans/<run_id>/ranges.json              a fan-out's byte ranges (the Distributed Map's items)
    parts/<run_id>/<index>.json             a range's part manifest, written last: the range is done
    parts/<run_id>/<index>/rejected.csv     a range's quarantine (lines count from the range)
    parts/<run_id>/<index>/report.json
    parts/<run_id>/<index>/partials.json
"""

from __future__ import annotations

import re
from pathlib import Path

from sluice.pipeline.runid import checked

_RUN_FILE = re.compile(r"(?P<run>[A-Za-z0-9_-]+)-(?P<n>\d+)\.parquet$")
STAGING = "staging/"


def manifest_key(run_id: str) -> str:
    """Work-bucket key of a run's manifest."""
    return f"runs/{checked(run_id)}/manifest.json"


def partials_key(run_id: str) -> str:
    """Work-bucket key of a run's partial aggregates."""
    return f"runs/{checked(run_id)}/partials.json"


def staging_prefix(run_id: str) -> str:
    """Work-bucket prefix of the Parquet a run staged before its commit."""
    return f"{STAGING}{checked(run_id)}/"


def staged_key(run_id: str, curated_key: str) -> str:
    """Work-bucket key where run `run_id` stages the file the commit publishes as `curated_key`."""
    return f"{staging_prefix(run_id)}{curated_key}"


def quarantine_prefix(dataset: str, run_id: str) -> str:
    """Quarantine-bucket prefix of a run's rejected rows and report."""
    return f"{dataset}/{checked(run_id)}/"


def plan_key(run_id: str) -> str:
    """Work-bucket key of a fan-out's byte ranges (a JSON array of ``ByteRange``)."""
    return f"plans/{checked(run_id)}/ranges.json"


def parts_prefix(run_id: str) -> str:
    """Work-bucket prefix of everything the byte ranges of a fan-out left."""
    return f"parts/{checked(run_id)}/"


def part_prefix(run_id: str, index: int) -> str:
    """Work-bucket prefix of the files byte range `index` left (quarantine, report, partials)."""
    return f"parts/{checked(run_id)}/{int(index)}/"


def part_manifest_key(run_id: str, index: int) -> str:
    """Work-bucket key of range `index`'s manifest (written last: its presence means the part is complete)."""
    return f"parts/{checked(run_id)}/{int(index)}.json"


def range_output_key(key: str, run_id: str, index: int) -> str:
    """Curated key of a range's Parquet file: ``<run_id>-0.parquet`` becomes ``<run_id>-<index>.parquet``.

    Raises
    ------
    ValueError
        `key` is not a file of run `run_id`.

    """
    single = f"{run_id}-0.parquet"
    if key.rsplit("/", 1)[-1] != single:
        raise ValueError(f"{key!r} is not a Parquet file of run {run_id}")
    return f"{key[: -len(single)]}{run_id}-{index}.parquet"


def work_dir(root: Path, run_id: str, what: str = "") -> Path:
    """A run's local scratch folder under `root` (``/tmp/sluice``): ``<run_id>[-<what>]``."""
    return root / (checked(run_id) + (f"-{what}" if what else ""))


def run_of_output(key: str) -> str | None:
    """The run id a curated (or staged) Parquet file name carries, or None for foreign files."""
    m = _RUN_FILE.search(key.rsplit("/", 1)[-1])
    return m.group("run") if m else None


def run_of_staged(key: str) -> str | None:
    """The run id of a key under ``staging/``, or None."""
    if not key.startswith(STAGING):
        return None
    run, _, rest = key[len(STAGING) :].partition("/")
    return run if rest else None
