"""Make moto's Kinesis shards scale linearly: the local cloud's streams carry bursts of runs.

moto (5.2) keeps a shard's records in an ordered dict and, on every put, builds the list of all
its keys to find the last sequence number; every ``GetRecords`` walks the records from the first.
Both are linear in the records the shard holds, so a burst of puts is quadratic: a few thousand
records slow the whole local cloud down. The shard's sequence numbers only grow, so a sorted list
of them (kept beside the dict) answers both in O(1) / O(log n). Behaviour is moto's own.

Applied once by the local cloud when it starts (never by the project's functions or layers).
"""

from __future__ import annotations

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


def originals() -> dict[str, Any]:
    """The original ``Shard`` methods of moto, whether or not the patch is applied (to compare with)."""
    from moto.kinesis.models import Shard

    if not _ORIGINALS:
        _ORIGINALS.update({name: getattr(Shard, name) for name in _PATCHED})
    return dict(_ORIGINALS)


def apply() -> None:
    """Patch moto's Kinesis ``Shard`` (idempotent)."""
    from moto.kinesis.models import Shard

    originals()
    for name, fast in (
        ("get_max_sequence_number", _get_max_sequence_number),
        ("get_min_sequence_number", _get_min_sequence_number),
        ("put_record", _put_record),
        ("get_records", _get_records),
    ):
        setattr(Shard, name, fast)
