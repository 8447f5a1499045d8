"""DynamoDB adapter for the runs table (keys and indexes as declared in template.yaml).

Items go through :mod:`sluice.adapters.dynamo_items` (the low-level client, as for the aggregates
table); records come back as JSON-able data (numbers as int or float).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sluice.adapters.aws_errors import mapping_methods
from sluice.adapters.clients import client
from sluice.adapters.dynamo_items import attribute, from_wire, plain, to_wire
from sluice.errors import CommitConflictError
from sluice.pipeline.runs import head_id
from sluice.ports import Guard

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutTypeDef,
        QueryInputPaginateTypeDef,
        TransactWriteItemTypeDef,
        UniversalAttributeValueTypeDef,
    )

_CONFLICTS = ("TransactionCanceledException", "ConditionalCheckFailedException")


def _record(item: Mapping[str, UniversalAttributeValueTypeDef]) -> dict[str, Any]:
    """A stored item as a plain record."""
    return dict(plain(from_wire(item)))


def _one_of(statuses: Sequence[str]) -> dict[str, AttributeValueTypeDef]:
    """``:s0, :s1...`` bound to `statuses` (for ``#status IN (...)``)."""
    return {f":s{i}": attribute(s) for i, s in enumerate(statuses)}


@mapping_methods
class DynamoRunTable:
    """:class:`sluice.ports.RunTable` on DynamoDB (throttling, 5xx, dropped connections: TransientError)."""

    def __init__(self, table_name: str) -> None:
        self._name = table_name
        self._ddb: DynamoDBClient = client("dynamodb")

    def put_run(self, item: Mapping[str, Any]) -> None:
        """Create or replace a run record."""
        self._ddb.put_item(TableName=self._name, Item=to_wire(item))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run record, or None."""
        resp = self._ddb.get_item(TableName=self._name, Key={"run_id": {"S": run_id}}, ConsistentRead=True)
        item = resp.get("Item")
        return _record(item) if item else None

    def _query(self, index: str, key: str, value: str, limit: int) -> list[dict[str, Any]]:
        resp = self._ddb.query(
            TableName=self._name,
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": value}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_record(i) for i in resp.get("Items", [])]

    def runs_of_dataset(self, dataset: str, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of `dataset`, newest first (index ``by-dataset``)."""
        return self._query("by-dataset", "dataset", dataset, limit)

    def runs_by_source(self, source_uri: str) -> list[dict[str, Any]]:
        """Every run of one raw key, newest first (index ``by-source``)."""
        return self._query("by-source", "source_uri", source_uri, 100)

    def run_ids_with_status(self, status: str) -> list[str]:
        """Ids of every run in `status` (index ``by-status``, keys only)."""
        query: QueryInputPaginateTypeDef = {
            "TableName": self._name,
            "IndexName": "by-status",
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
        }
        pages = self._ddb.get_paginator("query").paginate(**query)
        return [str(from_wire(i)["run_id"]) for page in pages for i in page.get("Items", [])]

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of all datasets (a scan: fine for the CLI, not for hot paths)."""
        pages = self._ddb.get_paginator("scan").paginate(
            TableName=self._name,
            FilterExpression="attribute_exists(#status)",  # not the commit heads
            ExpressionAttributeNames={"#status": "status"},
        )
        items = [_record(i) for page in pages for i in page.get("Items", [])]
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
        actions: list[TransactWriteItemTypeDef] = []
        for item, guard in puts:
            put: PutTypeDef = {"TableName": self._name, "Item": to_wire(item)}
            if guard.rev == 0:
                put["ConditionExpression"] = "attribute_not_exists(run_id)"
            elif guard.rev is not None:
                put["ConditionExpression"] = "rev = :rev"
                put["ExpressionAttributeValues"] = {":rev": attribute(guard.rev)}
            elif guard.statuses:
                names = _one_of(guard.statuses)
                put["ConditionExpression"] = f"attribute_not_exists(run_id) OR #status IN ({', '.join(names)})"
                put["ExpressionAttributeNames"] = {"#status": "status"}
                put["ExpressionAttributeValues"] = names
            actions.append({"Put": put})
        try:
            self._ddb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _CONFLICTS:
                first = puts[0][0] if puts else {}
                raise CommitConflictError(
                    f"write of {first.get('key_uri') or first.get('run_id')}: an item changed meanwhile ({exc})"
                ) from exc
            raise

    def get_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of `run_ids` (one TransactGetItems per 25: a consistent snapshot of each 25)."""
        return records_snapshot(self._ddb, self._name, run_ids)

    def clear_expiry(self, run_id: str, statuses: Sequence[str]) -> bool:
        """Remove ``expires_at`` if the status is one of `statuses` (records from before live ones stopped expiring)."""
        return self._update_if(run_id, statuses, "REMOVE expires_at", {})

    def transition(self, run_id: str, expected: Sequence[str], changes: Mapping[str, Any]) -> bool:
        """Update the run's record with `changes` (None values ignored) if its status is one of `expected`."""
        values = to_wire(changes)
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        return self._update_if(run_id, expected, expression, values)

    def _update_if(
        self, run_id: str, statuses: Sequence[str], expression: str, values: Mapping[str, AttributeValueTypeDef]
    ) -> bool:
        """Apply `expression` (``#f<i>``/``:v<i>``: the keys and `values`) if the status is one of `statuses`."""
        one_of = _one_of(statuses)
        try:
            self._ddb.update_item(
                TableName=self._name,
                Key={"run_id": {"S": run_id}},
                UpdateExpression=expression,
                ConditionExpression=f"#status IN ({', '.join(one_of)})",
                ExpressionAttributeNames={"#status": "status", **{f"#f{i}": k for i, k in enumerate(values)}},
                ExpressionAttributeValues={**{f":v{i}": v for i, v in enumerate(values.values())}, **one_of},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True


SNAPSHOT_ITEMS = 25  # TransactGetItems takes 100 on AWS, 25 on moto: the smaller, everywhere


def records_snapshot(dynamodb: DynamoDBClient, table_name: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The items of `run_ids` in `table_name`, read with TransactGetItems (each 25 ids one consistent snapshot)."""
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(run_ids))
    for i in range(0, len(ids), SNAPSHOT_ITEMS):
        chunk = ids[i : i + SNAPSHOT_ITEMS]
        resp = dynamodb.transact_get_items(
            TransactItems=[{"Get": {"TableName": table_name, "Key": {"run_id": {"S": r}}}} for r in chunk]
        )
        for answer in resp.get("Responses", []):
            item = answer.get("Item")
            if item:
                record = _record(item)
                found[str(record["run_id"])] = record
    return found
