"""`sluice events render` on the local cloud: the same events from its resources and from its stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcloud.remote import RemoteCloud
from sluice_cli.connection import Connection
from sluice_cli.events_cmd import render
from sluice_cli.invoke_cmd import function_ids

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e]


def test_events_from_the_local_cloud_match_those_from_its_stack(
    cloud: RemoteCloud, conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = render(conn, ROOT, tmp_path / "local")
    for name, value in conn.sdk_env().items():  # the local cloud's CloudFormation, as a deployed stack
        monkeypatch.setenv(name, value)
    stack = Connection.for_stack(cloud.describe()["stack"], endpoint=conn.endpoint)
    assert not stack.local
    assert [p.name for p in render(stack, ROOT, tmp_path / "stack")] == [p.name for p in local]
    for path in local:
        assert (tmp_path / "stack" / path.name).read_text() == path.read_text(), path.name
    env = json.loads((tmp_path / "local" / "env.json").read_text())
    assert sorted(env) == sorted(function_ids(ROOT))
    assert env["TransformFunction"]["RAW_BUCKET"] == conn.resource("RawBucket")
    assert env["CleanupFunction"]["RUNS_TABLE"] == conn.resource("RunsTable")
