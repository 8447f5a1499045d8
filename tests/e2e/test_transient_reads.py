"""A throttled or reset S3 read in Transform is retried by the state machine, and the run succeeds.

The faults hit the raw object's whole-object GET (Transform's read; Validate reads ranges) in the
local cloud's bridge (``RemoteCloud.inject_request_fault``), under the function's real boto3: a
``SlowDown`` 503 on every attempt botocore makes (the first and its 8 retries: all spent, the S3 adapter raises
TransientError), or the body cut halfway with the connection closed (a reset mid-stream, which
botocore does not retry). Either way Transform fails with ``TransientError``, the state machine's
``Retry`` runs it again, and the run commits every row once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.adapters.clients import RETRIES
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
HEADER = "order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"
# botocore's max_attempts counts the retries: the first attempt comes on top
BOTOCORE_ATTEMPTS = int(RETRIES.retries["max_attempts"]) + 1  # type: ignore[index]


def orders(tag: str, rows: int) -> bytes:
    """`rows` valid orders with ids ``O-<tag><n>``."""
    lines = [HEADER]
    for i in range(rows):
        lines.append(
            f"O-{tag}{i:05d},2026-10-{10 + i % 3:02d}T{i % 24:02d}:{i % 60:02d}:00Z,C-{i % 13:04d},"
            f"{('DE', 'FR', 'NL')[i % 3]},web,{1 + i % 5},2.50,{2.5 * (1 + i % 5):.2f},true"
        )
    return ("\n".join(lines) + "\n").encode()


def failed_tasks(pipeline: Pipeline, key: str) -> list[dict[str, Any]]:
    """``{error, cause}`` of every failed task attempt in the execution that processed raw `key`."""
    sfn = pipeline.conn.client("stepfunctions")
    for execution in pipeline.executions():
        detail = sfn.describe_execution(executionArn=execution["executionArn"])
        if json.loads(detail.get("input") or "{}").get("source", {}).get("key") != key:
            continue
        events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        details = [e.get("taskFailedEventDetails") or e.get("lambdaFunctionFailedEventDetails") for e in events]
        return [d for d in details if d]
    raise AssertionError(f"no execution for {key}")


@pytest.fixture(autouse=True)
def no_faults(pipeline: Pipeline) -> Any:
    pipeline.cloud.clear_faults()
    yield
    pipeline.cloud.clear_faults()


@pytest.mark.parametrize("fault", ["throttled", "reset"])
def test_a_failed_s3_read_in_transform_is_retried_and_the_run_succeeds(pipeline: Pipeline, fault: str) -> None:
    key = f"orders/transient/{fault}.csv"
    data = orders("7" if fault == "throttled" else "8", 3000)
    if fault == "throttled":
        pipeline.cloud.inject_request_fault(key, ranged=False, status=503, code="SlowDown", times=BOTOCORE_ATTEMPTS)
    else:
        pipeline.cloud.inject_request_fault(key, ranged=False, reset_after=len(data) // 2)
    pipeline.upload(key, data)
    pipeline.settle(timeout=240)

    assert pipeline.cloud.clear_faults() == [], "the fault hit Transform's read every time it was armed for"
    run = pipeline.run_of(key)
    assert run["status"] == "SUCCEEDED", run
    expected = sorted(line.split(",", 1)[0] for line in data.decode().splitlines()[1:])
    assert (run["rows_in"], run["rows_out"], run["rows_rejected"]) == (len(expected), len(expected), 0)
    table = pipeline.read_parquet(run["outputs"])
    assert sorted(table.column("order_id").to_pylist()) == expected, "every row once"
    [failure] = failed_tasks(pipeline, key)  # one attempt failed, and the state machine retried it
    assert failure["error"] == "TransientError", failure
    assert ("GetObject: SlowDown" if fault == "throttled" else "AWS connection failed") in failure["cause"]
