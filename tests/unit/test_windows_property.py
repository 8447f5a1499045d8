"""Property: whatever the event-source mapping does - duplicate publishes, retries, bisections, lost
responses, crashes mid-flush, poison records, shard splits, whole-shard replays, newer versions of a
file - the aggregates in the store equal the ground truth computed from the rows themselves.

The mapping is simulated with Lambda's documented semantics: per shard, in order; a batch whose
invocation fails is retried (bisected) with the previous state; a partial failure checkpoints before
the first failed record; a record failing too often goes to the DLQ; the window's final invocation is
retried until it succeeds.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.aggregates.records import prepare_publication
from sluice.aggregates.spec import AggregateSpec, fold_row, parse_row
from sluice.aggregates.values import ItemKey, Values
from sluice.aggregates.windows import FlushReport, Window, WindowState
from sluice.contracts import contract_by_name, load_contract
from tests.fakes.aggregate_store import MemoryAggregateStore, StoreCrash

ORDERS = load_contract("contracts/orders.yaml")
SPEC = AggregateSpec.of(ORDERS)
LOOKUP = partial(contract_by_name, contracts=[ORDERS])
COUNTRIES = ["DE", "FR", "NL"]
MAX_RETRIES = 3


def random_row(rng: random.Random) -> dict:
    return {
        "ordered_at": f"2026-11-01T{rng.randrange(10, 14):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
        "customer_id": f"C-{rng.randrange(25)}",
        "country": rng.choice(COUNTRIES),
        "quantity": rng.randrange(1, 9),
        "amount": f"{rng.randrange(0, 500)}.{rng.randrange(100):02d}",
        "order_id": "O-000001",
        "channel": "web",
    }


def partial_records(run_id: str, order: str, src: str, rows: list[dict], superseded: list[list[dict]]) -> list[dict]:
    items: dict[ItemKey, Values] = {}
    for r in rows:
        parsed = parse_row(SPEC, r)
        fold_row(SPEC, items.setdefault(parsed.key, SPEC.new_values()), parsed)
    raw = [
        {
            "dataset": "orders",
            "run_id": run_id,
            "seq": 0,
            "bucket_seconds": SPEC.bucket_seconds,
            "bucket": k.bucket_iso,
            "group": k.group_dict,
            **v.to_json(),
        }
        for k, v in items.items()
    ]
    return prepare_publication(raw, run_id=run_id, contract_version=1, src=src, order=order, superseded=superseded)


@dataclass
class Scenario:
    records: list[tuple[str, bytes, bool]] = field(default_factory=list)  # (partition key, data, poison)
    truth_rows: list[dict] = field(default_factory=list)


def build_scenario(rng: random.Random) -> Scenario:
    scenario = Scenario()
    published: list[list[tuple[str, bytes, bool]]] = []
    for s in range(rng.randint(0, 3)):
        versions: list[list[dict]] = []
        rows_of_latest: list[dict] = []
        for v in range(rng.randint(1, 3)):
            rows = [random_row(rng) for _ in range(rng.randint(0, 8))]
            records = partial_records(f"src{s}-v{v}", f"2026-11-0{v + 1}T00:00:00", f"src-{s}", rows, versions)
            versions.append(records)
            rows_of_latest = rows
            for _ in range(rng.choice([1, 1, 2])):  # sometimes the same run is published twice
                published.append([(f"orders#{r['group']}", json.dumps(r).encode(), False) for r in records])
        scenario.truth_rows.extend(rows_of_latest)
    events: list[tuple[str, bytes, bool]] = []
    for _ in range(rng.randint(0, 25)):
        if rng.random() < 0.1:
            bad = rng.choice(
                [
                    b"{not json",
                    json.dumps({"dataset": "orders", "rows": [random_row(rng) | {"amount": "12.345"}]}).encode(),
                    json.dumps({"dataset": "nope", "rows": [{}]}).encode(),
                ]
            )
            events.append(("poison", bad, True))
            continue
        rows = [random_row(rng) for _ in range(rng.randint(1, 3))]
        scenario.truth_rows.extend(rows)
        events.append((f"orders#{rows[0]['country']}", json.dumps({"dataset": "orders", "rows": rows}).encode(), False))
    # Interleave: publishes (each in order) and row events, in random relative order.
    streams = [list(p) for p in published if p] + [[e] for e in events]
    while streams:
        pick = rng.randrange(len(streams))
        scenario.records.append(streams[pick].pop(0))
        if not streams[pick]:
            streams.pop(pick)
    return scenario


@dataclass
class Mapping:
    """Lambda's Kinesis event-source mapping with a tumbling window, as documented."""

    store: MemoryAggregateStore
    rng: random.Random
    budget: int
    max_batch: int
    lost_rate: float
    partial_mode: str = "keep"
    report: FlushReport = field(default_factory=FlushReport)
    dlq: list[bytes] = field(default_factory=list)

    def invoke(self, shard: str, state: dict | None, batch: list[tuple[str, bytes]], final: bool):
        # Parallel flushes only without injected crashes: which write crashes must not depend on threads.
        workers = 1 if self.store.crash_rate else self.rng.choice([1, 4])
        window = Window(WindowState.from_json(state, shard), self.store, LOOKUP, budget=self.budget, workers=workers)
        failed = None
        for i, (seq, data) in enumerate(batch):
            try:
                window.handle(seq, data)
            except Exception:  # BatchProcessor records the failure and goes on
                if failed is None:
                    failed = i
        new_state = json.loads(json.dumps(window.close(final=final)))  # raises when a flush failed
        self.report.add(window.report)
        return new_state, failed

    def deliver_window(self, shard: str, records: list[tuple[str, bytes]]) -> None:
        state: dict | None = None
        pos = 0
        failures: dict[int, int] = defaultdict(int)
        while pos < len(records):
            batch = records[pos : pos + self.rng.randint(1, self.max_batch)]
            while True:
                try:
                    new_state, failed = self.invoke(shard, state, batch, final=False)
                except StoreCrash:
                    batch = batch[: max(1, len(batch) // 2)]  # function error: bisect, same state
                    continue
                if self.rng.random() < self.lost_rate:
                    continue  # the response was lost: retried with the previous state
                break
            if failed is None:
                state = new_state
                pos += len(batch)
                continue
            # A partial failure. Lambda's documented reading is "keep"; the others are what a
            # conservative consumer must survive too: the batch redelivered from its start with the
            # returned state, or the state dropped while the checkpoint moves to the failed record.
            if self.partial_mode == "keep":
                state, pos = new_state, pos + failed
            elif self.partial_mode == "redeliver":
                state = new_state
                failures[pos + failed] += 1
                if failures[pos + failed] <= MAX_RETRIES:
                    continue
                pos += failed
            else:  # "fresh"
                state, pos = None, pos + failed
            failures[pos] += 1
            if failures[pos] > MAX_RETRIES:
                self.dlq.append(records[pos][1])
                pos += 1
        while True:
            try:
                self.invoke(shard, state, [], final=True)
                break
            except StoreCrash:
                continue

    def deliver_shard(self, shard: str, records: list[tuple[str, bytes]], cuts: list[int]) -> None:
        bounds = [0, *cuts, len(records)]
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                self.deliver_window(shard, records[lo:hi])


def shard_of(partition_key: str, shards: list[str]) -> str:
    return shards[sum(partition_key.encode()) % len(shards)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rng=st.randoms(use_true_random=False),
    seed=st.integers(0, 1 << 30),
    budget=st.sampled_from([400, 1500, 6000, 700_000]),
    max_batch=st.integers(1, 10),
    crash_rate=st.sampled_from([0.0, 0.05, 0.2]),
    lost_rate=st.sampled_from([0.0, 0.1]),
    split=st.booleans(),
    replay=st.booleans(),
    partial_mode=st.sampled_from(["keep", "redeliver", "fresh"]),
)
def test_totals_equal_ground_truth(rng, seed, budget, max_batch, crash_rate, lost_rate, split, replay, partial_mode):
    scenario = build_scenario(rng)
    store = MemoryAggregateStore(crash_rate=crash_rate, seed=seed, max_crashes=40)
    mapping = Mapping(store, random.Random(seed), budget, max_batch, lost_rate, partial_mode)  # own generator

    # Put the records on the stream: one shard, which may split into two children midway.
    split_at = rng.randint(0, len(scenario.records)) if split else len(scenario.records)
    per_shard: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for n, (key, data, _) in enumerate(scenario.records):
        shard = (
            "shardId-000000000000" if n < split_at else shard_of(key, ["shardId-000000000001", "shardId-000000000002"])
        )
        per_shard[shard].append((str(49_000_000_000_000_000_000 + n), data))
    windows = {
        s: sorted(rng.sample(range(1, len(r)), min(len(r) - 1, rng.randint(0, 3)))) if len(r) > 1 else []
        for s, r in per_shard.items()
    }
    order = sorted(per_shard)  # the parent shard is read before its children
    for shard in order:
        mapping.deliver_shard(shard, per_shard[shard], windows[shard])
    dead_letters = list(mapping.dlq)
    if replay and order:  # the mapping is recreated at TRIM_HORIZON: one shard is read all over again
        mapping.deliver_shard(order[0], per_shard[order[0]], windows[order[0]])

    truth: dict[ItemKey, Values] = {}
    for r in scenario.truth_rows:
        parsed = parse_row(SPEC, r)
        fold_row(SPEC, truth.setdefault(parsed.key, SPEC.new_values()), parsed)
    assert store.totals() == {k: v.to_json() for k, v in truth.items()}
    assert sorted(dead_letters) == sorted(data for _, data, poison in scenario.records if poison)
    assert "conflict" not in mapping.report.outcomes
