"""A contract's ``aggregates`` section, and rows (from the stream's ``rows`` records) folded into values."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache, partial
from typing import Any, NamedTuple

from sluice.aggregates.sketches import DistinctSketch
from sluice.aggregates.values import (
    EPOCH,
    EXACT,
    ItemKey,
    Kind,
    Measure,
    Ordered,
    Values,
    bucket_of,
    canonical_text,
    dimension_value,
    numeric_value,
)
from sluice.contracts import Column, Contract, Dialect
from sluice.errors import ContractError

_INT = re.compile(r"^[+-]?\d+$")
_NUMERIC_TYPES = ("int64", "float64")


@dataclass(frozen=True)
class MeasureSpec:
    """A declared measure with the kind its column type implies."""

    column: Column
    kind: Kind
    ops: frozenset[str]


@dataclass(frozen=True)
class AggregateSpec:
    """What a contract's ``aggregates`` section asks for, resolved against its columns."""

    dataset: str
    version: int
    bucket_seconds: int
    time_column: Column
    dimensions: tuple[Column, ...]  # sorted by name
    measures: tuple[MeasureSpec, ...]
    distinct: tuple[Column, ...]
    dialect: Dialect
    parsers: dict[str, Callable[[Any], Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, contract: Contract) -> AggregateSpec:
        """Resolve `contract`'s aggregates.

        Raises
        ------
        ContractError
            No aggregates are declared, the time column is not a date/timestamp, or a sum is asked
            of a non-numeric column.

        """
        return _spec_of(contract)

    def new_values(self) -> Values:
        """Empty values tracking every declared measure and distinct column."""
        return Values(
            0,
            {m.column.name: Measure(m.kind, m.ops) for m in self.measures},
            {c.name: DistinctSketch() for c in self.distinct},
        )

    def key(self, bucket_start: int | None, dims: Sequence[Any]) -> ItemKey:
        """The item key of a bucket and typed dimension values (in :attr:`dimensions` order)."""
        group = tuple((c.name, dimension_value(v)) for c, v in zip(self.dimensions, dims, strict=True))
        return ItemKey(self.dataset, self.bucket_seconds, bucket_start, group)


@cache
def _spec_of(contract: Contract) -> AggregateSpec:
    agg = contract.aggregates
    if agg is None:
        raise ContractError(f"contract {contract.label} declares no aggregates")
    time_column = contract.column(agg.time_column)
    if time_column.type not in ("timestamp", "date"):
        raise ContractError(
            f"contract {contract.label}: aggregates.time_column {time_column.name!r} is {time_column.type}; "
            "use a timestamp or date column"
        )
    measures = []
    for m in agg.measures:
        column = contract.column(m.column)
        kind: Kind = "num" if column.type in _NUMERIC_TYPES or column.decimal_precision_scale else "text"
        if kind == "text" and "sum" in m.ops:
            raise ContractError(
                f"contract {contract.label}: measure {column.name!r} ({column.type}) cannot be summed; "
                "keep only min/max for non-numeric columns"
            )
        measures.append(MeasureSpec(column, kind, frozenset(m.ops)))
    return AggregateSpec(
        dataset=contract.dataset,
        version=contract.version,
        bucket_seconds=agg.bucket_seconds,
        time_column=time_column,
        dimensions=tuple(sorted((contract.column(d) for d in agg.dimensions), key=lambda c: c.name)),
        measures=tuple(measures),
        distinct=tuple(contract.column(d) for d in agg.distinct),
        dialect=contract.dialect,
        parsers={c.name: column_parser(c, contract.dialect) for c in contract.columns},
    )


def column_parser(column: Column, dialect: Dialect) -> Callable[[Any], Any]:
    """A function turning JSON values of `column` into typed values (the types Arrow gives the column).

    The function raises ValueError for a value not of the column's type (or missing while required).
    """
    scale = column.decimal_precision_scale
    convert: Callable[[Any], Any]
    if scale is not None:
        precision, digits = scale
        convert = partial(_coerce_decimal, precision=precision, scale=digits)
    elif column.type == "bool":
        convert = partial(_coerce_bool, dialect=dialect)
    else:
        convert = _COERCE[column.type]
    required = column.required

    def parse(raw: Any) -> Any:
        if raw is None:
            if required:
                raise ValueError("is required but missing or null")
            return None
        return convert(raw)

    return parse


def _coerce_string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {raw!r}")
    return raw


def _coerce_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str | float):
        raise ValueError(f"expected a number, got {raw!r}")
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return number


def _coerce_bool(raw: Any, dialect: Dialect) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw in dialect.true_values:
        return True
    if isinstance(raw, str) and raw in dialect.false_values:
        return False
    raise ValueError(f"expected a boolean, got {raw!r}")


def _coerce_date(raw: Any) -> date:
    if not isinstance(raw, str):
        raise ValueError(f"expected an ISO date, got {raw!r}")
    return date.fromisoformat(raw)


def _coerce_timestamp(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {raw!r}")
    moment = datetime.fromisoformat(raw)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _coerce_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INT.match(raw.strip()):
        value = int(raw.strip())
    elif isinstance(raw, Decimal) and raw.is_finite() and raw == raw.to_integral_value():
        value = int(raw)
    else:
        raise ValueError(f"expected an integer, got {raw!r}")
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} does not fit in int64")
    return value


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _coerce_string,
    "int64": _coerce_int,
    "float64": _coerce_float,
    "date": _coerce_date,
    "timestamp": _coerce_timestamp,
}


def _coerce_decimal(raw: Any, precision: int, scale: int) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise ValueError(f"expected a decimal (string or number), got {raw!r}")
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw)
        if not value.is_finite():
            raise InvalidOperation
        exact = value.quantize(Decimal(1).scaleb(-scale), context=EXACT)
    except (InvalidOperation, ArithmeticError):
        raise ValueError(f"{raw!r} is not a decimal({precision},{scale}) (more than {scale} decimals?)") from None
    if len(exact.as_tuple().digits) > precision and exact != 0:
        raise ValueError(f"{raw!r} has more than {precision} digits (decimal({precision},{scale}))")
    return exact


class ParsedRow(NamedTuple):
    """One row reduced to what the aggregates need."""

    key: ItemKey
    measures: tuple[Ordered | None, ...]  # in spec.measures order
    distinct: tuple[str | None, ...]  # canonical texts, in spec.distinct order


def parse_row(spec: AggregateSpec, row: Any) -> ParsedRow:
    """Reduce a row event to its item key and the values to fold.

    Raises
    ------
    ValueError
        A column is missing while required, or holds a value not of its type.

    """
    if not isinstance(row, Mapping):
        raise ValueError("a row must be a JSON object")

    def typed(column: Column) -> Any:
        try:
            return spec.parsers[column.name](row.get(column.name))
        except ValueError as exc:
            raise ValueError(f"column {column.name!r}: {exc}") from None

    moment = typed(spec.time_column)
    if moment is None:
        bucket = None
    elif isinstance(moment, datetime):
        bucket = bucket_of((moment - EPOCH) // timedelta(microseconds=1), spec.bucket_seconds)
    else:
        bucket = bucket_of((moment - EPOCH.date()).days * 86_400_000_000, spec.bucket_seconds)
    key = spec.key(bucket, [typed(c) for c in spec.dimensions])
    measures: list[Ordered | None] = []
    for m in spec.measures:
        value = typed(m.column)
        measures.append(None if value is None else numeric_value(value) if m.kind == "num" else canonical_text(value))
    distinct = tuple(None if (v := typed(c)) is None else canonical_text(v) for c in spec.distinct)
    return ParsedRow(key, tuple(measures), distinct)


def fold_row(spec: AggregateSpec, values: Values, row: ParsedRow) -> None:
    """Add one parsed row to `values` (created by ``spec.new_values()``)."""
    values.count += 1
    for m, value in zip(spec.measures, row.measures, strict=True):
        if value is not None:
            values.measures[m.column.name].add(value)
    for c, text in zip(spec.distinct, row.distinct, strict=True):
        if text is not None:
            values.distinct[c.name].add(text)
