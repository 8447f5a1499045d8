"""DynamoDB adapter for the runs table (keys and indexes as declared in template.yaml)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any, cast

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from sluice.adapters.aws_errors import mapping_methods
from sluice.adapters.clients import RETRIES, client
from sluice.errors import CommitConflictError
from sluice.pipeline.runs import head_id
from sluice.ports import Guard

_SERIALIZE = TypeSerializer().serialize
_CONFLICTS = ("TransactionCanceledException", "ConditionalCheckFailedException")


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


@mapping_methods
class DynamoRunTable:
    """:class:`sluice.ports.RunTable` on DynamoDB (throttling, 5xx, dropped connections: TransientError)."""

    def __init__(self, table_name: str) -> None:
        self._name = table_name
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
        kwargs: dict[str, Any] = {"FilterExpression": Attr("status").exists()}  # not the commit heads
        while True:
            resp = self._table.scan(**kwargs)
            items.extend(from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        items.sort(key=lambda i: str(i.get("started_at", "")), reverse=True)
        return items[:limit]

    def get_head(self, source_uri: str) -> dict[str, Any] | None:
        """The commit head of one raw key (item ``key#<uri>``), or None."""
        return self.get_run(head_id(source_uri))

    def write_commit(
        self, head: Mapping[str, Any], expected_rev: int, runs: Sequence[tuple[Mapping[str, Any], Sequence[str]]]
    ) -> None:
        """Put the head and the run records in one transaction, under their conditions.

        Raises
        ------
        CommitConflictError
            The head is not at `expected_rev`, or a run is not in one of its expected statuses.

        """
        self.write_all([(head, Guard(rev=expected_rev)), *((r, Guard(statuses=tuple(s))) for r, s in runs)])

    def write_all(self, puts: Sequence[tuple[Mapping[str, Any], Guard]]) -> None:
        """Put every item in one transaction, each under its guard.

        Raises
        ------
        CommitConflictError
            A guard failed.

        """
        actions: list[dict[str, Any]] = []
        for item, guard in puts:
            put: dict[str, Any] = {"TableName": self._name, "Item": _typed(item)}
            if guard.rev == 0:
                put["ConditionExpression"] = "attribute_not_exists(run_id)"
            elif guard.rev is not None:
                put["ConditionExpression"] = "rev = :rev"
                put["ExpressionAttributeValues"] = {":rev": _SERIALIZE(guard.rev)}
            elif guard.statuses:
                names = {f":s{i}": _SERIALIZE(s) for i, s in enumerate(guard.statuses)}
                put["ConditionExpression"] = f"attribute_not_exists(run_id) OR #status IN ({', '.join(names)})"
                put["ExpressionAttributeNames"] = {"#status": "status"}
                put["ExpressionAttributeValues"] = names
            actions.append({"Put": put})
        try:
            client("dynamodb").transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _CONFLICTS:
                first = puts[0][0] if puts else {}
                raise CommitConflictError(
                    f"write of {first.get('key_uri') or first.get('run_id')}: an item changed meanwhile ({exc})"
                ) from exc
            raise

    def get_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of `run_ids` (one TransactGetItems per 25: a consistent snapshot of each 25)."""
        return records_snapshot(client("dynamodb"), self._name, run_ids)

    def clear_expiry(self, run_id: str, statuses: Sequence[str]) -> bool:
        """Remove ``expires_at`` if the status is one of `statuses` (records from before live ones stopped expiring)."""
        return _clear_expiry(self._table, run_id, statuses)

    def transition(self, run_id: str, expected: Sequence[str], changes: Mapping[str, Any]) -> bool:
        """Update the run's record with `changes` if its status is one of `expected`."""
        values = to_item(changes)
        names = {f"#f{i}": k for i, k in enumerate(values)}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        attrs = {f":v{i}": v for i, v in enumerate(values.values())}
        statuses = {f":s{i}": s for i, s in enumerate(expected)}
        try:
            self._table.update_item(
                Key={"run_id": run_id},
                UpdateExpression=expression,
                ConditionExpression=f"#status IN ({', '.join(statuses)})",
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues={**attrs, **statuses},
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


def _clear_expiry(table: Any, run_id: str, statuses: Sequence[str]) -> bool:
    names = {f":s{i}": s for i, s in enumerate(statuses)}
    try:
        table.update_item(
            Key={"run_id": run_id},
            UpdateExpression="REMOVE expires_at",
            ConditionExpression=f"#status IN ({', '.join(names)})",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=names,
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _typed(document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able mapping in DynamoDB's typed wire format (for the low-level client)."""
    return {k: _SERIALIZE(v) for k, v in to_item(document).items()}


SNAPSHOT_ITEMS = 25  # TransactGetItems takes 100 on AWS, 25 on moto: the smaller, everywhere


def records_snapshot(dynamodb: Any, table_name: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The items of `run_ids` in `table_name`, read with TransactGetItems (each 25 ids one consistent snapshot)."""
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(run_ids))
    deserialize = TypeDeserializer().deserialize
    for i in range(0, len(ids), SNAPSHOT_ITEMS):
        chunk = ids[i : i + SNAPSHOT_ITEMS]
        resp = dynamodb.transact_get_items(
            TransactItems=[{"Get": {"TableName": table_name, "Key": {"run_id": {"S": r}}}} for r in chunk]
        )
        for answer in resp.get("Responses", []):
            item = answer.get("Item")
            if item:
                plain = from_item({k: deserialize(v) for k, v in item.items()})
                found[str(plain["run_id"])] = plain
    return found
