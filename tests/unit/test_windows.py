"""Window state and exactly-once writes of window aggregates (against the in-memory store)."""

from __future__ import annotations

import json
import threading
from functools import partial

import pytest

from sluice.aggregates.records import PartialUpdate, decode_record, prepare_publication
from sluice.aggregates.spec import AggregateSpec, fold_row, parse_row
from sluice.aggregates.values import ItemKey, Values
from sluice.aggregates.windows import (
    FlushReport,
    RecordDeferredError,
    RecordSkippedError,
    Window,
    WindowState,
    apply_shard,
    apply_source,
    window_state_size,
)
from sluice.contracts import contract_by_name, load_contract
from tests.fakes.aggregate_store import MemoryAggregateStore, StoreCrash

ORDERS = load_contract("contracts/orders.yaml")
SPEC = AggregateSpec.of(ORDERS)
LOOKUP = partial(contract_by_name, contracts=[ORDERS])


def row(minute: int, country: str = "DE", amount: str = "10.00", customer: str = "C-1", hour: int = 10) -> dict:
    return {
        "ordered_at": f"2026-11-01T{hour:02d}:{minute:02d}:00Z",
        "customer_id": customer,
        "country": country,
        "quantity": 1,
        "amount": amount,
        "order_id": "O-000001",
        "channel": "web",
    }


def rows_record(*rows: dict) -> bytes:
    return json.dumps({"v": 1, "type": "rows", "dataset": "orders", "rows": list(rows)}).encode()


def expected(*rows: dict) -> dict[ItemKey, dict]:
    items: dict[ItemKey, Values] = {}
    for r in rows:
        parsed = parse_row(SPEC, r)
        fold_row(SPEC, items.setdefault(parsed.key, SPEC.new_values()), parsed)
    return {k: v.to_json() for k, v in items.items()}


def partials(run_id: str, started_at: str, *rows: dict, src: str = "src-a", superseded=()) -> list[dict]:
    items: dict[ItemKey, Values] = {}
    for r in rows:
        parsed = parse_row(SPEC, r)
        fold_row(SPEC, items.setdefault(parsed.key, SPEC.new_values()), parsed)
    raw = [
        {
            "v": 1,
            "type": "partial",
            "dataset": "orders",
            "run_id": run_id,
            "seq": 0,
            "bucket_seconds": 3600,
            "bucket": k.bucket_iso,
            "group": k.group_dict,
            **v.to_json(),
        }
        for k, v in items.items()
    ]
    return prepare_publication(raw, run_id=run_id, contract_version=1, src=src, order=started_at, superseded=superseded)


def update_of(record: dict) -> PartialUpdate:
    decoded = decode_record(json.dumps(record).encode())
    assert isinstance(decoded, PartialUpdate)
    return decoded


def seq(i: int) -> str:
    return str(49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898 + i)


def run_window(
    store,
    records: list[bytes],
    *,
    shard: str = "shardId-000000000000",
    batch: int = 3,
    budget: int = 700_000,
    start: int = 0,
) -> FlushReport:
    """Feed `records` in batches, passing the JSON state on, then the final invocation."""
    state: dict | None = None
    report = FlushReport()
    for b in range(0, len(records), batch):
        window = Window(WindowState.from_json(state, shard), store, LOOKUP, budget=budget)
        for i, data in enumerate(records[b : b + batch], start=start + b):
            window.handle(seq(i), data)
        state = json.loads(json.dumps(window.close(final=False)))
        report.add(window.report)
    window = Window(WindowState.from_json(state, shard), store, LOOKUP, budget=budget)
    assert window.close(final=True) == {}
    report.add(window.report)
    return report


# ---------------------------------------------------------------------------------------- sources
def test_a_partial_counts_once_however_often_it_is_applied():
    store = MemoryAggregateStore()
    [record] = partials("run-1", "2026-11-02T00:00:00", row(1), row(2, customer="C-2"))
    assert apply_source(store, update_of(record)) == "applied"
    assert apply_source(store, update_of(record)) == "duplicate"
    republished = dict(record, seq=7)  # the same run published again
    assert apply_source(store, update_of(republished)) == "duplicate"
    assert store.totals() == expected(row(1), row(2, customer="C-2"))


def test_a_newer_version_of_a_source_replaces_the_older_one_in_any_order():
    v1 = partials("run-1", "2026-11-02T00:00:00", row(1), row(2))
    v2 = partials("run-2", "2026-11-03T00:00:00", row(3, amount="5.00"), row(4, country="FR"), superseded=[v1])
    other = partials("run-9", "2026-11-01T00:00:00", row(5, amount="1.00"), src="src-b")
    truth = expected(row(3, amount="5.00"), row(4, country="FR"), row(5, amount="1.00"))
    for order in (v1 + other + v2, v2 + other + v1, other + v2 + v1 + v2):
        store = MemoryAggregateStore()
        outcomes = [apply_source(store, update_of(r)) for r in order]
        assert store.totals() == truth, order
        assert "conflict" not in outcomes


def test_withdrawing_the_only_contribution_removes_the_item():
    v1 = partials("run-1", "2026-11-02T00:00:00", row(1, country="NL"))
    v2 = partials("run-2", "2026-11-03T00:00:00", row(1, country="IT"), superseded=[v1])
    store = MemoryAggregateStore()
    for r in v1 + v2:
        apply_source(store, update_of(r))
    assert store.totals() == expected(row(1, country="IT"))


# ---------------------------------------------------------------------------------------- shards
def test_shard_ranges_apply_once_and_overlaps_are_refused():
    store = MemoryAggregateStore()
    key = parse_row(SPEC, row(1)).key
    one = SPEC.new_values()
    fold_row(SPEC, one, parse_row(SPEC, row(1)))
    assert apply_shard(store, key, "s-0", first=seq(0), last=seq(9), values=one) == "applied"
    assert apply_shard(store, key, "s-0", first=seq(0), last=seq(9), values=one) == "duplicate"
    assert apply_shard(store, key, "s-0", first=seq(3), last=seq(5), values=one) == "duplicate"
    assert apply_shard(store, key, "s-0", first=seq(5), last=seq(12), values=one) == "conflict"
    assert apply_shard(store, key, "s-1", first=seq(0), last=seq(9), values=one) == "applied"  # another shard
    assert apply_shard(store, key, "s-0", first=seq(10), last=seq(12), values=one) == "applied"
    assert store.totals()[key]["count"] == 3


def test_a_crash_between_the_two_writes_is_repaired_by_the_retry():
    key = parse_row(SPEC, row(1)).key
    one = SPEC.new_values()
    fold_row(SPEC, one, parse_row(SPEC, row(1)))
    [record] = partials("run-1", "2026-11-02T00:00:00", row(2))

    def until_done(apply) -> None:
        while True:
            try:
                apply()
                return
            except StoreCrash:
                continue

    for attempt_seed in range(40):
        store = MemoryAggregateStore(crash_rate=0.5, seed=attempt_seed)
        until_done(partial(apply_shard, store, key, "s-0", first=seq(0), last=seq(0), values=one))
        until_done(partial(apply_source, store, update_of(record)))
        assert store.totals() == expected(row(1), row(2)), attempt_seed


def test_concurrent_writers_to_one_item_lose_nothing():
    store = MemoryAggregateStore()
    key = parse_row(SPEC, row(1)).key
    one = SPEC.new_values()
    fold_row(SPEC, one, parse_row(SPEC, row(1)))

    def shard_writer(shard: str) -> None:
        for i in range(0, 40, 2):
            apply_shard(store, key, shard, first=seq(i), last=seq(i + 1), values=one)

    threads = [threading.Thread(target=shard_writer, args=(f"s-{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.totals()[key]["count"] == 6 * 20


# ---------------------------------------------------------------------------------------- window
def test_window_folds_rows_and_partials_and_writes_at_the_end():
    store = MemoryAggregateStore()
    records = [
        rows_record(row(1), row(2, country="FR")),
        rows_record(row(3)),
        *[json.dumps(r).encode() for r in partials("run-1", "2026-11-02", row(4, hour=11), src="s")],
    ]
    run_window(store, records, batch=2)
    assert store.totals() == expected(row(1), row(2, country="FR"), row(3), row(4, hour=11))
    assert store.datasets == {("orders", 3600)}


def test_replaying_the_whole_window_changes_nothing():
    store = MemoryAggregateStore()
    rows = [row(i % 60, country=["DE", "FR", "NL"][i % 3], customer=f"C-{i}", hour=i % 5) for i in range(30)]
    records = [rows_record(r) for r in rows]
    first_run = run_window(store, records, batch=4, budget=2_000)  # small budget: several early flushes
    first = store.totals()
    replay = run_window(store, records, batch=7, budget=2_000)  # other batch sizes, same flush points
    assert store.totals() == first == expected(*rows)
    assert first_run.flushes > 3 and replay.flushes == first_run.flushes
    assert set(first_run.outcomes) == {"applied"} and set(replay.outcomes) == {"duplicate"}


def test_a_poison_record_fails_with_everything_after_it_and_what_came_before_is_written():
    store = MemoryAggregateStore()
    window = Window(WindowState("s-0"), store, LOOKUP)
    window.handle(seq(0), rows_record(row(1)))
    with pytest.raises(Exception, match="amount"):
        window.handle(seq(1), rows_record(row(2, amount="ten")))
    with pytest.raises(RecordSkippedError):
        window.handle(seq(2), rows_record(row(3)))
    state = window.close(final=False)
    assert store.totals() == expected(row(1))  # flushed: durable whatever Lambda does with the state
    assert window.poison[0][0] == seq(1)
    retry = Window(WindowState.from_json(state, "s-0"), store, LOOKUP)
    retry.handle(seq(0), rows_record(row(1)))  # redelivered from before the checkpoint: skipped
    retry.handle(seq(2), rows_record(row(3)))  # the poison record went to the DLQ; the shard moves on
    retry.close(final=True)
    assert store.totals() == expected(row(1), row(3))
    assert retry.duplicates == 1


def test_after_a_flush_too_slow_for_the_time_left_the_rest_of_the_batch_is_deferred_and_counted_once():
    """A slow flush leaves the batch's later records to the next invocation, which folds them."""
    store = MemoryAggregateStore()
    rows = [row(m, country=c) for m in range(6) for c in ("DE", "FR", "US")]
    records = [rows_record(r) for r in rows]
    clock = {"left": 60.0}
    window = Window(WindowState("s-0"), store, LOOKUP, budget=10, remaining_seconds=lambda: clock["left"])
    window.handle(seq(0), records[0])  # flushed (over budget) with a minute left: go on
    assert not window.deferred
    clock["left"] = 4.0  # the next flush ends under the reserve
    window.handle(seq(1), records[1])
    deferred = []
    for i in range(2, len(records)):
        with pytest.raises(RecordDeferredError):
            window.handle(seq(i), records[i])
        deferred.append(i)
    state = window.close(final=False)
    assert window.deferred == len(records) - 2 and deferred[0] == 2
    assert store.totals() == expected(*rows[:2])  # everything folded before the deferral is written
    retry = Window(WindowState.from_json(state, "s-0"), store, LOOKUP, remaining_seconds=lambda: 60.0)
    for i in deferred:  # Lambda retries from the first deferred record
        retry.handle(seq(i), records[i])
    retry.close(final=True)
    assert store.totals() == expected(*rows)
    assert retry.duplicates == 0 and not retry.deferred


def test_without_a_clock_a_window_never_defers():
    store = MemoryAggregateStore()
    window = Window(WindowState("s-0"), store, LOOKUP, budget=10)
    for i in range(5):
        window.handle(seq(i), rows_record(row(i)))
    window.close(final=True)
    assert not window.deferred and store.totals() == expected(*(row(i) for i in range(5)))


def test_unknown_dataset_and_contract_without_aggregates_are_poison():
    window = Window(WindowState("s-0"), MemoryAggregateStore(), LOOKUP)
    with pytest.raises(Exception, match="no contract"):
        window.handle(seq(0), json.dumps({"dataset": "sales", "rows": [{}]}).encode())
    assert window.poison


def test_a_failed_flush_fails_the_invocation():
    store = MemoryAggregateStore(crash_rate=1.0)
    window = Window(WindowState("s-0"), store, LOOKUP, budget=10)
    with pytest.raises(StoreCrash):
        window.handle(seq(0), rows_record(row(1)))
    with pytest.raises(RecordSkippedError):
        window.handle(seq(1), rows_record(row(2)))
    with pytest.raises(StoreCrash):
        window.close(final=False)


def test_state_round_trips_and_its_size_bound_holds():
    store = MemoryAggregateStore()
    window = Window(WindowState("s-0"), store, LOOKUP)
    for i in range(300):
        window.handle(
            seq(i),
            rows_record(
                row(
                    i % 60,
                    country=["DE", "FR", "US"][i % 3],
                    customer=f"C-{i}",
                    amount=f"{i}.{i % 100:02d}",
                    hour=i % 24,
                )
            ),
        )
    for i, r in enumerate(partials("run-1", "2026-11-02", row(1), row(2, country="FR"), src="s")):
        window.handle(seq(1000 + i), json.dumps(r).encode())
    state = window.close(final=False)
    size = window_state_size(state)
    assert size <= window.state.size  # the running bound really bounds the JSON
    again = WindowState.from_json(json.loads(json.dumps(state)), "s-0")
    assert again.to_json() == state and again.size == window.state.size
