"""Compaction end to end: the scheduled cleanup on the local cloud rewrites a partition of 50 small files.

Readers are ``sluice query`` (DuckDB over the committed state: sluice.pipeline.visibility). Every key here
writes into one partition of its own (order_date 2026-03-15) with ids ``O-9<key><version><row>``,
so a query of that partition sees exactly what readers see of these keys. The cleanup is fired
with ``tick`` as if two hours later (files younger than CompactionMinAgeMinutes are left alone);
``max_actions`` stops it after each step, as a time budget running out would.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sluice_cli.main import main
from sluice_cli.query_cmd import query
from tests.e2e.conftest import ROOT, Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DATE = "2026-03-15"
PARTITION = f"orders/order_date={DATE}/"
KEYS = 50
GONE = ("Path does not exist", "NoSuchKey", "NO_SUCH_KEY", "RESOURCE_NOT_FOUND", "Failed to flush response stream")
HEADER = "order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"
NOOP_FIELDS = (
    "commits_completed",
    "compactions_completed",
    "compactions_committed",
    "compactions_planned",
    "orphans_deleted",
    "staging_deleted",
    "stuck_runs_failed",
)


def orders(key: int, version: int, rows: int) -> bytes:
    """`rows` orders of key number `key` on DATE, ids ``O-9<key:02><version><row:02>``."""
    lines = [HEADER]
    for i in range(rows):
        qty = 1 + (key + i) % 5
        lines.append(
            f"O-9{key:02d}{version}{i:02d},{DATE}T{i % 24:02d}:{key % 60:02d}:00Z,C-{key:04d},DE,web,{qty},"
            f"1.25,{1.25 * qty:.2f},true"
        )
    return ("\n".join(lines) + "\n").encode()


def ids_of(data: bytes) -> list[str]:
    return sorted(line.split(",", 1)[0] for line in data.decode().splitlines()[1:])


def amount_of(datas: list[bytes]) -> Decimal:
    return sum((Decimal(line.split(",")[7]) for d in datas for line in d.decode().splitlines()[1:]), Decimal(0))


def seen(pipeline: Pipeline) -> tuple[list[str], int, Decimal]:
    """What a reader sees of the partition: every order id (duplicates kept), count(*) and sum(amount)."""
    sql = f"select order_id, amount from orders where order_date = DATE '{DATE}'"
    for _ in range(40):
        try:
            _, rows = query(pipeline.conn, sql)
            _, [(count, total)] = query(
                pipeline.conn, f"select count(*), sum(amount) from orders where order_date = DATE '{DATE}'"
            )
            return sorted(r[0] for r in rows), int(count), Decimal(total or 0)
        except Exception as exc:
            if not any(gone in str(exc) for gone in GONE):
                raise
            time.sleep(0.05)  # a file listed, then deleted by a swap before it was read: read again
    raise AssertionError("the curated bucket kept changing under the reader")


def later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=2)


def tick(pipeline: Pipeline, **detail: Any) -> dict[str, Any]:
    [result] = pipeline.cloud.tick(at=later(), detail=detail or None)
    assert result.function_error is None, result.payload
    payload: dict[str, Any] = result.payload
    return payload


def mine(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in plan if c["partition"].endswith(PARTITION)]


@pytest.fixture(scope="module")
def landed(pipeline: Pipeline) -> dict[str, bytes]:
    """50 keys, one small file each in the partition; returns key -> data."""
    data = {f"orders/compaction/k{k:02d}.csv": orders(k, 1, 3 + k % 7) for k in range(KEYS)}
    for key, body in data.items():
        pipeline.upload(key, body)
    pipeline.settle(timeout=600)
    assert len(pipeline.keys(pipeline.curated, PARTITION)) == KEYS
    return data


def expect(data: dict[str, bytes]) -> tuple[list[str], int, Decimal]:
    every = sorted(i for d in data.values() for i in ids_of(d))
    return every, len(every), amount_of(list(data.values()))


def cli_dry_run(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``sluice cleanup --dry-run`` against the local cloud as if it were a deployed stack."""
    for name, value in pipeline.conn.sdk_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)
    args = ["cleanup", "--dry-run", "--at", later().isoformat(), "--stack", pipeline.cloud.stack_name]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([*args, "--endpoint-url", pipeline.conn.endpoint]) == 0
    plan: dict[str, Any] = json.loads(buffer.getvalue())
    return plan


def test_dry_run_returns_the_plan_and_changes_nothing(
    pipeline: Pipeline, landed: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if a dry run writes anything (a compaction record, a staged file, a deletion)."""
    work = pipeline.conn.resource("WorkBucket")
    staged_before = pipeline.keys(work, "staging/")
    plan = cli_dry_run(pipeline, monkeypatch)
    assert plan["dry_run"] is True and [c["files"] for c in mine(plan["compactions_planned"])] == [KEYS]
    payload = tick(pipeline, dry_run=True)
    assert payload["dry_run"] is True
    [planned] = mine(payload["compactions_planned"])
    assert planned["files"] == KEYS and planned["runs"] == KEYS
    assert payload["compactions_committed"] == [] and payload["actions"] == 0
    assert len(pipeline.keys(pipeline.curated, PARTITION)) == KEYS
    assert pipeline.keys(work, "staging/") == staged_before
    assert seen(pipeline) == expect(landed)


def test_a_compaction_stopped_after_each_step_never_shows_duplicates_or_gaps(
    pipeline: Pipeline, landed: dict[str, bytes]
) -> None:
    """Fails if a reader between two steps sees a row twice or misses one, or if a stopped pass is not resumed.

    Each tick may do one action (``max_actions``: stage, decide, swap, release), so the
    compaction stops after every step and the next tick resumes it; the reader queries between.
    """
    want = expect(landed)
    before = seen(pipeline)
    assert before == want
    steps = 0
    while True:
        payload = tick(pipeline, max_actions=1)
        steps += 1
        assert seen(pipeline) == want, f"after step {steps}: {payload['stopped']}"
        done = [c for c in payload["compactions_committed"] + payload["compactions_completed"]]
        files = pipeline.keys(pipeline.curated, PARTITION)
        if len(files) == 1 and done:
            break
        assert steps < 8, payload
    assert steps == 4, "stage, decide, swap, release: one tick each"
    [compacted] = files
    assert compacted.rsplit("/", 1)[1].startswith("cmp-")
    payload = tick(pipeline)  # the rest (other tests' partitions, if any), then nothing is left
    again = tick(pipeline)
    assert {f: again[f] for f in NOOP_FIELDS} == {f: [] for f in NOOP_FIELDS}, "a second pass changes nothing"
    assert seen(pipeline) == want, "count(*) and sum(amount) as before"


def test_a_new_version_after_compaction_supersedes_exactly_its_rows(
    pipeline: Pipeline, landed: dict[str, bytes]
) -> None:
    """Fails if a key's new version leaves its old rows in the compacted file, or takes other keys' rows with it."""
    assert len(pipeline.keys(pipeline.curated, PARTITION)) == 1, "compacted by the test before"
    key = "orders/compaction/k07.csv"
    newer = orders(7, 2, 4)
    pipeline.upload(key, newer)
    pipeline.settle()
    data = {**landed, key: newer}
    assert seen(pipeline) == expect(data)
    statuses = sorted(r["status"] for r in pipeline.runs_of(key))
    assert statuses == ["SUCCEEDED", "SUPERSEDED"], statuses
    files = pipeline.keys(pipeline.curated, PARTITION)
    assert len(files) == 2, "the rewritten compaction and the new version's file"
    third = orders(7, 3, 2)  # the same key again: its rows are a plain file now
    pipeline.upload(key, third)
    other = "orders/compaction/k30.csv"  # and another member of the compaction
    other_new = orders(30, 2, 5)
    pipeline.upload(other, other_new)
    pipeline.settle()
    data = {**data, key: third, other: other_new}
    assert seen(pipeline) == expect(data)
    payload = tick(pipeline)
    assert payload["orphans_deleted"] == [] or all(PARTITION not in o for o in payload["orphans_deleted"])
    assert seen(pipeline) == expect(data)


def test_a_commit_over_compacted_rows_that_loses_its_answer_converges(
    pipeline: Pipeline, landed: dict[str, bytes]
) -> None:
    """Fails if Summarize's retry, after a commit that rewrote the compacted file, rewrites it again or loses rows.

    The fault is the commit-protocol tests' ``when="after"``: the commit (and its rewrite of the
    compaction) is done, then the invocation fails, and the state machine retries it.
    """
    pipeline.cloud.clear_faults()
    key = "orders/compaction/k40.csv"
    newer = orders(40, 2, 6)
    pipeline.cloud.inject_fault("SummarizeFunction", error="TransientError", when="after", match=key)
    pipeline.upload(key, newer)
    pipeline.settle()
    pipeline.cloud.clear_faults()
    current = {  # what the test before left live, and the new version
        **landed,
        "orders/compaction/k07.csv": orders(7, 3, 2),
        "orders/compaction/k30.csv": orders(30, 2, 5),
        key: newer,
    }
    assert seen(pipeline) == expect(current)
    assert sorted(r["status"] for r in pipeline.runs_of(key)) == ["SUCCEEDED", "SUPERSEDED"]
    files = pipeline.keys(pipeline.curated, PARTITION)
    assert len([f for f in files if f.rsplit("/", 1)[1].startswith("cmp-")]) == 1, files
    assert len(files) == 4, "one compaction (rewritten three times) and the three new versions' files"
