"""DynamoDB adapter for the aggregates table (keys ``pk``/``sk``, index ``gsi1``; see docs/aggregates.md).

Item kinds, all in the one table:

* aggregate - ``pk = AGG#<dataset>#<bucket_seconds>``, ``sk = <bucket start>#<group>``,
  ``gsi1pk = AGG#<dataset>#<bucket_seconds>#<group>``, ``gsi1sk = <bucket start>``;
  readable attributes (``count``, ``measures``, ``distinct``, ``group``...) plus ``values``, the
  exact mergeable JSON (with sketches), and the ledger (``sources``, ``shards``, ``rev``);
* contribution - ``pk = CON#<dataset>#<bucket_seconds>#<bucket start>#<group>``,
  ``sk = src:<source id>`` or ``shard:<shard id>`` (not in ``gsi1``);
* dataset listing - ``pk = DATASETS``, ``sk = <dataset>#<bucket_seconds>``.

``<bucket start>`` is ``2026-11-01T10:00:00Z`` (``none`` for rows without a time) and ``<group>``
the JSON array of dimension values in dimension-name order, e.g. ``["DE"]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from sluice.adapters.aws_errors import mapping_methods
from sluice.adapters.clients import client as cached_client
from sluice.adapters.dynamo_items import attribute, from_wire, number, to_wire
from sluice.aggregates.store import Contribution, StoredAggregate
from sluice.aggregates.values import ItemKey, Values, iso_seconds

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputPaginateTypeDef

DATASETS_PK = "DATASETS"
NO_TIME = "none"


# ---------------------------------------------------------------------------------------- keys
def aggregate_pk(dataset: str, bucket_seconds: int) -> str:
    """Partition of a dataset's aggregates at one bucket size (dashboards query it by time)."""
    return f"AGG#{dataset}#{bucket_seconds}"


def aggregate_sk(key: ItemKey) -> str:
    """``<bucket start>#<group>``: time-ordered within the dataset."""
    return f"{key.bucket_iso or NO_TIME}#{key.group_key}"


def group_pk(dataset: str, bucket_seconds: int, group_key: str) -> str:
    """``gsi1`` partition of one group's time series."""
    return f"AGG#{dataset}#{bucket_seconds}#{group_key}"


def contribution_pk(key: ItemKey) -> str:
    """Partition holding the contributions of one aggregate item."""
    return f"CON#{key.dataset}#{key.bucket_seconds}#{key.bucket_iso or NO_TIME}#{key.group_key}"


# ---------------------------------------------------------------------------------------- attribute values
def _readable_measures(values: Values) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, m in values.measures.items():
        entry: dict[str, Any] = {"n": m.n}
        for op in ("sum", "min", "max"):
            v = getattr(m, op)
            if v is not None:
                entry[op] = number(v) if isinstance(v, Decimal) else v
        out[col] = entry
    return out


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------- store
@mapping_methods
class DynamoAggregateStore:
    """:class:`sluice.aggregates.store.AggregateStore` on the aggregates table, plus the reads of dashboards.

    Throttling, 5xx and dropped connections raise TransientError; a failed revision condition is
    the answer False (another writer moved first), not an error.
    """

    def __init__(
        self, table_name: str, *, client: DynamoDBClient | None = None, retention_days: int | None = None
    ) -> None:
        self.table = table_name
        self._ddb: DynamoDBClient = client if client is not None else cached_client("dynamodb")
        self.retention_days = retention_days
        self._registered: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------ writes (AggregateStore)
    def get_aggregate(self, key: ItemKey) -> StoredAggregate | None:
        """The item (strongly consistent), or None."""
        item = self._get(aggregate_pk(key.dataset, key.bucket_seconds), aggregate_sk(key))
        if item is None:
            return None
        return StoredAggregate(
            key,
            Values.from_json(json.loads(item["values"])),
            int(item["rev"]),
            dict(item.get("sources") or {}),
            dict(item.get("shards") or {}),
        )

    def put_aggregate(self, aggregate: StoredAggregate, expected_rev: int | None) -> bool:
        """Write the item if its revision is still `expected_rev` (None: absent)."""
        key, values = aggregate.key, aggregate.values
        document = {
            "pk": aggregate_pk(key.dataset, key.bucket_seconds),
            "sk": aggregate_sk(key),
            "gsi1pk": group_pk(key.dataset, key.bucket_seconds, key.group_key),
            "gsi1sk": key.bucket_iso or NO_TIME,
            "kind": "aggregate",
            **self._common(key, values, aggregate.rev),
            "bucket_end": None if key.bucket_start is None else iso_seconds(key.bucket_start + key.bucket_seconds),
            "group_key": key.group_key,
            "measures": _readable_measures(values),
            "distinct": {c: s.estimate() for c, s in values.distinct.items()},
            "distinct_exact": {c: s.exact for c, s in values.distinct.items()},
            "sources": aggregate.sources,
            "shards": aggregate.shards,
        }
        return self._put(document, expected_rev)

    def delete_aggregate(self, key: ItemKey, expected_rev: int) -> bool:
        """Delete the item if its revision is still `expected_rev`."""
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key=to_wire({"pk": aggregate_pk(key.dataset, key.bucket_seconds), "sk": aggregate_sk(key)}),
                **_at_rev(expected_rev),
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get_contribution(self, key: ItemKey, contributor: str) -> Contribution | None:
        """One contribution (strongly consistent), or None."""
        item = self._get(contribution_pk(key), contributor)
        return None if item is None else _contribution(key, item)

    def put_contribution(self, contribution: Contribution, expected_rev: int | None) -> bool:
        """Write the contribution if its revision is still `expected_rev` (None: absent)."""
        document = {
            "pk": contribution_pk(contribution.key),
            "sk": contribution.contributor,
            "kind": "contribution",
            **self._common(contribution.key, contribution.values, contribution.rev),
            "run_id": contribution.run_id,
            "ord": contribution.order,
            "seq": contribution.seq,
            "hw": contribution.hw,
        }
        return self._put(document, expected_rev)

    def list_contributions(self, key: ItemKey) -> list[Contribution]:
        """Every contribution of the item (strongly consistent)."""
        return [_contribution(key, item) for item in self._items(contribution_pk(key), consistent=True)]

    def register_dataset(self, dataset: str, bucket_seconds: int) -> None:
        """Note that `dataset` has aggregates of this bucket size (once per process)."""
        if (dataset, bucket_seconds) in self._registered:
            return
        self._ddb.put_item(
            TableName=self.table,
            Item=to_wire(
                {
                    "pk": DATASETS_PK,
                    "sk": f"{dataset}#{bucket_seconds}",
                    "kind": "dataset",
                    "dataset": dataset,
                    "bucket_seconds": bucket_seconds,
                    "updated_at": _now().isoformat(timespec="milliseconds"),
                }
            ),
        )
        self._registered.add((dataset, bucket_seconds))

    # ------------------------------------------------------------------ reads (dashboards, CLI)
    def list_datasets(self) -> list[tuple[str, int]]:
        """``(dataset, bucket_seconds)`` of every dataset with aggregates."""
        items = self._items(DATASETS_PK)
        return [(str(i["dataset"]), int(i["bucket_seconds"])) for i in items]

    def query_dataset(
        self, dataset: str, bucket_seconds: int, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Aggregate items of a dataset whose bucket starts in ``[since, until)`` (ISO, UTC), oldest first.

        Without `since` and `until`, the no-time bucket is included (last).
        """
        return list(self._items(aggregate_pk(dataset, bucket_seconds), since=since, until=until))

    def query_group(
        self, dataset: str, bucket_seconds: int, group_key: str, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """One group's time series (index ``gsi1``), oldest first."""
        return list(self._items(group_pk(dataset, bucket_seconds, group_key), since=since, until=until, index="gsi1"))

    # ------------------------------------------------------------------ plumbing
    def _common(self, key: ItemKey, values: Values, rev: int) -> dict[str, Any]:
        """The attributes aggregate and contribution items share."""
        now = _now()
        return {
            "dataset": key.dataset,
            "bucket_seconds": key.bucket_seconds,
            "bucket_start": key.bucket_iso,
            "group": key.group_dict,
            "count": values.count,
            "values": json.dumps(values.to_json(), separators=(",", ":")),
            "rev": rev,
            "updated_at": now.isoformat(timespec="milliseconds"),
            "expires_at": self._expiry(now),
        }

    def _expiry(self, now: datetime) -> int | None:
        if not self.retention_days:
            return None
        return int((now + timedelta(days=self.retention_days)).timestamp())

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        resp = self._ddb.get_item(TableName=self.table, Key=to_wire({"pk": pk, "sk": sk}), ConsistentRead=True)
        item = resp.get("Item")
        return from_wire(item) if item else None

    def _put(self, document: Mapping[str, Any], expected_rev: int | None) -> bool:
        try:
            if expected_rev is None:
                self._ddb.put_item(
                    TableName=self.table, Item=to_wire(document), ConditionExpression="attribute_not_exists(pk)"
                )
            else:
                self._ddb.put_item(TableName=self.table, Item=to_wire(document), **_at_rev(expected_rev))
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _items(
        self,
        pk: str,
        *,
        since: str | None = None,
        until: str | None = None,
        index: str | None = None,
        consistent: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Items of partition `pk` (of the table or `index`), with a sort key in ``[since, until)`` if either is set."""
        prefix = index or ""  # the keys of index gsi1 are gsi1pk, gsi1sk
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": pk}}
        condition = f"{prefix}pk = :pk"
        if since is not None or until is not None:
            condition += f" AND {prefix}sk BETWEEN :lo AND :hi"
            values |= {":lo": {"S": since or "0"}, ":hi": {"S": until or "9999-12-31T23:59:59Z~"}}
        query: QueryInputPaginateTypeDef = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if index:
            query["IndexName"] = index
        if consistent:
            query["ConsistentRead"] = True
        for page in self._ddb.get_paginator("query").paginate(**query):
            for item in page.get("Items", []):
                yield from_wire(item)


class _AtRev(TypedDict):
    ConditionExpression: str
    ExpressionAttributeNames: dict[str, str]
    ExpressionAttributeValues: dict[str, AttributeValueTypeDef]


def _at_rev(rev: int) -> _AtRev:
    """The condition that the stored item's revision is still `rev`."""
    return {
        "ConditionExpression": "#rev = :rev",
        "ExpressionAttributeNames": {"#rev": "rev"},
        "ExpressionAttributeValues": {":rev": attribute(rev)},
    }


def _contribution(key: ItemKey, item: Mapping[str, Any]) -> Contribution:
    seq = item.get("seq")
    return Contribution(
        key=key,
        contributor=str(item["sk"]),
        values=Values.from_json(json.loads(item["values"])),
        rev=int(item["rev"]),
        run_id=item.get("run_id"),
        order=item.get("ord"),
        seq=None if seq is None else int(seq),
        hw=item.get("hw"),
    )
