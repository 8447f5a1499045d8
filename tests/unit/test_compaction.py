"""Compaction (sluice.pipeline.compaction) and the cleanup around it, in memory: plan, commit, resume, supersede."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.errors import CommitBusyError
from sluice.pipeline.cleanup import CleanupReport, CompactionSettings, clean
from sluice.pipeline.commit import Head
from sluice.pipeline.compaction import Bin, Budget, Compactor, SmallFile, plan_partition
from sluice.pipeline.runs import COMMITTED, COMMITTING, SUPERSEDED
from sluice.pipeline.visibility import committed_files
from tests import fanout_data
from tests.commit_world import World

HOUR = timedelta(hours=1)
SETTINGS = CompactionSettings(target_bytes=1 << 20, min_files=4, min_age=HOUR)


def orders(prefix: str, rows: int, version: int = 1) -> bytes:
    """`rows` valid orders, all on 2026-11-02 (one partition), ids ``O-<prefix><version><n>``."""
    lines = [fanout_data.HEADER]
    for i in range(rows):
        qty = 1 + i % 3
        lines.append(f"O-{prefix}{version}{i:03d},2026-11-02T{i % 24:02d}:00:00Z,C-1,DE,web,{qty},2.00,{2 * qty}.00,")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def compactor(world: World, budget: Budget | None = None) -> Compactor:
    return Compactor(world.runs, world.store, "work", 90, timedelta(minutes=6), lambda: world.now, budget or Budget())


def committer(world: World) -> Any:
    made = world.committer()
    made.compactions = compactor(world)
    return made


def run_cleanup(world: World, budget: Budget | None = None, *, dry_run: bool = False) -> CleanupReport:
    work = compactor(world, budget)
    made = world.committer()
    made.compactions = work
    return clean(
        (world.contract,),
        world.store,
        world.runs,
        made,
        curated_bucket="curated",
        work_bucket="work",
        now=world.now,
        compactor=work,
        compaction=SETTINGS,
        dry_run=dry_run,
    )


def committed_view(world: World) -> pa.Table:
    """What ``sluice query`` reads: the committed files only (sluice.pipeline.visibility)."""
    uris = [f"s3://curated/{k}" for k in world.curated_keys()]
    files = committed_files(uris, world.runs)
    tables = [pq.read_table(io.BytesIO(world.store.objects[("curated", u.split("/", 3)[3])])) for u in files]
    return pa.concat_tables(tables) if tables else pa.table({"order_id": pa.array([], pa.string())})


def ids(table: pa.Table) -> list[str]:
    return sorted(table.column("order_id").to_pylist())


def land_keys(world: World, n: int) -> dict[str, bytes]:
    """`n` keys committed, one small file each in the same partition; returns key -> data."""
    keys = {}
    for k in range(n):
        key, data = f"fanout_orders/k{k:02d}.csv", orders(f"{k:02d}", 5 + k)
        world.commit(world.land(data, key))
        keys[key] = data
    return keys


def expected(datas: list[bytes]) -> list[str]:
    return sorted(line.split(",", 1)[0] for d in datas for line in d.decode().splitlines()[1:])


# ------------------------------------------------------------------------------------------ planner
def small(uri: str, size: int, run: str, schema: str = "s") -> SmallFile:
    return SmallFile(f"s3://c/d/p=1/{uri}", size, run, schema)


def test_the_planner_bins_small_files_near_the_target_and_never_splits_a_run() -> None:
    files = [small(f"r{i:02d}-0.parquet", 300, f"r{i:02d}") for i in range(10)]
    files += [small("r03-1.parquet", 300, "r03"), small("big-0.parquet", 900, "big")]
    bins = plan_partition("s3://c/d/p=1/", files, target_bytes=1000, min_files=4)
    assert len(bins) >= 3 and all(b.bytes <= 1000 for b in bins)
    assert not any("big" in f.uri for b in bins for f in b.files), "a file above 3/4 of the target stays"
    [with_r03] = [b for b in bins if "r03" in b.members]
    assert {f.uri.rsplit("/", 1)[1] for f in with_r03.files} >= {"r03-0.parquet", "r03-1.parquet"}
    taken = sorted(f.uri for b in bins for f in b.files)
    assert len(taken) == len(set(taken)) == 11


def test_the_planner_leaves_a_partition_with_few_small_files_and_separates_schemas() -> None:
    few = [small(f"r{i}-0.parquet", 10, f"r{i}") for i in range(3)]
    assert plan_partition("s3://c/d/p=1/", few, target_bytes=1000, min_files=4) == []
    mixed = [small(f"r{i}-0.parquet", 10, f"r{i}", schema="ab"[i % 2]) for i in range(8)]
    bins = plan_partition("s3://c/d/p=1/", mixed, target_bytes=1000, min_files=4)
    assert len(bins) == 2 and all(len({f.schema for f in b.files}) == 1 for b in bins)


def test_the_planner_caps_the_runs_of_a_compaction_and_its_id_is_stable() -> None:
    files = [small(f"r{i:03d}-0.parquet", 1, f"r{i:03d}") for i in range(200)]
    bins = plan_partition("s3://c/d/p=1/", files, target_bytes=1000, min_files=4, max_members=90)
    assert [len(b.members) for b in bins] == [90, 90, 20]
    again = plan_partition("s3://c/d/p=1/", list(reversed(files)), target_bytes=1000, min_files=4, max_members=90)
    assert [b.compaction_id for b in bins] == [b.compaction_id for b in again]
    assert isinstance(bins[0], Bin) and bins[0].compaction_id.startswith("cmp-")


# ------------------------------------------------------------------------------------------ compaction
def test_small_files_become_one_with_the_same_rows_and_a_second_pass_does_nothing(world: World) -> None:
    keys = land_keys(world, 12)
    before = committed_view(world)
    assert len(world.curated_keys()) == 12
    world.now += 2 * HOUR
    report = run_cleanup(world)
    assert len(report.compactions_committed) == 1 and report.files_compacted == 12, report
    assert len(world.curated_keys()) == 1
    after = committed_view(world)
    assert ids(after) == ids(before) == expected(list(keys.values()))
    assert world.visible_ids() == ids(after), "a plain listing reader sees the same once the swap is done"
    assert pa.compute.sum(after.column("amount")) == pa.compute.sum(before.column("amount"))
    [cid] = report.compactions_committed
    record = world.record(cid)
    assert record["status"] == COMMITTED and len(record["members"]) == 12 and len(record["replaces"]) == 12
    assert "expires_at" not in record, "a committed compaction never expires"
    for key in keys:
        head = Head.from_item(f"s3://raw/{key}", world.runs.get_head(f"s3://raw/{key}"))
        assert head.pending_run_id is None and head.compacted == (cid,)
    assert world.staged_keys() == []
    again = run_cleanup(world)
    assert again.changes == 0 and again.compactions_planned == [], again


def test_dry_run_plans_and_changes_nothing(world: World) -> None:
    land_keys(world, 6)
    world.now += 2 * HOUR
    items, objects = dict(world.runs.items), dict(world.store.objects)
    report = run_cleanup(world, dry_run=True)
    assert len(report.compactions_planned) == 1 and report.compactions_planned[0]["files"] == 6
    assert report.compactions_committed == [] and report.changes == 0
    assert world.runs.items == items and world.store.objects == objects


def test_young_files_are_not_compacted(world: World) -> None:
    land_keys(world, 6)
    assert run_cleanup(world).compactions_planned == [], "younger than min_age: a new version may still come"


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_a_compaction_stopped_after_each_step_shows_every_row_once_and_finishes_next_pass(
    world: World, steps: int
) -> None:
    keys = land_keys(world, 8)
    want = expected(list(keys.values()))
    world.now += 2 * HOUR
    first = run_cleanup(world, Budget(max_actions=steps))
    assert first.stopped and first.compactions_committed == []
    assert ids(committed_view(world)) == want, "no row lost or doubled for a committed-state reader"
    if steps >= 2:  # decided: the heads are leased by the compaction
        [cid] = [r for r, i in world.runs.items.items() if i.get("kind") == "compaction"]
        assert world.record(cid)["status"] == COMMITTING
    second = run_cleanup(world)
    assert second.stopped is None
    assert len(second.compactions_committed) + len(second.compactions_completed) == 1, second
    assert ids(committed_view(world)) == want == world.visible_ids()
    assert len(world.curated_keys()) == 1 and world.staged_keys() == []
    assert run_cleanup(world).changes == 0


class DiesOnDelete:
    """The store, failing at the swap's batch delete (the compacted file was copied): a holder that died."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def delete_keys(self, bucket: str, keys: list[str]) -> int:
        if bucket == "curated":
            raise TimeoutError("the function died mid-swap")
        return int(self._store.delete_keys(bucket, keys))


def test_a_compaction_whose_holder_died_mid_swap_is_completed_once_its_lease_expired(world: World) -> None:
    keys = land_keys(world, 5)
    want = expected(list(keys.values()))
    world.now += 2 * HOUR
    dying = compactor(world)
    dying.store = DiesOnDelete(world.store)
    made = world.committer()
    made.compactions = dying
    with pytest.raises(TimeoutError):
        clean(
            (world.contract,), world.store, world.runs, made, curated_bucket="curated", work_bucket="work",
            now=world.now, compactor=dying, compaction=SETTINGS,
        )  # fmt: skip
    assert len(world.curated_keys()) == 6, "copied, not yet deleted: a plain listing sees both (documented)"
    assert ids(committed_view(world)) == want, "a committed-state reader sees every row once"
    world.now += timedelta(minutes=1)
    assert run_cleanup(world).compactions_completed == [], "not while its holder may be alive"
    world.now += timedelta(minutes=6)
    report = run_cleanup(world)
    assert len(report.compactions_completed) == 1
    assert ids(committed_view(world)) == want == world.visible_ids()
    assert len(world.curated_keys()) == 1


def test_a_live_holder_keeps_others_waiting(world: World) -> None:
    keys = land_keys(world, 4)
    world.now += 2 * HOUR
    stopped = run_cleanup(world, Budget(max_actions=2))  # staged and decided
    assert stopped.stopped
    [cid] = [r for r, i in world.runs.items.items() if i.get("kind") == "compaction"]
    item = world.runs.items[cid]
    item["lease_until"] = (world.now + timedelta(minutes=5)).isoformat()  # as if its holder were alive
    with pytest.raises(CommitBusyError):
        compactor(world).complete(cid)
    key = next(iter(keys))
    newer = world.land(orders("99", 3), key)
    with pytest.raises(CommitBusyError):
        committer(world).commit(newer)
    world.now += timedelta(minutes=6)
    outcome = committer(world).commit(newer)
    assert outcome.status == COMMITTED
    assert world.record(cid)["status"] == SUPERSEDED, "rewritten without the superseded run"


def test_a_new_version_after_compaction_supersedes_exactly_its_rows(world: World) -> None:
    keys = land_keys(world, 10)
    world.now += 2 * HOUR
    [cid] = run_cleanup(world).compactions_committed
    key = sorted(keys)[3]
    newer = orders("77", 4, version=2)
    committer(world).commit(world.land(newer, key))
    keys[key] = newer
    want = expected(list(keys.values()))
    assert ids(committed_view(world)) == want
    assert world.visible_ids() == want, "the plain listing reader too: the compacted file was rewritten"
    old = world.record(cid)
    assert old["status"] == SUPERSEDED
    rewrite = world.record(old["superseded_by"])
    assert rewrite["status"] == COMMITTED and len(rewrite["members"]) == 9 and rewrite["supersedes"] == cid
    # a second new version of another key follows the chain to the rewrite
    other = sorted(keys)[7]
    again = orders("66", 2, version=3)
    committer(world).commit(world.land(again, other))
    keys[other] = again
    assert ids(committed_view(world)) == expected(list(keys.values())) == world.visible_ids()
    # and the same key again: its rows are plain files now, the compaction is not touched
    third = orders("55", 3, version=4)
    committer(world).commit(world.land(third, key))
    keys[key] = third
    assert ids(committed_view(world)) == expected(list(keys.values())) == world.visible_ids()


def test_one_action_per_pass_makes_progress_stage_decide_swap_release(world: World) -> None:
    """Fails if a resumed compaction redoes a finished step (a pass of one action would never finish)."""
    keys = land_keys(world, 6)
    want = expected(list(keys.values()))
    world.now += 2 * HOUR
    stops = []
    for _ in range(6):
        report = run_cleanup(world, Budget(max_actions=1))
        assert ids(committed_view(world)) == want
        stops.append(report.stopped)
        if report.compactions_committed or report.compactions_completed:
            break
    assert len(stops) == 4, stops
    assert len(world.curated_keys()) == 1 and run_cleanup(world).changes == 0


# ------------------------------------------------------------------------------------------ retention
def test_retention_deletes_old_raw_versions_only_when_their_run_committed(world: World) -> None:
    """Fails if a raw version that never committed (needed by `sluice rerun`) or the current one is deleted."""
    world.contract = fanout_data.contract(retention={"raw_days": 1, "quarantine_days": 3})
    committed_key, failed_key = "fanout_orders/a.csv", "fanout_orders/b.csv"
    world.commit(world.land(orders("01", 3), committed_key))
    world.commit(world.land(orders("01", 4, version=2) + b"O-019999,too few fields\n", committed_key))
    failed = world.land(orders("02", 3), failed_key)
    world.runs.transition(failed["run_id"], ("RUNNING",), {"status": "FAILED"})
    world.commit(world.land(orders("02", 2, version=2), failed_key))
    quarantined = [k for b, k in world.store.objects if b == "quarantine"]
    assert quarantined, "the broken line was quarantined"
    world.now += timedelta(hours=12)
    assert run_cleanup_with_buckets(world).raw_versions_deleted == [], "replaced less than raw_days ago"
    world.now += timedelta(days=2)
    plan = run_cleanup_with_buckets(world, dry_run=True)
    assert plan.raw_versions_deleted == [f"s3://raw/{committed_key}?versionId=v1"]
    assert world.store.version_ids("raw", committed_key) == ["v2", "v1"], "a dry run deletes nothing"
    report = run_cleanup_with_buckets(world)
    assert report.raw_versions_deleted == plan.raw_versions_deleted
    assert world.store.version_ids("raw", committed_key) == ["v2"]
    assert world.store.version_ids("raw", failed_key) == ["v2", "v1"], "never committed: kept for a rerun"
    assert report.quarantine_deleted == [], "younger than quarantine_days"
    world.now += timedelta(days=2)
    report = run_cleanup_with_buckets(world)
    assert sorted(u.split("/", 3)[3] for u in report.quarantine_deleted) == sorted(quarantined)
    assert run_cleanup_with_buckets(world).changes == 0


def run_cleanup_with_buckets(world: World, *, dry_run: bool = False) -> CleanupReport:
    return clean(
        (world.contract,),
        world.store,
        world.runs,
        world.committer(),
        curated_bucket="curated",
        work_bucket="work",
        raw_bucket="raw",
        quarantine_bucket="quarantine",
        now=world.now,
        dry_run=dry_run,
    )


def test_a_live_record_written_with_a_ttl_loses_it(world: World) -> None:
    """Fails if a committed run's record can still expire: its files would then be unowned, and hidden from readers."""
    landed = world.land(orders("03", 3), "fanout_orders/c.csv")
    world.commit(landed)
    world.runs.items[landed["run_id"]]["expires_at"] = int(world.now.timestamp()) + 86400  # as written before
    world.now += timedelta(hours=7)
    assert run_cleanup(world, dry_run=True).expiries_cleared == [landed["run_id"]]
    assert "expires_at" in world.record(landed["run_id"])
    assert run_cleanup(world).expiries_cleared == [landed["run_id"]]
    assert "expires_at" not in world.record(landed["run_id"])
    assert run_cleanup(world).changes == 0


def test_readers_of_the_committed_state_see_exactly_one_side_of_a_rewrite_in_flight() -> None:
    """Fails if a compaction and the rewrite replacing it are both shown (or neither), whatever the listing holds."""
    from tests.fakes import MemoryRunTable

    runs = MemoryRunTable()
    old = {"run_id": "cmp-a", "kind": "compaction", "status": "COMMITTED", "rewriting": "cmp-b"}
    old |= {"outputs": ["s3://c/d/p=1/cmp-a-0.parquet"], "replaces": ["s3://c/d/p=1/r1-0.parquet"]}
    new = {"run_id": "cmp-b", "kind": "compaction", "status": "COMMITTING", "supersedes": "cmp-a"}
    new |= {"outputs": ["s3://c/d/p=1/cmp-b-0.parquet"], "replaces": old["outputs"]}
    runs.put_run(old)
    runs.put_run(new)
    runs.put_run({"run_id": "r2", "status": "SUCCEEDED"})
    listing = ["s3://c/d/p=1/cmp-a-0.parquet", "s3://c/d/p=1/cmp-b-0.parquet", "s3://c/d/p=1/r2-0.parquet"]

    def seen(listed: list[str]) -> list[str]:
        return sorted(committed_files(listed, runs))

    assert seen(listing) == [listing[0], listing[2]], "staged/copied, not yet published"
    runs.put_run(new | {"published": True})
    assert seen(listing) == [listing[1], listing[2]], "published: the rewrite, not what it replaces"
    assert seen(listing[:1] + listing[2:]) == [listing[1], listing[2]], "from the record, even if not listed"
    runs.put_run(old | {"status": "SUPERSEDED", "superseded_by": "cmp-b", "rewriting": None})
    runs.put_run(new | {"status": "COMMITTED", "published": True})
    assert seen(listing[:1] + listing[2:]) == [listing[1], listing[2]]
