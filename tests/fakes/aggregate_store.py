"""In-memory AggregateStore (sluice.aggregates.windows) with injectable crashes, for unit and property tests."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from sluice.aggregates.store import Contribution, StoredAggregate
from sluice.aggregates.values import ItemKey


class StoreCrash(RuntimeError):
    """An injected failure of a store call (before or after the write took effect)."""


class MemoryAggregateStore:
    """Revision-checked writes like DynamoDB's conditional puts; values are copied in and out."""

    def __init__(self, crash_rate: float = 0.0, seed: int = 0, max_crashes: int | None = None) -> None:
        self.aggregates: dict[ItemKey, StoredAggregate] = {}
        self.contributions: dict[tuple[ItemKey, str], Contribution] = {}
        self.datasets: set[tuple[str, int]] = set()
        self.writes = 0
        self.crashes = 0
        self.crash_rate = crash_rate
        self.max_crashes = max_crashes
        self._rng = random.Random(seed)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ crash injection
    def _maybe_crash(self, stage: str) -> None:
        if self.max_crashes is not None and self.crashes >= self.max_crashes:
            return
        if self.crash_rate and self._rng.random() < self.crash_rate:
            self.crashes += 1
            raise StoreCrash(f"injected crash {stage} write")

    # ------------------------------------------------------------------ AggregateStore
    def get_aggregate(self, key: ItemKey) -> StoredAggregate | None:
        with self._lock:
            found = self.aggregates.get(key)
            return None if found is None else _copy_aggregate(found)

    def put_aggregate(self, aggregate: StoredAggregate, expected_rev: int | None) -> bool:
        with self._lock:
            self._maybe_crash("before")
            current = self.aggregates.get(aggregate.key)
            if (current.rev if current else None) != expected_rev:
                return False
            self.aggregates[aggregate.key] = _copy_aggregate(aggregate)
            self.writes += 1
            self._maybe_crash("after")
            return True

    def delete_aggregate(self, key: ItemKey, expected_rev: int) -> bool:
        with self._lock:
            self._maybe_crash("before")
            current = self.aggregates.get(key)
            if current is None or current.rev != expected_rev:
                return False
            del self.aggregates[key]
            self.writes += 1
            return True

    def get_contribution(self, key: ItemKey, contributor: str) -> Contribution | None:
        with self._lock:
            found = self.contributions.get((key, contributor))
            return None if found is None else replace(found, values=found.values.copy())

    def put_contribution(self, contribution: Contribution, expected_rev: int | None) -> bool:
        with self._lock:
            self._maybe_crash("before")
            slot = (contribution.key, contribution.contributor)
            current = self.contributions.get(slot)
            if (current.rev if current else None) != expected_rev:
                return False
            self.contributions[slot] = replace(contribution, values=contribution.values.copy())
            self.writes += 1
            self._maybe_crash("after")
            return True

    def list_contributions(self, key: ItemKey) -> list[Contribution]:
        with self._lock:
            return [replace(c, values=c.values.copy()) for (k, _), c in self.contributions.items() if k == key]

    def register_dataset(self, dataset: str, bucket_seconds: int) -> None:
        with self._lock:
            self.datasets.add((dataset, bucket_seconds))

    # ------------------------------------------------------------------ test helpers
    def totals(self) -> dict[ItemKey, dict]:
        """``{key: values.to_json()}`` of every aggregate item."""
        return {k: a.values.to_json() for k, a in self.aggregates.items()}


def _copy_aggregate(a: StoredAggregate) -> StoredAggregate:
    return StoredAggregate(a.key, a.values.copy(), a.rev, dict(a.sources), dict(a.shards))
