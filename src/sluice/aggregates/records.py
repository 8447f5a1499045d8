"""Partial aggregate records on the stream: encoded, decoded, batched and combined.

Stream record formats (JSON, UTF-8; documented in ``docs/aggregates.md``):

* partial (written by Publish from :meth:`PartialAggregator.records`)::

    {"v": 1, "type": "partial", "dataset": "orders", "cv": 1, "run_id": "...", "seq": 0, "n": 12,
     "src": "<source id>", "ord": "<run started_at>", "bucket": "2026-11-01T10:00:00Z",
     "bucket_seconds": 3600, "group": {"country": "DE"}, "count": 3,
     "measures": {"amount": {"n": 3, "sum": "120.50", "min": "10.00", "max": "80.00"}},
     "distinct": {"customer_id": "x:..."}}

* partials (written by Publish: many partial records of one run in one stream record, at most
  :data:`BATCH_BYTES` each, so a file's hundreds or thousands of items cost a few puts)::

    {"v": 1, "type": "partials", "records": [<partial>, <partial>, ...]}

* rows (from producers outside sluice; contract column names and types)::

    {"v": 1, "type": "rows", "dataset": "orders", "rows": [{"ordered_at": "2026-11-01T10:02:00Z", ...}]}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sluice.aggregates.values import ItemKey, Values, non_negative_int, parse_iso_seconds
from sluice.errors import SluiceError

RECORD_VERSION = 1
BATCH_BYTES = 256 * 1024  # a Kinesis record holds 1 MiB; PutRecords 5 MiB and 500 records
_DATASET = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class PoisonRecordError(SluiceError):
    """A stream record that can never be aggregated: undecodable, or not of the expected schema."""


def source_id(bucket: str, key: str) -> str:
    """Identity of a raw object across its versions: a new version's partials replace the old ones."""
    return hashlib.sha256(f"s3://{bucket}/{key}".encode()).hexdigest()[:20]


def partial_record(
    key: ItemKey,
    values: Values,
    *,
    run_id: str,
    seq: int,
    n: int,
    contract_version: int,
    src: str | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    """One partial record (see the module docstring)."""
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "type": "partial",
        "dataset": key.dataset,
        "cv": contract_version,
        "run_id": run_id,
        "seq": seq,
        "n": n,
    }
    if src is not None:
        record["src"] = src
    if order is not None:
        record["ord"] = order
    record.update(bucket=key.bucket_iso, bucket_seconds=key.bucket_seconds, group=key.group_dict)
    record.update(values.to_json())
    return record


@dataclass(frozen=True)
class PartialUpdate:
    """A decoded partial record: the complete contribution of one source's run to one item."""

    key: ItemKey
    run_id: str
    seq: int
    src: str
    order: str
    contract_version: int
    values: Values

    @property
    def rank(self) -> tuple[str, str]:
        """Which run of a source wins: the later ``ord`` (run start), then the greater run id."""
        return (self.order, self.run_id)


class PartialBatch(NamedTuple):
    """A decoded ``partials`` record: partial records put together to save stream records."""

    updates: tuple[PartialUpdate, ...]


class RowsUpdate(NamedTuple):
    """Decoded row events of one dataset."""

    dataset: str
    rows: tuple[Any, ...]


def partial_from_json(obj: Any) -> PartialUpdate:
    """Validate a partial record.

    Raises
    ------
    ValueError
        A field is missing or malformed.

    """
    if not isinstance(obj, Mapping):
        raise ValueError("a partial record must be a JSON object")
    dataset = obj.get("dataset")
    if not isinstance(dataset, str) or not _DATASET.match(dataset):
        raise ValueError(f"dataset must match {_DATASET.pattern}, got {dataset!r}")
    run_id = obj.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("run_id must be a non-empty string")
    seq = non_negative_int(obj.get("seq"), "seq")
    size = obj.get("bucket_seconds")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"bucket_seconds must be a positive integer, got {size!r}")
    bucket = obj.get("bucket")
    start: int | None = None
    if bucket is not None:
        if not isinstance(bucket, str):
            raise ValueError(f"bucket must be an ISO-8601 instant or null, got {bucket!r}")
        start = parse_iso_seconds(bucket)
        if start % size:
            raise ValueError(f"bucket {bucket} does not start a {size}-second bucket")
    group = obj.get("group") or {}
    if not isinstance(group, Mapping) or not all(
        isinstance(v, str | int | float | bool | Decimal) or v is None for v in group.values()
    ):
        raise ValueError("group must map dimension names to JSON scalars")
    dims = tuple(sorted((str(k), float(v) if isinstance(v, Decimal) else v) for k, v in group.items()))
    src, order, cv = obj.get("src"), obj.get("ord", ""), obj.get("cv", 0)
    if src is not None and (not isinstance(src, str) or not src):
        raise ValueError("src must be a non-empty string")
    if not isinstance(order, str):
        raise ValueError("ord must be a string")
    if isinstance(cv, bool) or not isinstance(cv, int):
        raise ValueError("cv must be an integer")
    values = Values.from_json(obj)
    return PartialUpdate(ItemKey(dataset, size, start, dims), run_id, seq, src or f"run:{run_id}", order, cv, values)


def decode_record(data: bytes) -> PartialUpdate | PartialBatch | RowsUpdate:
    """Decode one stream record (a partial, a batch of partials, or row events).

    Raises
    ------
    PoisonRecordError
        Not UTF-8 JSON, an unknown record version or type, or a malformed field.

    """
    try:
        obj = json.loads(data.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonRecordError(f"not a UTF-8 JSON record: {exc}") from None
    if not isinstance(obj, dict):
        raise PoisonRecordError("a record must be a JSON object")
    version = obj.get("v", RECORD_VERSION)
    if version != RECORD_VERSION:
        raise PoisonRecordError(f"record version {version!r} is not supported (expected {RECORD_VERSION})")
    kind = obj.get("type") or ("rows" if "rows" in obj or "row" in obj else "partial")
    try:
        if kind == "partial":
            return partial_from_json(obj)
        if kind == "partials":
            records = obj.get("records")
            if not isinstance(records, list) or not records:
                raise ValueError("records must be a non-empty list of partial records")
            if any(not isinstance(r, Mapping) or r.get("type", "partial") != "partial" for r in records):
                raise ValueError("every element of records must be a partial record")
            return PartialBatch(tuple(partial_from_json(r) for r in records))
        if kind == "rows":
            dataset = obj.get("dataset")
            if not isinstance(dataset, str) or not _DATASET.match(dataset):
                raise ValueError(f"dataset must match {_DATASET.pattern}, got {dataset!r}")
            rows = obj["rows"] if "rows" in obj else [obj.get("row")]
            if not isinstance(rows, list) or not rows:
                raise ValueError("rows must be a non-empty list of objects")
            return RowsUpdate(dataset, tuple(rows))
    except (ValueError, KeyError) as exc:
        raise PoisonRecordError(f"invalid {kind} record: {exc}") from None
    raise PoisonRecordError(f"unknown record type {kind!r} (expected 'partial', 'partials' or 'rows')")


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a record."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def batch_records(records: Sequence[Mapping[str, Any]], limit: int = BATCH_BYTES) -> list[bytes]:
    """`records` (partials) as few encoded ``partials`` records of at most `limit` bytes each, in order.

    A partial larger than `limit` on its own (an item with huge text min/max) goes alone.
    """
    out: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for record in records:
        data = encode_record(record)
        if pending and size + len(data) + 1 > limit:
            out.append(_batch(pending))
            pending, size = [], 0
        pending.append(data)
        size += len(data) + 1
    if pending:
        out.append(_batch(pending))
    return out


def _batch(encoded: Sequence[bytes]) -> bytes:
    return b'{"v":%d,"type":"partials","records":[' % RECORD_VERSION + b",".join(encoded) + b"]}"


def combine_partials(
    record_lists: Iterable[Iterable[Mapping[str, Any]]], *, run_id: str, contract_version: int
) -> list[dict[str, Any]]:
    """One record per item from the partials of a run's parts (the ranges of a Distributed Map), seq 0..n-1."""
    merged = _merged(r for records in record_lists for r in records)
    keys = sorted(merged, key=ItemKey.sort_key)
    return [
        partial_record(k, merged[k], run_id=run_id, seq=i, n=len(keys), contract_version=contract_version)
        for i, k in enumerate(keys)
    ]


def _merged(records: Iterable[Mapping[str, Any]]) -> dict[ItemKey, Values]:
    merged: dict[ItemKey, Values] = {}
    for obj in records:
        update = partial_from_json(obj)
        merged.setdefault(update.key, Values()).merge(update.values)
    return merged


def prepare_publication(
    partials: Iterable[Mapping[str, Any]],
    *,
    run_id: str,
    contract_version: int,
    src: str,
    order: str,
    superseded: Iterable[Iterable[Mapping[str, Any]]] = (),
) -> list[dict[str, Any]]:
    """The records a run publishes: one per item, stamped with its source and order.

    Records of the same item are merged (so a fanned-out run still sends one per item); items a
    superseded run (an earlier version of the same raw object) had but this run has not get an
    empty record, so the aggregator drops the old version's contribution there too.
    """
    merged = _merged(partials)
    for old in superseded:
        for obj in old:
            merged.setdefault(partial_from_json(obj).key, Values())
    keys = sorted(merged, key=ItemKey.sort_key)
    return [
        partial_record(
            k, merged[k], run_id=run_id, seq=i, n=len(keys), contract_version=contract_version, src=src, order=order
        )
        for i, k in enumerate(keys)
    ]
