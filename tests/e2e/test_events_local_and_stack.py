"""`sluice events render` on the local cloud: the same events from its resources and from its stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcloud.remote import RemoteCloud
from sluice_cli.connection import Connection
from sluice_cli.events_cmd import local_deployment, render, stack_deployment
from sluice_cli.invoke_cmd import function_ids

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e]


def test_events_from_the_local_cloud_match_those_from_its_stack(
    cloud: RemoteCloud, conn: Connection, tmp_path: Path
) -> None:
    lam = conn.client("lambda")
    local = render(local_deployment(conn, ROOT), lam, ROOT / "events", tmp_path / "local")
    stack_name = cloud.describe()["stack"]
    stack = render(
        stack_deployment(conn.client("cloudformation"), stack_name), lam, ROOT / "events", tmp_path / "stack"
    )
    assert [p.name for p in local] == [p.name for p in stack]
    for a, b in zip(local, stack, strict=True):
        assert a.read_text() == b.read_text(), a.name
    env = json.loads((tmp_path / "local" / "env.json").read_text())
    assert sorted(env) == sorted(function_ids(ROOT))
    assert env["TransformFunction"]["RAW_BUCKET"] == conn.resource("RawBucket")
    assert env["CleanupFunction"]["RUNS_TABLE"] == conn.resource("RunsTable")
