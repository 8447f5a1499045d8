"""Make moto's Kinesis shards and DynamoDB queries scale: the local cloud carries bursts of runs.

moto (5.2) keeps a shard's records in an ordered dict and, on every put, builds the list of all
its keys to find the last sequence number; every ``GetRecords`` walks the records from the first.
Both are linear in the records the shard holds, so a burst of puts is quadratic: a few thousand
records slow the whole local cloud down. The shard's sequence numbers only grow, so a sorted list
of them (kept beside the dict) answers both in O(1) / O(log n). Behaviour is moto's own.

moto's DynamoDB answers a ``Query`` on a table's key by sorting *every* item of the table, then
keeping those of the partition: each query is O(n log n) in the table's size. The aggregates table
holds an item and a contribution per (window, group, source), so a burst of month-spread files made
every rebuild of an item cost seconds and stalled the Aggregate function. A base-table query now
sorts only its own partition (moto's ``items[hash_key]``), the rest of moto's query unchanged.

Applied once by the local cloud when it starts (never by the project's functions or layers).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from typing import Any

_PATCHED = ("put_record", "get_records", "get_max_sequence_number", "get_min_sequence_number")
_ORIGINALS: dict[str, Any] = {}


def _keys(shard: Any) -> list[int]:
    """The shard's sequence numbers in order (rebuilt when moto replaced or trimmed its records)."""
    records: dict[int, Any] = shard.records
    cached: list[int] | None = getattr(shard, "_sluice_keys", None)
    if cached is None or getattr(shard, "_sluice_keys_of", None) is not records or len(cached) != len(records):
        cached = sorted(records)
        shard._sluice_keys = cached
        shard._sluice_keys_of = records
    return cached


def _get_max_sequence_number(self: Any) -> int:
    return _keys(self)[-1] if self.records else 0


def _get_min_sequence_number(self: Any) -> int:
    return _keys(self)[0] if self.records else 0


def _put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    from moto.kinesis.models import Record

    keys = _keys(self)
    sequence_number = (keys[-1] if keys else 0) + 1
    self.records[sequence_number] = Record(partition_key, data, sequence_number, explicit_hash_key)
    keys.append(sequence_number)
    return str(sequence_number)


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    keys = _keys(self)
    start = bisect_right(keys, int(last_sequence_id))
    chosen = keys[start : start + limit] if limit else keys[start:]
    results = [self.records[k] for k in chosen]
    last = chosen[-1] if chosen else int(last_sequence_id)
    behind = self.records[keys[-1]].created_at - results[-1].created_at if results else 0.0
    return results, last, int(behind * 1000)


# ------------------------------------------------------------------------------------- DynamoDB
_SCOPE = threading.local()  # the (table, hash key) a base-table query on this thread is about


def _sorted_items(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


def _all_items(self: Any) -> list[Any]:
    """The ``Table.all_items`` of moto; inside a base-table query, only the queried partition."""
    scope = getattr(_SCOPE, "query", None)
    if scope is None or scope[0] is not self:
        items: list[Any] = _TABLE_ORIGINALS["all_items"](self)
        return items
    partition = self.items.get(scope[1])  # a defaultdict: get() adds no partition
    if partition is None:
        return []
    return _sorted_items(list(partition.values()) if self.range_key_attr else [partition])


def _query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """The ``Table.query`` of moto, told which partition a base-table query reads."""
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _TABLE_ORIGINALS["query"](self, hash_key, *args, **kwargs)
    _SCOPE.query = (self, hash_key)
    try:
        return _TABLE_ORIGINALS["query"](self, hash_key, *args, **kwargs)
    finally:
        _SCOPE.query = None


_TABLE_ORIGINALS: dict[str, Any] = {}


def _kept(store: dict[str, Any], cls: type, names: tuple[str, ...]) -> dict[str, Any]:
    """`cls`'s methods `names` as moto defines them, saved in `store` before the first patch."""
    if not store:
        store.update({name: getattr(cls, name) for name in names})
    return dict(store)


def table_originals() -> dict[str, Any]:
    """The original ``Table`` methods of moto's DynamoDB, whether or not the patch is applied."""
    from moto.dynamodb.models.table import Table

    return _kept(_TABLE_ORIGINALS, Table, ("all_items", "query"))


def originals() -> dict[str, Any]:
    """The original ``Shard`` methods of moto, whether or not the patch is applied (to compare with)."""
    from moto.kinesis.models import Shard

    return _kept(_ORIGINALS, Shard, _PATCHED)


def apply() -> None:
    """Patch moto's Kinesis ``Shard`` and DynamoDB ``Table`` (idempotent)."""
    from moto.dynamodb.models.table import Table
    from moto.kinesis.models import Shard

    table_originals()
    Table.all_items = _all_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]

    originals()
    for name, fast in (
        ("get_max_sequence_number", _get_max_sequence_number),
        ("get_min_sequence_number", _get_min_sequence_number),
        ("put_record", _put_record),
        ("get_records", _get_records),
    ):
        setattr(Shard, name, fast)
