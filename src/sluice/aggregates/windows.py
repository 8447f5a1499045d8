"""Tumbling-window state of the Aggregate function, and exactly-once writes of what it folds.

Exactness does not rest on the window state, which Lambda may replay; it rests on *contributions*
stored next to each aggregate item, each with its own ledger:

* ``src:<source id>``: the latest run of one raw object (by run start, then run id) - a partial
  record is that run's complete contribution to the item, so re-applying it changes nothing and
  a newer version of the object replaces the older one's;
* ``shard:<shard id>``: the running total of row events of one shard, with ``hw``, the last
  sequence number folded in. A flush covers the sequence range ``[first, last]`` folded since
  the previous flush: applied when ``first > hw``, a duplicate when ``last <= hw``.

The aggregate item records which run of each source and which ``hw`` of each shard it includes, so
each write is checked against its own ledger (optimistic concurrency on a revision number) and a
crash between the two writes is repaired by the retry. When a source's run is replaced the item is
rebuilt from all its contributions (min/max/sketches cannot be subtracted).

Flush points are a pure function of the records folded since the previous flush (a size budget,
a failed record, the window's end), so a retried or bisected batch flushes the same ranges again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from sluice.aggregates.records import PartialBatch, PartialUpdate, PoisonRecordError, decode_record
from sluice.aggregates.spec import AggregateSpec, fold_row, parse_row
from sluice.aggregates.store import AggregateStore, Contribution, StoredAggregate
from sluice.aggregates.values import ItemKey, Values, json_length
from sluice.contracts import Contract
from sluice.errors import ContractError, SluiceError, TransientError, UnknownDatasetError

STATE_VERSION = 1
STATE_LIMIT = 1_000_000  # Lambda's tumbling-window state limit is 1 MB
DEFAULT_BUDGET = 700_000  # flush early above this many bytes of state
MAX_ATTEMPTS = 25
FLUSH_RESERVE_SECONDS = 5.0  # time kept for the end of an invocation after its last flush

Outcome = Literal["applied", "duplicate", "stale", "replaced", "conflict"]


class WriteContentionError(TransientError):
    """An aggregate item kept changing under concurrent writers; the batch is retried."""


class RecordSkippedError(SluiceError):
    """A record after a failed one: it is retried together with the failed record."""


class RecordDeferredError(SluiceError):
    """A record left for the next invocation: a slow flush used the time this one had for it."""


# ---------------------------------------------------------------------------------------- exactly-once writes
def _seq(value: str) -> int:
    return int(value)


def _until_written[T](attempt: Callable[[], T | None], what: str) -> T:
    """Repeat a read-decide-write `attempt` until it returns a result.

    An attempt returns None when its revision-checked write lost a race to another writer, and
    anything else to end the loop: the one compare-and-set loop of the aggregate writes.
    """
    for _ in range(MAX_ATTEMPTS):
        result = attempt()
        if result is not None:
            return result
    raise WriteContentionError(f"{what} kept changing")


def _next_rev(item: Contribution | StoredAggregate | None) -> int:
    return (item.rev if item else 0) + 1


def _merge_over(
    store: AggregateStore,
    key: ItemKey,
    values: Values,
    *,
    source: tuple[str, str] | None = None,
    shard: tuple[str, str] | None = None,
) -> Callable[[StoredAggregate | None], bool]:
    """A write adding `values` to the item read, with `source` or `shard` entered in its ledger."""

    def write(aggregate: StoredAggregate | None) -> bool:
        merged = aggregate.values.copy() if aggregate else Values()
        merged.merge(values)
        sources = dict(aggregate.sources) if aggregate else {}
        shards = dict(aggregate.shards) if aggregate else {}
        if source:
            sources[source[0]] = source[1]
        if shard:
            shards[shard[0]] = shard[1]
        new = StoredAggregate(key, merged, _next_rev(aggregate), sources, shards)
        return store.put_aggregate(new, aggregate.rev if aggregate else None)

    return write


def apply_source(store: AggregateStore, update: PartialUpdate) -> Outcome:
    """Make `update` (a run's contribution to one item) count exactly once, replacing older runs of its source."""
    key, contributor = update.key, f"src:{update.src}"

    def record() -> Outcome | Literal["recorded"] | None:
        current = store.get_contribution(key, contributor)
        if current is not None and current.run_id == update.run_id:
            return "recorded"
        if current is not None and (current.order or "", current.run_id or "") > update.rank:
            return "stale"  # a later version of the source already counts
        fresh = Contribution(
            key, contributor, update.values, _next_rev(current), update.run_id, update.order, update.seq
        )
        return "recorded" if store.put_contribution(fresh, current.rev if current else None) else None

    if _until_written(record, f"contribution {contributor} of {key.id}") == "stale":
        return "stale"
    merge = _merge_over(store, key, update.values, source=(update.src, update.run_id))

    def include() -> Outcome | None:
        aggregate = store.get_aggregate(key)
        included = aggregate.sources.get(update.src) if aggregate else None
        if included == update.run_id:
            return "duplicate"
        if included is not None:
            rebuild(store, key)
            return "replaced"
        if aggregate is None and update.values.count == 0:
            return "applied"  # an empty contribution to an absent item: nothing to show
        return "applied" if merge(aggregate) else None

    return _until_written(include, f"aggregate {key.id}")


def apply_shard(store: AggregateStore, key: ItemKey, shard: str, *, first: str, last: str, values: Values) -> Outcome:
    """Add the row events a shard folded in sequence range ``[first, last]`` to `key`, exactly once."""
    contributor = f"shard:{shard}"
    lo, hi = _seq(first), _seq(last)

    def overlap(included: str | None) -> Outcome | None:
        if not included:
            return None
        if hi <= _seq(included):
            return "duplicate"
        return "conflict" if lo <= _seq(included) else None

    def record() -> Outcome | Literal["recorded"] | None:
        current = store.get_contribution(key, contributor)
        seen = overlap(current.hw if current else None)
        if seen is not None:
            return "recorded" if seen == "duplicate" else seen
        total = current.values.copy() if current else Values()
        total.merge(values)
        fresh = Contribution(key, contributor, total, _next_rev(current), hw=last)
        return "recorded" if store.put_contribution(fresh, current.rev if current else None) else None

    if _until_written(record, f"contribution {contributor} of {key.id}") == "conflict":
        return "conflict"
    merge = _merge_over(store, key, values, shard=(shard, last))

    def include() -> Outcome | None:
        aggregate = store.get_aggregate(key)
        seen = overlap(aggregate.shards.get(shard) if aggregate else None)
        if seen is not None:
            return seen
        return "applied" if merge(aggregate) else None

    return _until_written(include, f"aggregate {key.id}")


def rebuild(store: AggregateStore, key: ItemKey) -> None:
    """Recompute an item from all its contributions (after a source's run was replaced)."""

    def recompute() -> bool | None:
        aggregate = store.get_aggregate(key)
        expected = aggregate.rev if aggregate else None
        values, sources, shards = Values(), {}, {}
        for c in sorted(store.list_contributions(key), key=lambda c: c.contributor):
            values.merge(c.values)
            kind, _, ident = c.contributor.partition(":")
            if kind == "src" and c.run_id:
                sources[ident] = c.run_id
            elif kind == "shard" and c.hw:
                shards[ident] = c.hw
        if values.count == 0:
            done = expected is None or store.delete_aggregate(key, expected)
        else:
            done = store.put_aggregate(StoredAggregate(key, values, _next_rev(aggregate), sources, shards), expected)
        return True if done else None

    _until_written(recompute, f"aggregate {key.id} (rebuilt)")


# ---------------------------------------------------------------------------------------- window state
@dataclass
class FlushReport:
    """What one or more flushes wrote."""

    flushes: int = 0
    items: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def add(self, other: FlushReport) -> None:
        """Accumulate `other`."""
        self.flushes += other.flushes
        self.items += other.items
        for k, v in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v
        self.conflicts.extend(other.conflicts)


@dataclass
class WindowState:
    """What a shard folded in the current window since the last flush (JSON-able, bounded)."""

    shard: str
    watermark: str | None = None  # last sequence number folded in this window
    first: str | None = None  # first sequence number folded since the last flush
    rows: dict[ItemKey, Values] = field(default_factory=dict)
    parts: dict[tuple[ItemKey, str], PartialUpdate] = field(default_factory=dict)
    folded: int = 0
    flushes: int = 0
    size: int = 0
    _sizes: dict[Any, int] = field(default_factory=dict, repr=False)
    _fixed: dict[Any, int] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The state Lambda passes to the next invocation of the window."""
        return {
            "v": STATE_VERSION,
            "shard": self.shard,
            "wm": self.watermark,
            "first": self.first,
            "folded": self.folded,
            "flushes": self.flushes,
            "rows": [[k.id, v.to_json()] for k, v in self.rows.items()],
            "parts": [
                [k.id, p.src, p.run_id, p.order, p.seq, p.contract_version, p.values.to_json()]
                for (k, _), p in self.parts.items()
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None, shard: str) -> WindowState:
        """State from the event (a fresh one when Lambda passes none)."""
        if not obj:
            return cls(shard)
        if obj.get("v") != STATE_VERSION:
            raise ValueError(f"window state version {obj.get('v')!r} is not {STATE_VERSION}")
        state = cls(
            obj.get("shard") or shard,
            obj.get("wm"),
            obj.get("first"),
            folded=obj.get("folded", 0),
            flushes=obj.get("flushes", 0),
        )
        for key_id, values in obj.get("rows", []):
            key = ItemKey.from_id(key_id)
            state.rows[key] = Values.from_json(values)
            state.resize(key)
        for key_id, src, run_id, order, seq, cv, values in obj.get("parts", []):
            key = ItemKey.from_id(key_id)
            state.parts[(key, src)] = PartialUpdate(key, run_id, seq, src, order, cv, Values.from_json(values))
            state.resize((key, src))
        return state

    def resize(self, entry: ItemKey | tuple[ItemKey, str]) -> None:
        """Refresh the size bound of one entry after it changed."""
        fixed = self._fixed.get(entry)
        if isinstance(entry, ItemKey):
            if fixed is None:
                fixed = self._fixed[entry] = json_length(entry.id) + 8
            new = fixed + self.rows[entry].size_bound()
        else:
            p = self.parts[entry]
            if fixed is None:
                fixed = self._fixed[entry] = json_length(entry[0].id) + json_length(p.src) + 48
            new = fixed + json_length(p.run_id) + json_length(p.order) + p.values.size_bound()
        self.size += new - self._sizes.get(entry, 0)
        self._sizes[entry] = new

    def clear(self) -> None:
        """Forget what was flushed (the watermark stays)."""
        self.rows.clear()
        self.parts.clear()
        self._sizes.clear()
        self._fixed.clear()
        self.first = None
        self.size = 0

    @property
    def empty(self) -> bool:
        """Nothing to flush."""
        return not self.rows and not self.parts


ContractLookup = Callable[[str], Contract]


class Window:
    """Folds one invocation's records into the window state and flushes it exactly once.

    Records are folded in shard order. The first record that cannot be aggregated is reported
    failed, and so is every later record of the batch: Lambda retries from the failed one, so the
    state never has gaps and the sequence range of each flush is exact.
    """

    def __init__(
        self,
        state: WindowState,
        store: AggregateStore,
        contracts: ContractLookup,
        *,
        budget: int = DEFAULT_BUDGET,
        workers: int = 8,
        remaining_seconds: Callable[[], float] | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.contracts = contracts
        self.budget = budget
        self.workers = workers
        self.remaining_seconds = remaining_seconds
        self.deferred = 0
        self.report = FlushReport()
        self.poison: list[tuple[str, str]] = []  # (sequence number, reason)
        self.duplicates = 0
        self.folded = 0
        self.fatal: BaseException | None = None
        self._specs: dict[str, AggregateSpec] = {}
        self._failed_at: str | None = None
        self._deferring = False

    # ------------------------------------------------------------------ folding
    def handle(self, seq: str, data: bytes) -> None:
        """Fold one record.

        Raises
        ------
        PoisonRecordError
            The record can never be aggregated (Lambda retries it, then sends it to the DLQ).
        RecordSkippedError
            An earlier record of the batch failed.
        RecordDeferredError
            A flush took so long that the invocation could not fold and flush another budget's
            worth before its timeout: this record and the rest of the batch are reported failed,
            so Lambda hands them to the next invocation (the state is empty after the flush).

        """
        if self._failed_at is not None:
            raise RecordSkippedError(f"record {seq} follows failed record {self._failed_at} and is retried with it")
        if self._deferring:
            self.deferred += 1
            raise RecordDeferredError(f"record {seq} is left for the next invocation (a slow flush used the time)")
        state = self.state
        if state.watermark is not None and _seq(seq) <= _seq(state.watermark):
            self.duplicates += 1  # already folded into this window (a replayed batch)
            return
        try:
            self._fold(data)
        except Exception as exc:
            self._failed_at = seq  # nothing later in the batch is folded: no gaps in the state
            if isinstance(exc, PoisonRecordError):
                self.poison.append((seq, str(exc)))
            raise
        if state.first is None:
            state.first = seq
        state.watermark = seq
        state.folded += 1
        self.folded += 1
        if state.size > self.budget:
            started = time.monotonic()
            self._flush_or_remember()
            self._deferring = self._short_of_time(time.monotonic() - started)

    def _short_of_time(self, flush_seconds: float) -> bool:
        """Whether the time left could not take another flush as slow as the last one, with a reserve."""
        if self.remaining_seconds is None:
            return False
        return self.remaining_seconds() < 2 * flush_seconds + FLUSH_RESERVE_SECONDS

    def _fold(self, data: bytes) -> None:
        update = decode_record(data)
        state = self.state
        if isinstance(update, PartialUpdate | PartialBatch):
            for partial in update.updates if isinstance(update, PartialBatch) else (update,):
                slot = (partial.key, partial.src)
                held = state.parts.get(slot)
                if held is None or partial.rank > held.rank:
                    state.parts[slot] = partial
                    state.resize(slot)
            return
        spec = self._specs.get(update.dataset)
        if spec is None:
            try:
                spec = self._specs[update.dataset] = AggregateSpec.of(self.contracts(update.dataset))
            except (UnknownDatasetError, ContractError) as exc:
                raise PoisonRecordError(
                    f"row events of dataset {update.dataset!r} cannot be aggregated: {exc}"
                ) from None
        parsed = []
        for i, row in enumerate(update.rows):
            try:
                parsed.append(parse_row(spec, row))
            except ValueError as exc:
                raise PoisonRecordError(f"row {i} of dataset {update.dataset!r}: {exc}") from None
        for row in parsed:
            values = state.rows.get(row.key)
            if values is None:
                values = state.rows[row.key] = spec.new_values()
            fold_row(spec, values, row)
            state.resize(row.key)

    # ------------------------------------------------------------------ flushing
    def _flush_or_remember(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            self.fatal = exc
            self._failed_at = self.state.watermark
            raise

    def flush(self) -> FlushReport:
        """Write everything folded since the last flush; the state keeps only its watermark."""
        state = self.state
        report = FlushReport()
        if state.empty:
            return report
        assert state.first is not None and state.watermark is not None
        first, last = state.first, state.watermark
        by_item: dict[ItemKey, list[PartialUpdate]] = {k: [] for k in state.rows}
        for (key, _), part in state.parts.items():
            by_item.setdefault(key, []).append(part)

        def write(key: ItemKey) -> list[tuple[Outcome, str]]:
            done: list[tuple[Outcome, str]] = []
            if key in state.rows:
                outcome = apply_shard(self.store, key, state.shard, first=first, last=last, values=state.rows[key])
                done.append((outcome, f"shard:{state.shard} [{first}, {last}] -> {key.id}"))
            for part in sorted(by_item[key], key=lambda p: p.src):
                done.append((apply_source(self.store, part), f"src:{part.src} run {part.run_id} -> {key.id}"))
            return done

        keys = sorted(by_item, key=ItemKey.sort_key)
        if self.workers > 1 and len(keys) > 1:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(keys))) as pool:
                results = list(pool.map(write, keys))
        else:
            results = [write(k) for k in keys]
        for done in results:
            for outcome, what in done:
                report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                if outcome == "conflict":
                    report.conflicts.append(what)
        for dataset, size in sorted({(k.dataset, k.bucket_seconds) for k in keys}):
            self.store.register_dataset(dataset, size)
        report.flushes, report.items = 1, len(keys)
        state.flushes += 1
        state.clear()
        self.report.add(report)
        return report

    def close(self, *, final: bool) -> dict[str, Any]:
        """End the invocation: the state to return (``{}`` once the window is final and written).

        A batch with a failed record is flushed too, so what it folded is durable whatever Lambda
        does with the state of a partially failed batch.

        Raises
        ------
        Exception
            A flush failed: the invocation must fail so Lambda retries it from the previous state.

        """
        if self.fatal is not None:
            raise self.fatal
        if final or self._failed_at is not None:
            self.flush()
        if final:
            return {}
        encoded = self.state.to_json()
        size = len(json.dumps(encoded))
        if size > STATE_LIMIT:  # pragma: no cover - the budget keeps the state far below
            self.flush()
            encoded = self.state.to_json()
        return encoded


def window_state_size(state: Mapping[str, Any]) -> int:
    """Bytes of a state as Lambda carries it (JSON)."""
    return len(json.dumps(state))
