"""End-to-end tier: the real state machine on the embedded local cloud."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from localcloud.remote import RemoteCloud
from sluice_cli.connection import Connection
from sluice_cli.query_cmd import s3_filesystem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cloud(local_cloud: RemoteCloud) -> RemoteCloud:
    """The session's local cloud (a subprocess: moto's mock_aws in other tiers cannot reset it)."""
    return local_cloud


@pytest.fixture(scope="session")
def conn(cloud: RemoteCloud) -> Connection:
    return Connection(cloud.endpoint, cloud.resources)


class Pipeline:
    """Helpers to drive the deployed stack the way a user does."""

    def __init__(self, cloud: RemoteCloud, conn: Connection) -> None:
        self.cloud, self.conn = cloud, conn
        self.s3 = conn.client("s3")
        self.raw = conn.resource("RawBucket")
        self.curated = conn.resource("CuratedBucket")
        self.quarantine = conn.resource("QuarantineBucket")

    def upload(self, key: str, data: bytes) -> str:
        """Put an object in the raw bucket; returns its version id."""
        return str(self.s3.put_object(Bucket=self.raw, Key=key, Body=data)["VersionId"])

    def settle(self, timeout: float = 120) -> None:
        self.cloud.wait_idle(timeout=timeout)

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.conn.client("stepfunctions")
        arn = self.conn.resource("PipelineStateMachine")
        return [e for p in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn) for e in p["executions"]]

    def runs_of(self, key: str) -> list[dict[str, Any]]:
        from sluice.adapters.runs_table import DynamoRunTable

        with self.conn.environment():
            return DynamoRunTable(self.conn.resource("RunsTable")).runs_by_source(f"s3://{self.raw}/{key}")

    def run_of(self, key: str, timeout: float = 120) -> dict[str, Any]:
        """The newest finished run of raw `key`."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.runs_of(key) if r.get("status") not in (None, "RUNNING")]
            if runs:
                return runs[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished run for {key}: {self.runs_of(key)}")
            time.sleep(0.3)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def read_parquet(self, uris: list[str]) -> Any:
        fs = s3_filesystem(self.conn)
        import pyarrow as pa

        return pa.concat_tables([pq.read_table(u.removeprefix("s3://"), filesystem=fs) for u in uris])


@pytest.fixture(scope="session")
def pipeline(cloud: RemoteCloud, conn: Connection) -> Pipeline:
    return Pipeline(cloud, conn)
