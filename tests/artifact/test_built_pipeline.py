"""The deployable artifact is the tested artifact: the `sam build` output runs the pipeline.

A local cloud in build mode runs every function from `.aws-sam/build` with only its built layers
and the runtime's boto3 on the path (`python -S`), so a module missing from a layer fails here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.remote import RemoteCloud
from sluice_cli.connection import Connection
from sluice_cli.invoke_cmd import DEFAULT_EVENTS, PIPELINE, function_ids
from sluice_cli.seeding import load_event, upload_samples

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"

pytestmark = [
    pytest.mark.build,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (BUILD / "template.yaml").is_file() and not os.environ.get("CI"),
        reason="no sam build output: run `make build` (CI always builds first)",
    ),
]


@pytest.fixture(scope="module")
def built_cloud() -> Iterator[RemoteCloud]:
    cloud = RemoteCloud.spawn(
        ROOT,
        artifact="build",
        log_dir=ROOT / ".sluice" / "build-test-logs",
        workers_per_function=1,
        stack_name="sluice-built",
    )
    try:
        yield cloud
    finally:
        cloud.stop()


def test_built_functions_run_the_pipeline(built_cloud: RemoteCloud) -> None:
    conn = Connection(built_cloud.endpoint, built_cloud.resources)
    upload_samples(conn, ROOT, only=["orders/orders-2026-11-01.csv", "orders/orders-bad-header.csv"])
    built_cloud.wait_idle(timeout=180)
    from sluice.adapters.runs_table import DynamoRunTable

    with conn.environment():
        runs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in DynamoRunTable(conn.resource("RunsTable")).recent_runs()}
    good = runs["orders-2026-11-01.csv"]
    assert good["status"] == "SUCCEEDED", good
    assert good["rows_in"] == good["rows_out"] + good["rows_rejected"] and good["rows_out"] > 0
    assert runs["orders-bad-header.csv"]["status"] == "FAILED"
    agg = conn.client("dynamodb").scan(TableName=conn.resource("AggregatesTable"), Select="COUNT")
    assert agg["Count"] > 0, "the built Publish and Aggregate functions fed the aggregates table"


def test_every_built_function_runs_its_event(built_cloud: RemoteCloud) -> None:
    conn = Connection(built_cloud.endpoint, built_cloud.resources)
    upload_samples(conn, ROOT, only=["orders/orders-2026-11-01.csv"])
    ordered = [fid for fid, _ in PIPELINE] + sorted(set(DEFAULT_EVENTS) - {fid for fid, _ in PIPELINE})
    assert set(ordered) == set(function_ids(ROOT)), "every template function has a default event"
    for function in ordered:
        result = built_cloud.invoke(function, load_event(ROOT / DEFAULT_EVENTS[function], conn), timeout=120)
        assert result.function_error is None, f"{function}: {result.payload}"
