"""The load test, small: a burst of uploads in both shapes, with duplicates, malformed files and re-versions.

`sluice load --files 300` is the full run (README figures); CI runs this smaller one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.remote import RemoteCloud
from sluice_cli.connection import Connection
from sluice_cli.load_cmd import run_load

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_a_burst_of_uploads_keeps_every_promise() -> None:
    """Fails if any upload lacks exactly one ended run, a key's newest upload is not live, a row is missing or
    doubled, a dead-letter queue holds a message, or the aggregates differ from the curated data."""
    with RemoteCloud.spawn(
        ROOT, stack_name="sluice-load", workers_per_function=3, log_dir=ROOT / ".sluice" / "test-logs" / "load"
    ) as cloud:
        conn = Connection(cloud.endpoint, cloud.resources)
        report = run_load(conn, lambda: cloud.wait_idle(timeout=400), cloud.pid, files=20, shape="both", seed=3)
    assert report.failures == []
    assert report.uploads == 21 and report.runs == report.uploads
    assert report.curated_rows > 0 and report.lag_max > 0
    assert report.lag_max <= report.runs_seconds <= report.seconds and report.runs_per_minute >= report.files_per_minute
