"""One item conversion for both DynamoDB tables, storing every attribute as the two adapters stored it before."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from sluice.adapters.dynamo_items import MAX_NUMBER_DIGITS, from_wire, number, plain, to_wire

SERIALIZE = TypeSerializer().serialize


# The two conversions the adapters had, kept here as the reference of the stored format.
def runs_table_before(document: Mapping[str, Any]) -> dict[str, Any]:
    """The runs table's items: the document through JSON (``default=str``, floats as Decimals)."""
    clean = {k: v for k, v in document.items() if v is not None}
    item = json.loads(json.dumps(clean, default=str), parse_float=Decimal)
    return {k: SERIALIZE(v) for k, v in item.items()}


def aggregates_table_before(document: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregates table's items: floats as the Decimal of their repr, tuples as lists."""

    def plain_value(value: Any) -> Any:
        if isinstance(value, float):
            return Decimal(repr(value))
        if isinstance(value, Mapping):
            return {str(k): plain_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain_value(v) for v in value]
        return value

    return {k: SERIALIZE(plain_value(v)) for k, v in document.items() if v is not None}


JSON_LIKE = {
    "run_id": "orders-2026-11-23-abc",
    "status": "SUCCEEDED",
    "rev": 3,
    "big": 2**62,
    "ratio": 0.1,
    "huge": 1e20,
    "whole": 1.0,
    "negative_zero": -0.0,
    "flag": True,
    "empty": "",
    "nothing": None,
    "nested": {"a": None, "b": [1, 2.5, "x", {"c": None}], 7: "int key"},
    "pair": ("orders", 2),
    "lists": [[], {}],
}


@pytest.mark.parametrize("before", [runs_table_before, aggregates_table_before], ids=["runs", "aggregates"])
def test_json_like_documents_are_stored_as_both_tables_stored_them(before: Any) -> None:
    assert to_wire(JSON_LIKE) == before(JSON_LIKE)


def test_run_records_with_other_values_keep_their_text() -> None:
    """Run records went through JSON with ``default=str``: a datetime or a set was stored as its text."""
    document = {"run_id": "r", "at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC), "tags": {"b"}}
    assert to_wire(document) == runs_table_before(document)


def test_aggregate_items_keep_exact_decimals() -> None:
    document = {"sum": Decimal("12345.678900"), "measures": {"min": Decimal("-0.5"), "n": 4}}
    assert to_wire(document) == aggregates_table_before(document)
    assert from_wire(to_wire(document)) == document


def test_numbers_past_38_digits_are_stored_as_exact_text() -> None:
    fits = Decimal("9" * MAX_NUMBER_DIGITS)
    too_long = Decimal("1" * (MAX_NUMBER_DIGITS + 1) + ".5")
    assert number(fits) is fits
    assert number(too_long) == "1" * (MAX_NUMBER_DIGITS + 1) + ".5"
    assert Decimal(number(too_long)) == too_long


def test_records_read_back_as_json_data() -> None:
    record = {k: v for k, v in JSON_LIKE.items() if k not in ("nothing", "nested", "pair")}
    read = plain(from_wire(to_wire(record)))
    assert read == record
    assert type(read["rev"]) is int and type(read["ratio"]) is float and type(read["whole"]) is int
    assert plain({"ids": TypeDeserializer().deserialize({"SS": ["a"]})}) == {"ids": ["a"]}
