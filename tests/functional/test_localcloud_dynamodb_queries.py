"""The local cloud's DynamoDB queries read only their partition, and answer exactly as moto's own."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from localcloud import motofixes


def _query_all(client: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
    """Every page of a query (the pages themselves compared, not only their concatenation)."""
    pages, start = [], None
    while True:
        page = client.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        pages.append(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return pages


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Any:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-g",
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        rnd = random.Random(11)
        for i in range(600):
            item = {
                "pk": {"S": f"p{rnd.randrange(12)}"},
                "sk": {"S": f"s{rnd.randrange(10_000):05d}"},
                "n": {"N": str(i)},
            }
            if i % 3:
                item["g"] = {"S": f"g{i % 4}"}
            client.put_item(TableName="t", Item=item)
        yield client


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p3"}}},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p3"}}, "ScanIndexForward": False},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p7"}}, "Limit": 7},
    {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":p": {"S": "p1"}, ":a": {"S": "s02000"}, ":b": {"S": "s06000"}},
        "Limit": 5,
    },
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":p": {"S": "p5"}, ":s": {"S": "s0"}, ":n": {"N": "300"}},
        "ConsistentRead": True,
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "absent"}}},
    {
        "IndexName": "by-g",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "g2"}},
        "Limit": 9,
    },
]


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_a_patched_query_answers_page_for_page_as_moto_does(table: Any, query: dict[str, Any], monkeypatch) -> None:
    original = motofixes.table_originals()
    monkeypatch.setattr(Table, "all_items", original["all_items"])
    monkeypatch.setattr(Table, "query", original["query"])
    expected = _query_all(table, TableName="t", **query)
    motofixes.apply()
    assert Table.query is not original["query"]
    assert _query_all(table, TableName="t", **query) == expected
    assert sum(map(len, expected)) > 0 or query["ExpressionAttributeValues"].get(":p") == {"S": "absent"}


def test_a_base_table_query_sorts_only_its_partition(table: Any, monkeypatch) -> None:
    motofixes.table_originals()
    monkeypatch.setattr(Table, "query", Table.query)
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    motofixes.apply()
    seen: list[int] = []
    patched = Table.all_items

    def counting(self: Any) -> list[Any]:
        items = patched(self)
        seen.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)
    (page,) = _query_all(
        table, TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p3"}}
    )
    assert seen == [len(page)] and 0 < len(page) < 600 / 6
    assert len(table.scan(TableName="t")["Items"]) == 600  # outside a query: every item, as before
