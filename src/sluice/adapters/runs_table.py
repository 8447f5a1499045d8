"""DynamoDB adapter for the runs table (keys and indexes as declared in template.yaml)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any, cast

import boto3
from boto3.dynamodb.conditions import Key

from sluice.adapters.clients import RETRIES


@cache
def _table(name: str) -> Any:
    return boto3.session.Session().resource("dynamodb", config=RETRIES).Table(name)


def to_item(document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able mapping as a DynamoDB item (floats become Decimals, None values dropped)."""
    clean = {k: v for k, v in document.items() if v is not None}
    return cast(dict[str, Any], json.loads(json.dumps(clean, default=str), parse_float=Decimal))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON-able data (Decimals become int or float)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | set | tuple):
            return [plain(v) for v in value]
        return value

    return cast(dict[str, Any], plain(dict(item)))


class DynamoRunTable:
    """:class:`sluice.ports.RunTable` on DynamoDB."""

    def __init__(self, table_name: str) -> None:
        self._table = _table(table_name)

    def put_run(self, item: Mapping[str, Any]) -> None:
        """Create or replace a run record."""
        self._table.put_item(Item=to_item(item))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run record, or None."""
        item = self._table.get_item(Key={"run_id": run_id}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def _query(self, index: str, key: str, value: str, limit: int) -> list[dict[str, Any]]:
        resp = self._table.query(
            IndexName=index, KeyConditionExpression=Key(key).eq(value), ScanIndexForward=False, Limit=limit
        )
        return [from_item(i) for i in resp.get("Items", [])]

    def runs_of_dataset(self, dataset: str, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of `dataset`, newest first (index ``by-dataset``)."""
        return self._query("by-dataset", "dataset", dataset, limit)

    def runs_by_source(self, source_uri: str) -> list[dict[str, Any]]:
        """Every run of one raw key, newest first (index ``by-source``)."""
        return self._query("by-source", "source_uri", source_uri, 100)

    def run_ids_with_status(self, status: str) -> list[str]:
        """Ids of every run in `status` (index ``by-status``, keys only)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {"IndexName": "by-status", "KeyConditionExpression": Key("status").eq(status)}
        while True:
            resp = self._table.query(**kwargs)
            ids.extend(str(i["run_id"]) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return ids
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of all datasets (a scan: fine for the CLI, not for hot paths)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self._table.scan(**kwargs)
            items.extend(from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        items.sort(key=lambda i: str(i.get("started_at", "")), reverse=True)
        return items[:limit]
