"""The commit protocol (sluice.pipeline.commit): staged until committed, one live version per key, in version order."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.errors import CommitBusyError, RunNotCommittableError, TransientError
from sluice.pipeline.cleanup import clean
from sluice.pipeline.commit import Head, is_not_older, publication_order
from sluice.pipeline.publication import publish_committed
from sluice.pipeline.runs import (
    COMMITTED,
    COMMITTING,
    FAILED,
    RUNNING,
    SUCCEEDED,
    SUPERSEDED,
    failed_record,
    source_uri,
)
from tests import fanout_data
from tests.commit_world import KEY, World, ids_of
from tests.fakes import MemoryExecutions, MemoryStore

V1 = fanout_data.orders_csv(120, seed=1)
V2 = fanout_data.orders_csv(40, seed=2)
V3 = fanout_data.orders_csv(70, seed=3)
URI = f"s3://raw/{KEY}"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_nothing_is_visible_before_the_commit_and_everything_after(world: World) -> None:
    """Fails if Transform writes to the curated bucket (readers would count a run that may still fail)."""
    landed = world.land(V1)
    assert world.curated_keys() == []
    assert world.record(landed["run_id"])["status"] == RUNNING
    assert world.staged_keys(landed["run_id"])
    outcome = world.commit(landed)
    assert (outcome.status, outcome.seq, outcome.retired_run_id) == (COMMITTED, 1, None)
    record = world.record(landed["run_id"])
    assert record["status"] == COMMITTED and record["commit_seq"] == 1
    assert sorted(u.split("/", 3)[3] for u in record["outputs"]) == world.curated_keys()
    assert world.visible_ids() == ids_of(V1)
    assert world.staged_keys() == [], "the staging is gone once published"
    head = Head.from_item(URI, world.runs.get_head(URI))
    assert (head.live_run_id, head.pending_run_id, head.seq) == (landed["run_id"], None, 1)


def test_a_new_version_replaces_the_old_one_at_its_commit_never_before(world: World) -> None:
    """Fails if the old version's files are deleted before the new one commits (or not at all)."""
    first = world.land(V1)
    world.commit(first)
    second = world.land(V2)
    assert world.visible_ids() == ids_of(V1), "the new version is not visible, the old one still is"
    outcome = world.commit(second)
    assert (outcome.status, outcome.seq, outcome.retired_run_id) == (COMMITTED, 2, first["run_id"])
    assert world.visible_ids() == ids_of(V2)
    assert world.record(first["run_id"])["status"] == SUPERSEDED
    assert world.record(first["run_id"])["superseded_by"] == second["run_id"]


def test_an_older_version_that_commits_last_is_superseded_and_never_visible(world: World) -> None:
    """Fails if commit timing decides instead of version order (the older run would replace the newer)."""
    older = world.transform(world.validate(world.upload(V1)))
    newer = world.transform(world.validate(world.upload(V2)))
    world.commit(newer)
    seen = []
    original = world.store.copy

    def spy(bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        seen.append(to_key)
        original(bucket, key, to_bucket, to_key)

    world.store.copy = spy  # type: ignore[method-assign]
    outcome = world.commit(older)
    assert (outcome.status, outcome.live_run_id) == (SUPERSEDED, newer["run_id"])
    assert seen == [], "an older version is never published, not even for a moment"
    assert world.visible_ids() == ids_of(V2)
    assert world.record(older["run_id"])["status"] == SUPERSEDED
    assert world.record(newer["run_id"])["status"] == COMMITTED
    assert world.staged_keys() == []


def test_a_late_event_for_an_old_version_changes_nothing(world: World) -> None:
    """Fails if a repeated run of an old version may supersede the newer live one."""
    source = world.upload(V1)
    world.commit(world.transform(world.validate(source)))
    world.commit(world.land(V2))
    again = world.transform(world.validate(source, attempt=2))  # e.g. `sluice rerun` of the old run
    assert world.commit(again).status == SUPERSEDED
    assert world.visible_ids() == ids_of(V2)


def test_a_rerun_of_the_live_version_replaces_its_own_output(world: World) -> None:
    source = world.upload(V1)
    first = world.transform(world.validate(source))
    world.commit(first)
    rerun = world.transform(world.validate(source, attempt=2))
    outcome = world.commit(rerun)
    assert (outcome.status, outcome.retired_run_id) == (COMMITTED, first["run_id"])
    assert world.visible_ids() == ids_of(V1)
    assert all(rerun["run_id"] in k for k in world.curated_keys())


def test_committing_twice_is_the_same_commit(world: World) -> None:
    landed = world.land(V1)
    first = world.commit(landed)
    keys = world.curated_keys()
    again = world.commit(landed)
    assert again == first
    assert world.curated_keys() == keys and world.visible_ids() == ids_of(V1)


class FlakyCopies(MemoryStore):
    """Shares a store's objects; the `fail_at`-th copy raises (a crash in the middle of a commit)."""

    def __init__(self, inner: MemoryStore, fail_at: int) -> None:
        self.__dict__ = inner.__dict__
        self._copies = 0
        self._fail_at = fail_at

    def copy(self, bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        self._copies += 1
        if self._copies == self._fail_at:
            raise TransientError("connection reset while copying")
        super().copy(bucket, key, to_bucket, to_key)


def test_a_commit_interrupted_halfway_is_completed_by_its_retry(world: World) -> None:
    """Fails if a retry after a crash mid-copy leaves a mix of versions (or re-decides)."""
    world.commit(world.land(V1))
    second = world.land(V2)
    files = len(world.staged_keys(second["run_id"]))
    assert files > 2
    with pytest.raises(TransientError):
        world.commit(second, store=FlakyCopies(world.store, fail_at=2))
    assert world.record(second["run_id"])["status"] == COMMITTING
    outcome = world.commit(second)
    assert (outcome.status, outcome.seq) == (COMMITTED, 2)
    assert world.visible_ids() == ids_of(V2)
    assert world.record(second["run_id"])["status"] == COMMITTED


def test_another_run_of_the_key_waits_for_the_lease_then_completes_the_crashed_commit(world: World) -> None:
    """Fails if a second committer can interleave with an unfinished commit of the same key."""
    world.commit(world.land(V1))
    crashed = world.land(V2)
    with pytest.raises(TransientError):
        world.commit(crashed, store=FlakyCopies(world.store, fail_at=1))
    newest = world.land(V3)
    with pytest.raises(CommitBusyError, match="is committing"):
        world.commit(newest)
    world.now += world.committer().lease + timedelta(seconds=1)
    outcome = world.commit(newest)
    assert (outcome.status, outcome.seq, outcome.retired_run_id) == (COMMITTED, 3, crashed["run_id"])
    assert world.visible_ids() == ids_of(V3)
    assert world.record(crashed["run_id"])["status"] == SUPERSEDED
    assert world.staged_keys() == []


def test_cleanup_completes_a_commit_whose_committer_died(world: World) -> None:
    world.commit(world.land(V1))
    crashed = world.land(V2)
    with pytest.raises(TransientError):
        world.commit(crashed, store=FlakyCopies(world.store, fail_at=2))
    clean_now = world.now + timedelta(minutes=1)
    report = clean((world.contract,), world.store, world.runs, world.committer(), now=clean_now, **_BUCKETS)
    assert report.commits_completed == [], "not while the committer may still be alive"
    world.now += timedelta(hours=1)
    report = clean((world.contract,), world.store, world.runs, world.committer(), now=world.now, **_BUCKETS)
    assert report.commits_completed == [crashed["run_id"]]
    assert world.visible_ids() == ids_of(V2)
    assert world.record(crashed["run_id"])["status"] == COMMITTED


_BUCKETS = {"curated_bucket": "curated", "work_bucket": "work"}


def test_a_run_failed_meanwhile_cannot_commit(world: World) -> None:
    landed = world.land(V1)
    world.runs.transition(landed["run_id"], (RUNNING,), {"status": FAILED, "reason": "stuck"})
    with pytest.raises(RunNotCommittableError, match="sluice rerun"):
        world.commit(landed)
    assert world.curated_keys() == []


class SlowCopies(MemoryStore):
    """Shares a store's objects; every copy takes a random few milliseconds (commits overlap)."""

    def __init__(self, inner: MemoryStore, rnd: random.Random) -> None:
        self.__dict__ = inner.__dict__
        self._rnd = rnd

    def copy(self, bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        time.sleep(self._rnd.random() / 200)
        super().copy(bucket, key, to_bucket, to_key)


def commit_racing(world: World, result: Any, rnd: random.Random, errors: list[BaseException]) -> None:
    """Commit `result` like Step Functions would: retry while the key is busy or the head moved."""
    for _ in range(400):
        try:
            world.commit(result, store=SlowCopies(world.store, rnd))
            return
        except TransientError:  # CommitBusyError, CommitConflictError
            time.sleep(0.002)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            return


def test_concurrent_commits_of_one_key_leave_exactly_the_newest_version(tmp_path: Path) -> None:
    """Fails without the head's conditional writes and lease: two versions would both stay live."""
    for attempt in range(6):
        world = World(tmp_path / str(attempt))
        rnd = random.Random(attempt)
        datas = [fanout_data.orders_csv(rnd.randint(10, 60), seed=rnd.randint(0, 999)) for _ in range(3)]
        landed = [world.land(d) for d in datas]
        order = landed[:]
        rnd.shuffle(order)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=commit_racing, args=(world, r, rnd, errors)) for r in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert world.visible_ids() == ids_of(datas[-1]), f"attempt {attempt}: commit order {order}"
        statuses = [world.record(r["run_id"])["status"] for r in landed]
        assert statuses == [SUPERSEDED, SUPERSEDED, COMMITTED]
        assert world.staged_keys() == []


def test_version_order_comes_from_s3() -> None:
    listing = ["v9", "v7", "v3"]  # newest first
    assert is_not_older({"version_id": "v9"}, {"version_id": "v7"}, lambda: listing)
    assert not is_not_older({"version_id": "v3"}, {"version_id": "v7"}, lambda: listing)
    assert is_not_older({"version_id": "v7"}, {"version_id": "v7"}, lambda: [])
    # a version no longer listed was deleted: older than any listed one
    assert not is_not_older({"version_id": "gone"}, {"version_id": "v3"}, lambda: listing)
    assert is_not_older({"version_id": "v3"}, {"version_id": "gone"}, lambda: listing)
    # unversioned: S3's sequencers, compared as left-padded hex
    assert is_not_older({"sequencer": "0A"}, {"sequencer": "9"}, lambda: [])
    assert not is_not_older({"sequencer": "0055AED6DCD90281E5"}, {"sequencer": "0055AED6DCD90281E6"}, lambda: [])
    assert is_not_older({"etag": "a"}, {"etag": "b"}, lambda: []), "nothing orders them: the later commit wins"
    assert publication_order(12) < publication_order(13) and publication_order(1) > "2026-11-23T12:00:00.000+00:00"


def test_a_failure_after_the_commit_never_marks_the_run_failed(world: World) -> None:
    """Fails if RecordFailure turns a committed run FAILED (cleanup would then delete its data)."""
    landed = world.land(V1)
    world.commit(landed)
    error = {"Error": "ResourceNotFoundException", "Cause": "stream gone"}
    record = failed_record(
        {"run_id": landed["run_id"], "error": error, "commit": {}},  # type: ignore[typeddict-unknown-key]
        world.record(landed["run_id"]),
        90,
    )
    assert (record["status"], record["failed_step"], record["error_type"]) == (
        COMMITTED,
        "Publish",
        "ResourceNotFoundException",
    )
    world.runs.put_run(record)
    world.now += timedelta(days=2)
    clean((world.contract,), world.store, world.runs, world.committer(), now=world.now, **_BUCKETS)
    assert world.visible_ids() == ids_of(V1)


def test_cleanup_deletes_only_what_no_commit_owns(world: World) -> None:
    committed = world.land(V1)
    world.commit(committed)
    failed = world.land(V2)
    world.runs.transition(failed["run_id"], (RUNNING,), {"status": FAILED})
    running = world.land(V3)
    stray = "fanout_orders/order_date=2026-11-01/orders-gone-0.parquet"
    world.store.put("curated", stray, b"x")
    world.runs.put_run({"run_id": "stuck", "status": RUNNING, "started_at": "2026-11-23T08:00:00+00:00"})
    soon = world.now + timedelta(hours=1)
    report = clean((world.contract,), world.store, world.runs, world.committer(), now=soon, **_BUCKETS)
    assert report.orphans_deleted == [] and report.staging_deleted == [], "nothing younger than the grace period"
    assert report.stuck_runs_failed == ["stuck"]
    later = world.now + timedelta(hours=7)
    report = clean((world.contract,), world.store, world.runs, world.committer(), now=later, **_BUCKETS)
    assert report.orphans_deleted == [] and report.unowned_files == [f"s3://curated/{stray}"], "reported, kept"
    world.store.delete_keys("curated", [stray])
    assert {k.split("/")[4] for k in report.staging_deleted} == {failed["run_id"]}
    assert world.visible_ids() == ids_of(V1)
    assert world.staged_keys(running["run_id"]), "a running run's staging is kept"
    assert world.record(running["run_id"])["status"] == FAILED, "still RUNNING 7 h on: stuck"
    assert world.record(committed["run_id"])["status"] == COMMITTED
    assert source_uri(committed["source"]) == URI
    assert SUCCEEDED not in {world.record(r["run_id"])["status"] for r in (committed, failed, running)}


def test_publication_withdraws_back_to_the_last_published_version(world: World) -> None:
    """Fails if a run retiring a never-published version withdraws only that one's items.

    v1 published; v2 committed but its Publish failed; v3 retires v2. v1's items still count in the
    aggregates, so v3 must withdraw them too, or they are counted twice.
    """
    published: dict[str, list[str]] = {}

    def publish(run: Any, retired: list[str]) -> Any:
        published[run["run_id"]] = retired
        return {"records": 1, "withdrawn": 0}

    def commit_and_publish(data: bytes, *, publish_ok: bool = True) -> str:
        landed = world.land(data)
        outcome = world.commit(landed)
        if publish_ok:
            publish_committed({**landed, "commit": outcome.to_json()}, world.runs, publish)  # type: ignore[typeddict-item]
        return landed["run_id"]

    v1 = commit_and_publish(V1)
    assert world.record(v1)["status"] == SUCCEEDED and world.record(v1)["published_at"]
    v2 = commit_and_publish(V2, publish_ok=False)
    v3 = commit_and_publish(V3)
    assert published == {v1: [], v3: [v2, v1]}
    v4 = commit_and_publish(V1)
    assert published[v4] == [v3], "v3 published: it withdrew everything older"


def test_cleanup_records_executions_that_ended_without_a_run_record(world: World) -> None:
    """Fails if an execution that died before RecordFailure could write (or while it failed) stays invisible."""
    executions = MemoryExecutions()
    running = world.land(V1)
    done = world.land(V2)
    world.commit(done)
    cause = json.dumps({"errorMessage": "result too large", "errorType": "States.DataLimitExceeded"})
    for name, stopped in ((running["run_id"], world.now), (done["run_id"], world.now), ("no-record", world.now)):
        error = {"error": "States.DataLimitExceeded", "cause": cause}
        executions.ended.append({"name": name, "status": "FAILED", "stopped_at": stopped, **error, "input": {}})
    executions.ended.append(
        {"name": "long-ago", "status": "TIMED_OUT", "stopped_at": world.now - timedelta(days=30), "input": {}}
    )
    report = clean(
        (world.contract,),
        world.store,
        world.runs,
        world.committer(),
        executions=executions,
        state_machine_arn="arn:sm",
        now=world.now,
        **_BUCKETS,
    )
    assert sorted(report.failures_recorded) == sorted([running["run_id"], "no-record"])
    for run_id in (running["run_id"], "no-record"):
        record = world.record(run_id)
        assert (record["status"], record["error_type"]) == (FAILED, "States.DataLimitExceeded")
        assert record["reason"] == "execution FAILED: result too large"
    assert world.record(done["run_id"])["status"] == COMMITTED, "a committed run is never marked failed"
    assert world.runs.get_run("long-ago") is None
