"""DynamoDB items: one conversion between documents and the wire format, for every table.

Writes: a document's ``None`` values are dropped (nested ones stay ``NULL``), floats become the
Decimal of their shortest text (``0.1`` is stored as ``0.1``), tuples lists, mapping keys strings,
and any other value that is not a DynamoDB type (a datetime, a set) its ``str()``: what the runs
table stored when its items went through JSON with ``default=str``. Numbers past DynamoDB's 38
digits can be written as exact text with :func:`number`.

Reads: :func:`from_wire` keeps numbers as Decimals (exact, for aggregates); :func:`plain` turns
them into int or float (JSON-able, for run records).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UniversalAttributeValueTypeDef

MAX_NUMBER_DIGITS = 38
_SERIALIZE = TypeSerializer().serialize
_DESERIALIZE = TypeDeserializer().deserialize


def number(value: Decimal) -> Decimal | str:
    """A DynamoDB number when it fits (38 digits), else its exact text."""
    return value if len(value.as_tuple().digits) <= MAX_NUMBER_DIGITS else format(value, "f")


def storable(value: Any) -> Any:
    """`value` in the types DynamoDB stores (see the module docstring)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if value is None or isinstance(value, str | bool | int | Decimal):
        return value
    if isinstance(value, Mapping):
        return {str(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return str(value)


def attribute(value: Any) -> AttributeValueTypeDef:
    """One value in the wire format (``{"S": ...}``, ``{"N": ...}``, ...)."""
    return _SERIALIZE(storable(value))


def to_wire(document: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """A document as an item in the wire format, its ``None`` values dropped."""
    return {k: attribute(v) for k, v in document.items() if v is not None}


def from_wire(item: Mapping[str, UniversalAttributeValueTypeDef]) -> dict[str, Any]:
    """An item in the wire format as a document (numbers are Decimals)."""
    return {k: _DESERIALIZE(cast("AttributeValueTypeDef", v)) for k, v in item.items()}


def plain(value: Any) -> Any:
    """`value` read from DynamoDB as JSON-able data: Decimals become int or float, sets lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(v) for v in value]
    return value
