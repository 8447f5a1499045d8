"""The commit protocol end to end: what readers see, whatever fails, arrives late or twice.

Each test is one row of the README's guarantees table, run on the local cloud's real state
machine, with faults injected into the deployed functions (``RemoteCloud.inject_fault``). Readers
are ``sluice query`` (DuckDB over every Parquet file listed in the curated bucket, as Athena
would list them). Every raw key here has its own order-id prefix (``O-<prefix><version><row>``),
so a query for ``O-<prefix>%`` sees exactly what readers see of that key.

What readers may see *during* a commit's roll-forward (S3 has no multi-object transaction): the
new version's files appear before the old version's are deleted, so a reader can briefly see
the old version plus part or all of the new one - never less than one whole committed version,
and never a row of a run that did not commit. ``assert_never_less`` checks exactly that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice_cli.main import main
from sluice_cli.query_cmd import query
from sluice_cli.seeding import redeliver
from tests.e2e.conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
# what a reader meets when a file it listed was deleted (by a commit) before it read it
GONE = ("Path does not exist", "NoSuchKey", "NO_SUCH_KEY", "RESOURCE_NOT_FOUND")
HEADER = "order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"


def orders(prefix: str, version: int, rows: int) -> bytes:
    """`rows` valid orders with ids ``O-<prefix><version><n...>`` (6 digits in all)."""
    width = 6 - len(prefix) - 1
    assert rows <= 10**width
    lines = [HEADER]
    for i in range(rows):
        day, hour = 10 + i % 3, i % 24
        lines.append(
            f"O-{prefix}{version}{i:0{width}d},2026-10-{day:02d}T{hour:02d}:{i % 60:02d}:00Z,C-{i % 13:04d},"
            f"{('DE', 'FR', 'NL')[i % 3]},web,{1 + i % 5},2.50,{2.5 * (1 + i % 5):.2f},true"
        )
    return ("\n".join(lines) + "\n").encode()


def ids(data: bytes) -> list[str]:
    return sorted(line.split(",", 1)[0] for line in data.decode().splitlines()[1:])


def visible(pipeline: Pipeline, prefix: str) -> list[str]:
    """Order ids under `prefix` that a reader of the curated bucket sees now (duplicates kept)."""
    for _ in range(20):
        try:
            _, rows = query(pipeline.conn, f"select order_id from orders where order_id like 'O-{prefix}%'")
            return sorted(r[0] for r in rows)
        except Exception as exc:
            if "Table with name orders does not exist" in str(exc):
                return []  # nothing of the dataset is visible yet
            if not any(gone in str(exc) for gone in GONE):
                raise
            time.sleep(0.05)  # a file listed, then deleted by a commit before it was read: read again
    raise AssertionError("the curated bucket kept changing under the reader")


class Watch:
    """A reader querying `prefix` over and over while the pipeline works; collects every answer."""

    def __init__(self, pipeline: Pipeline, prefix: str) -> None:
        self.seen: list[list[str]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pipeline, prefix), daemon=True)

    def _run(self, pipeline: Pipeline, prefix: str) -> None:
        try:
            while not self._stop.is_set():
                self.seen.append(visible(pipeline, prefix))
                time.sleep(0.02)
        except BaseException as exc:  # re-raised by the test thread on exit
            self.errors.append(exc)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.errors:
            raise self.errors[0]


def assert_never_less(seen: list[list[str]], old: list[str], new: list[str]) -> None:
    """Every answer held the whole old version (plus some of the new) or exactly the new one."""
    for answer in seen:
        if sorted(answer) == sorted(new):
            continue
        rest = list(answer)
        for row in old:
            assert row in rest, f"a reader saw less than a whole version: {len(answer)} rows"
            rest.remove(row)
        assert set(rest) <= set(new) and len(rest) == len(set(rest)), "rows of neither version, or doubled"


def run_of_version(pipeline: Pipeline, key: str, version_id: str) -> list[dict[str, Any]]:
    return [r for r in pipeline.runs_of(key) if r["source"].get("version_id") == version_id]


def rerun(pipeline: Pipeline, target: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sluice rerun`` against the local cloud as if it were a deployed stack (``--stack``, ``--endpoint-url``)."""
    for name, value in pipeline.conn.sdk_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)
    args = ["rerun", target, "--stack", pipeline.cloud.stack_name, "--endpoint-url", pipeline.conn.endpoint]
    out = _capture(lambda: main(args))
    return str(json.loads(out)["run_id"])


def _capture(call: Any) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert call() == 0
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def no_faults(pipeline: Pipeline) -> Iterator[None]:
    pipeline.cloud.clear_faults()
    yield
    pipeline.cloud.clear_faults()


# ---------------------------------------------------------------------------------------- versions
def test_back_to_back_versions_leave_only_the_newer_live(pipeline: Pipeline) -> None:
    """Fails if commit timing decides: with the older run slowed down, it would commit last and win.

    Three keys: the older upload's Transform slowed, the newer's slowed, neither.
    """
    cases = {"2": "older", "3": "newer", "4": None}
    uploads = {}
    for prefix, slowed in cases.items():
        key = f"orders/commit/back-to-back-{prefix}.csv"
        old, new = orders(prefix, 1, 1500), orders(prefix, 2, 80)
        v1 = pipeline.upload(key, old)
        v2 = pipeline.upload(key, new)
        if slowed:
            pipeline.cloud.inject_fault(
                "TransformFunction", error=None, delay=3.0, match=v1 if slowed == "older" else v2
            )
        uploads[prefix] = (key, v1, v2, old, new)
    with Watch(pipeline, "4") as watch:
        pipeline.settle()
    for prefix, (key, v1, v2, _, new) in uploads.items():
        assert visible(pipeline, prefix) == ids(new), f"key {prefix}: only the newer version is live"
        [older] = run_of_version(pipeline, key, v1)
        [newer] = run_of_version(pipeline, key, v2)
        assert (older["status"], newer["status"]) == ("SUPERSEDED", "SUCCEEDED"), (prefix, older, newer)
        assert older["superseded_by"] == newer["run_id"]
    _, _, _, old, new = uploads["4"]
    assert_never_less([s for s in watch.seen if s], ids(old), ids(new))


def test_a_late_or_repeated_event_changes_nothing(pipeline: Pipeline) -> None:
    """Fails if a re-delivered event of an old version starts a run that replaces the newer one."""
    prefix, key = "5", "orders/commit/late.csv"
    a, b = orders(prefix, 1, 40), orders(prefix, 2, 25)
    va = pipeline.upload(key, a)
    pipeline.settle()
    vb = pipeline.upload(key, b)
    pipeline.settle()
    executions = len(pipeline.executions())
    redeliver(pipeline.conn, key, va)  # late, after a newer version
    redeliver(pipeline.conn, key, vb)  # twice at once
    redeliver(pipeline.conn, key, vb)
    pipeline.settle()
    assert len(pipeline.executions()) == executions, "one execution per upload"
    assert visible(pipeline, prefix) == ids(b)
    assert [r["status"] for r in run_of_version(pipeline, key, va)] == ["SUPERSEDED"]
    assert [r["status"] for r in run_of_version(pipeline, key, vb)] == ["SUCCEEDED"]


def test_a_new_version_is_processed_and_replaces_the_old_at_its_commit(pipeline: Pipeline) -> None:
    """Fails if the old version's files go before the new version commits, or stay after it."""
    prefix, key = "6", "orders/commit/replace.csv"
    first, second = orders(prefix, 1, 30), orders(prefix, 2, 12)
    pipeline.upload(key, first)
    pipeline.settle()
    assert visible(pipeline, prefix) == ids(first)
    pipeline.upload(key, first)  # the same bytes again: processed again, still exactly one copy visible
    pipeline.settle()
    assert visible(pipeline, prefix) == ids(first)
    with Watch(pipeline, prefix) as watch:
        pipeline.upload(key, second)
        pipeline.settle()
    assert visible(pipeline, prefix) == ids(second)
    assert_never_less(watch.seen, ids(first), ids(second))
    statuses = sorted(r["status"] for r in pipeline.runs_of(key))
    assert statuses == ["SUCCEEDED", "SUPERSEDED", "SUPERSEDED"]
    raw = pipeline.s3.list_object_versions(Bucket=pipeline.raw, Prefix=key)["Versions"]
    assert len(raw) == 3, "processing never modifies or deletes a raw object"


# ---------------------------------------------------------------------------------------- failures
def test_no_reader_sees_a_run_that_fails_after_transform(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if Transform's Parquet is visible before the commit: the reader would see the failed run's rows."""
    prefix, key = "7", "orders/commit/fails-late.csv"
    good, doomed = orders(prefix, 1, 50), orders(prefix, 2, 300)
    pipeline.upload(key, good)
    pipeline.settle()
    pipeline.cloud.inject_fault("SummarizeFunction", error="InjectedFault", times=0, match=key)
    with Watch(pipeline, prefix) as watch:
        version = pipeline.upload(key, doomed)
        pipeline.settle()
    assert len(watch.seen) > 5
    assert all(seen == ids(good) for seen in watch.seen), "every reader saw the committed version, only"
    [failed] = run_of_version(pipeline, key, version)
    assert (failed["status"], failed["failed_step"], failed["error_type"]) == ("FAILED", "Summarize", "InjectedFault")
    pipeline.cloud.clear_faults()
    again = rerun(pipeline, failed["run_id"], monkeypatch)
    pipeline.settle()
    assert visible(pipeline, prefix) == ids(doomed)
    assert {r["run_id"]: r["status"] for r in run_of_version(pipeline, key, version)}[again] == "SUCCEEDED"


CASES = [
    ("TransformFunction", "TransientError", "after", "retry"),  # its work done, its answer lost
    ("SummarizeFunction", "TransientError", "after", "retry"),  # committed, then the answer lost
    ("SummarizeFunction", "CommitBusyError", "before", "retry"),  # another commit of the key holds the lease
    ("PublishFunction", "TransientError", "after", "retry"),  # records put, the answer lost
    ("AggregateFunction", "InjectedFault", "after", "retry"),  # the aggregator's writes done, the batch failed
    ("TransformFunction", "InjectedFault", "after", "rerun"),  # a fatal failure after Transform
    ("SummarizeFunction", "InjectedFault", "after", "rerun"),  # fatal, right after the commit
    ("PublishFunction", "ResourceNotFoundException", "before", "rerun"),  # the stream is gone
]


@pytest.mark.parametrize(("case", "step", "error", "when", "converges_by"), [(i, *c) for i, c in enumerate(CASES)])
def test_a_failure_at_each_step_converges_to_one_committed_result(
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    case: int,
    step: str,
    error: str,
    when: str,
    converges_by: str,
) -> None:
    """Fails if a retried or rerun step leaves the key's rows twice, partly, or not at all."""
    prefix, key = f"8{case}", f"orders/commit/fault-{case}.csv"
    old, new = orders(prefix, 1, 20), orders(prefix, 2, 60)
    pipeline.upload(key, old)
    pipeline.settle()
    pipeline.cloud.inject_fault(step, error=error, when=when, match="" if step == "AggregateFunction" else key)
    with Watch(pipeline, prefix) as watch:
        version = pipeline.upload(key, new)
        pipeline.settle()
    runs = run_of_version(pipeline, key, version)
    if converges_by == "rerun":
        [broken] = runs
        assert broken["status"] in ("FAILED", "COMMITTED"), broken
        assert (broken["error_type"], broken["failed_step"]) == (error, step.removesuffix("Function")), broken
        rerun(pipeline, broken["run_id"], monkeypatch)
        pipeline.settle()
        runs = run_of_version(pipeline, key, version)
    assert visible(pipeline, prefix) == ids(new), "exactly the new version's rows, once"
    statuses = sorted(r["status"] for r in runs)
    assert statuses.count("SUCCEEDED") == 1 and set(statuses) <= {"SUCCEEDED", "SUPERSEDED", "FAILED"}, runs
    assert_never_less(watch.seen, ids(old), ids(new))


def test_a_failed_run_runs_again_when_the_same_bytes_are_dropped_again(pipeline: Pipeline) -> None:
    """Fails if a failed upload's identity blocks the same bytes from running again (e.g. after a contract fix)."""
    prefix, key = "89", "orders/commit/drop-again.csv"
    data = orders(prefix, 1, 15)
    pipeline.cloud.inject_fault("ValidateFunction", error="InputRejectedError", match=key)
    first = pipeline.upload(key, data)
    pipeline.settle()
    assert [r["status"] for r in run_of_version(pipeline, key, first)] == ["FAILED"]
    assert visible(pipeline, prefix) == []
    second = pipeline.upload(key, data)
    pipeline.settle()
    assert [r["status"] for r in run_of_version(pipeline, key, second)] == ["SUCCEEDED"]
    assert visible(pipeline, prefix) == ids(data)


def test_a_failed_publish_loses_no_data_even_after_cleanup(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if RecordFailure marks a committed run FAILED: cleanup would then delete the only live copy."""
    prefix, key = "88", "orders/commit/publish-down.csv"
    v1, v2 = orders(prefix, 1, 30), orders(prefix, 2, 20)
    pipeline.upload(key, v1)
    pipeline.settle()
    pipeline.cloud.inject_fault("PublishFunction", error="ResourceNotFoundException", times=0, match=key)
    version = pipeline.upload(key, v2)
    pipeline.settle()
    [run] = run_of_version(pipeline, key, version)
    assert (run["status"], run["failed_step"], run["error_type"]) == (
        "COMMITTED",
        "Publish",
        "ResourceNotFoundException",
    )
    assert visible(pipeline, prefix) == ids(v2)
    [result] = pipeline.cloud.tick(at=datetime.now(UTC) + timedelta(days=2))
    assert result.function_error is None, result.payload
    assert visible(pipeline, prefix) == ids(v2), "cleanup deletes nothing a commit owns"
    assert not [o for o in result.payload["orphans_deleted"] if run["run_id"] in o]
    pipeline.cloud.clear_faults()
    rerun(pipeline, run["run_id"], monkeypatch)  # the stream is back: publish what it missed
    pipeline.settle()
    assert visible(pipeline, prefix) == ids(v2)
    assert sorted(r["status"] for r in run_of_version(pipeline, key, version)) == ["SUCCEEDED", "SUPERSEDED"]


def test_an_execution_that_fails_without_recording_it_gets_a_failed_run_from_cleanup(pipeline: Pipeline) -> None:
    """Fails if a run whose RecordFailure itself failed (or a runtime error) leaves no FAILED record."""
    prefix, key = "1", "orders/commit/silent.csv"
    pipeline.cloud.inject_fault("ValidateFunction", error="InjectedFault", match=key)
    pipeline.cloud.inject_fault("RecordFailureFunction", error="Sandbox.Timedout", times=0, match=key)
    version = pipeline.upload(key, orders(prefix, 1, 5))
    pipeline.settle(timeout=180)
    assert run_of_version(pipeline, key, version) == [], "nothing recorded the failure yet"
    pipeline.cloud.clear_faults()
    [result] = pipeline.cloud.tick()
    assert result.function_error is None, result.payload
    [run] = run_of_version(pipeline, key, version)
    assert (run["status"], run["error_type"]) == ("FAILED", "Sandbox.Timedout"), run
    assert run["run_id"] in result.payload["failures_recorded"]
    assert run["reason"].startswith("execution FAILED")
