"""The aggregates' storage port: items, their contributions, and revision-checked writes of both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sluice.aggregates.values import ItemKey, Values


@dataclass
class Contribution:
    """What one contributor (a source's latest run, or a shard's row events) adds to an item."""

    key: ItemKey
    contributor: str  # "src:<source id>" | "shard:<shard id>"
    values: Values
    rev: int = 0
    run_id: str | None = None
    order: str | None = None
    seq: int | None = None
    hw: str | None = None  # shard contributions: last sequence number folded in


@dataclass
class StoredAggregate:
    """An aggregate item and the ledger of what it includes."""

    key: ItemKey
    values: Values
    rev: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # source id -> run id included
    shards: dict[str, str] = field(default_factory=dict)  # shard id -> last sequence number included


class AggregateStore(Protocol):
    """Storage of aggregate items and their contributions (revision-checked writes)."""

    def get_aggregate(self, key: ItemKey) -> StoredAggregate | None:
        """The item (strongly consistent), or None."""
        ...

    def put_aggregate(self, aggregate: StoredAggregate, expected_rev: int | None) -> bool:
        """Write the item if its stored revision is `expected_rev` (None: absent); False otherwise."""
        ...

    def delete_aggregate(self, key: ItemKey, expected_rev: int) -> bool:
        """Delete the item if its stored revision is `expected_rev`; False otherwise."""
        ...

    def get_contribution(self, key: ItemKey, contributor: str) -> Contribution | None:
        """One contribution (strongly consistent), or None."""
        ...

    def put_contribution(self, contribution: Contribution, expected_rev: int | None) -> bool:
        """Write the contribution if its stored revision is `expected_rev` (None: absent)."""
        ...

    def list_contributions(self, key: ItemKey) -> list[Contribution]:
        """Every contribution of the item (strongly consistent)."""
        ...

    def register_dataset(self, dataset: str, bucket_seconds: int) -> None:
        """Note that `dataset` has aggregates of this bucket size (for listings)."""
        ...
