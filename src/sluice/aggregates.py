"""Mergeable partial aggregates: values, the keys they belong to, and the stream records carrying them.

An aggregate item is keyed by :class:`ItemKey` (dataset, time bucket of the contract's
``time_column``, dimension values) and holds :class:`Values`: a row count, per measure the
non-null count and exact sum / min / max, and per distinct column a :class:`DistinctSketch`.
Merging is exact, commutative and associative, so partials combine in any order.

Numbers never pass through floats: decimals and integers are :class:`~decimal.Decimal` in memory
and decimal strings (``"1234.50"``) in JSON; ``float64`` values enter as the decimal of their
shortest ``repr``.

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
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, Rounded
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sluice.contracts import Column, Contract, Dialect
from sluice.errors import ContractError, SluiceError
from sluice.sketches import DistinctSketch, SketchError

if TYPE_CHECKING:
    import pyarrow as pa

RECORD_VERSION = 1
BATCH_BYTES = 256 * 1024  # a Kinesis record holds 1 MiB; PutRecords 5 MiB and 500 records
OPS = ("sum", "min", "max")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PARTITION_KEY = 256
Scalar = str | int | float | bool | None
Ordered = Decimal | str
Kind = Literal["num", "text"]

# Big enough that adding decimals of up to 38 digits never rounds; any rounding raises instead.
_EXACT = Context(
    prec=1000, Emax=999_999, Emin=-999_999, traps=[Inexact, Rounded, InvalidOperation, Overflow, DivisionByZero]
)
_DATASET = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_INT = re.compile(r"^[+-]?\d+$")
_NUMERIC_TYPES = ("int64", "float64")


class PoisonRecordError(SluiceError):
    """A stream record that can never be aggregated: undecodable, or not of the expected schema."""


# ---------------------------------------------------------------------------------------- values
def format_decimal(value: Decimal) -> str:
    """Plain (never scientific) text of an exact decimal."""
    return format(value, "f")


def _lt(a: Ordered, b: Ordered) -> bool:
    if type(a) is not type(b):
        raise TypeError(f"cannot compare {a!r} with {b!r}")
    return bool(operator.lt(a, b))


@dataclass
class Measure:
    """Non-null count and the tracked ``ops`` (sum / min / max) of one column."""

    kind: Kind
    ops: frozenset[str]
    n: int = 0
    sum: Decimal | None = None
    min: Ordered | None = None
    max: Ordered | None = None

    def add(self, value: Ordered) -> None:
        """Fold one non-null value (a Decimal for ``num``, canonical text for ``text``)."""
        self.n += 1
        if "sum" in self.ops:
            assert isinstance(value, Decimal)
            self.sum = value if self.sum is None else _EXACT.add(self.sum, value)
        if "min" in self.ops and (self.min is None or _lt(value, self.min)):
            self.min = value
        if "max" in self.ops and (self.max is None or _lt(self.max, value)):
            self.max = value

    def merge(self, other: Measure) -> None:
        """Fold `other` in. An op tracked on one non-empty side only is dropped (it would be wrong)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.kind, self.ops, self.n = other.kind, other.ops, other.n
            self.sum, self.min, self.max = other.sum, other.min, other.max
            return
        ops = self.ops & other.ops if self.kind == other.kind else frozenset()
        self.sum = (
            _EXACT.add(self.sum, other.sum) if "sum" in ops and self.sum is not None and other.sum is not None else None
        )
        self.min = _pick(self.min, other.min, lower=True) if "min" in ops else None
        self.max = _pick(self.max, other.max, lower=False) if "max" in ops else None
        self.n += other.n
        self.ops = ops

    def copy(self) -> Measure:
        """An independent copy."""
        return Measure(self.kind, self.ops, self.n, self.sum, self.min, self.max)

    def to_json(self) -> dict[str, Any]:
        """``{"n": .., "sum": "..", "min": "..", "max": ".."}`` (+ ``"kind": "text"``)."""
        out: dict[str, Any] = {"n": self.n}
        if self.n == 0:
            return out
        if self.kind == "text":
            out["kind"] = "text"
        for op in OPS:
            value = getattr(self, op)
            if op in self.ops and value is not None:
                out[op] = format_decimal(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Measure:
        """Inverse of :meth:`to_json`; raises ValueError on anything else."""
        if not isinstance(obj, Mapping):
            raise ValueError("a measure must be an object")
        n = _non_negative_int(obj.get("n"), "n")
        if n == 0:
            return cls("num", frozenset())
        kind = obj.get("kind", "num")
        if kind not in ("num", "text"):
            raise ValueError(f"measure kind must be 'num' or 'text', got {kind!r}")
        ops = frozenset(op for op in OPS if obj.get(op) is not None)
        if kind == "text" and "sum" in ops:
            raise ValueError("a text measure has no sum")
        measure = cls(kind, ops, n)
        for op in ops:
            raw = obj[op]
            value: Ordered = _decimal_of(raw, op) if kind == "num" else _text_of(raw, op)
            setattr(measure, op, value)
        return measure


def _pick(a: Ordered | None, b: Ordered | None, *, lower: bool) -> Ordered | None:
    if a is None or b is None:
        return None
    return (a if not _lt(b, a) else b) if lower else (a if not _lt(a, b) else b)


def _non_negative_int(raw: Any, name: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {raw!r}")
    return raw


def _decimal_of(raw: Any, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise ValueError(f"{name} must be a decimal string, got {raw!r}")
    try:
        value = Decimal(raw) if not isinstance(raw, Decimal) else raw
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal string, got {raw!r}") from None
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {raw!r}")
    return value


def _text_of(raw: Any, name: str) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{name} of a text measure must be a string, got {raw!r}")
    return raw


@dataclass
class Values:
    """Mergeable aggregate values of one item (or of one contribution to it)."""

    count: int = 0
    measures: dict[str, Measure] = field(default_factory=dict)
    distinct: dict[str, DistinctSketch] = field(default_factory=dict)

    def merge(self, other: Values) -> None:
        """Fold `other` in (exact; commutative and associative; an empty side is neutral)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count = other.count
            self.measures = {c: m.copy() for c, m in other.measures.items()}
            self.distinct = {c: s.copy() for c, s in other.distinct.items()}
            return
        self.count += other.count
        for col in set(self.measures) | set(other.measures):
            mine, theirs = self.measures.get(col), other.measures.get(col)
            if mine is None or theirs is None:
                self.measures.pop(col, None)  # tracked on one side only: unknown, so dropped
            else:
                mine.merge(theirs)
        for col in set(self.distinct) | set(other.distinct):
            sketch, other_sketch = self.distinct.get(col), other.distinct.get(col)
            if sketch is None or other_sketch is None:
                self.distinct.pop(col, None)
            else:
                sketch.update(other_sketch)

    def copy(self) -> Values:
        """An independent copy."""
        twin = Values()
        twin.merge(self)
        if self.count == 0:
            twin.measures = {c: m.copy() for c, m in self.measures.items()}
            twin.distinct = {c: s.copy() for c, s in self.distinct.items()}
        return twin

    def to_json(self) -> dict[str, Any]:
        """``{"count": .., "measures": {...}, "distinct": {col: sketch}}`` with sorted keys (empty: count 0 only)."""
        if self.count == 0:
            return {"count": 0, "measures": {}, "distinct": {}}
        return {
            "count": self.count,
            "measures": {c: self.measures[c].to_json() for c in sorted(self.measures)},
            "distinct": {c: self.distinct[c].encode() for c in sorted(self.distinct)},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Values:
        """Inverse of :meth:`to_json`; raises ValueError on anything else."""
        count = _non_negative_int(obj.get("count"), "count")
        raw_measures = obj.get("measures") or {}
        raw_distinct = obj.get("distinct") or {}
        if not isinstance(raw_measures, Mapping) or not isinstance(raw_distinct, Mapping):
            raise ValueError("measures and distinct must be objects")
        measures = {str(c): Measure.from_json(m) for c, m in raw_measures.items()}
        for col, m in measures.items():
            if m.n > count:
                raise ValueError(f"measure {col!r} counts {m.n} values in {count} rows")
        distinct: dict[str, DistinctSketch] = {}
        for col, text in raw_distinct.items():
            if not isinstance(text, str):
                raise ValueError(f"distinct sketch of {col!r} must be a string")
            try:
                distinct[str(col)] = DistinctSketch.decode(text)
            except SketchError as exc:
                raise ValueError(f"distinct sketch of {col!r}: {exc}") from exc
        return cls(count, measures, distinct)

    def size_bound(self) -> int:
        """An upper bound of the length of ``json.dumps(self.to_json())``, computed without encoding."""
        size = 48
        for col, m in self.measures.items():
            size += json_length(col) + 40
            for value in (m.sum, m.min, m.max):
                if value is None:
                    continue
                size += 12 + (len(format(value, "f")) if isinstance(value, Decimal) else json_length(value))
        for col, sketch in self.distinct.items():
            size += json_length(col) + 8 + sketch.encoded_size_bound()
        return size


def json_length(text: str) -> int:
    """Length of `text` as a JSON string (quotes and escapes included)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text))


# ---------------------------------------------------------------------------------------- keys
def iso_seconds(epoch_seconds: int) -> str:
    """``2026-11-01T10:00:00Z`` of a UTC epoch second."""
    return (EPOCH + timedelta(seconds=epoch_seconds)).replace(tzinfo=None).isoformat() + "Z"


def parse_iso_seconds(text: str) -> int:
    """Epoch seconds of an ISO-8601 instant (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(seconds=1)


class ItemKey(NamedTuple):
    """Which aggregate item values belong to: dataset, time bucket and group (dims sorted by name)."""

    dataset: str
    bucket_seconds: int
    bucket_start: int | None  # epoch seconds; None for rows without a time
    group: tuple[tuple[str, Scalar], ...]

    @property
    def bucket_iso(self) -> str | None:
        """Bucket start as ``2026-11-01T10:00:00Z`` (None for the no-time bucket)."""
        return None if self.bucket_start is None else iso_seconds(self.bucket_start)

    @property
    def group_key(self) -> str:
        """Canonical group text: the JSON array of dimension values (in dimension-name order)."""
        return json.dumps([v for _, v in self.group], separators=(",", ":"), ensure_ascii=False)

    @property
    def group_dict(self) -> dict[str, Scalar]:
        """``{dimension: value}``."""
        return dict(self.group)

    @property
    def id(self) -> str:
        """Compact unique text of the key (window-state keys)."""
        return json.dumps(
            [self.dataset, self.bucket_seconds, self.bucket_start, [list(g) for g in self.group]],
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_id(cls, text: str) -> ItemKey:
        """Inverse of :attr:`id`."""
        dataset, size, start, group = json.loads(text)
        return cls(dataset, size, start, tuple((str(k), v) for k, v in group))

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: dataset, bucket size, bucket (no-time last), group."""
        return (self.dataset, self.bucket_seconds, self.bucket_start is None, self.bucket_start or 0, self.group_key)

    @property
    def partition_key(self) -> str:
        """Kinesis partition key ``dataset#group`` (hashed when longer than 256 characters)."""
        text = f"{self.dataset}#{self.group_key}"
        if len(text) <= MAX_PARTITION_KEY:
            return text
        return f"{self.dataset}#{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def bucket_of(epoch_us: int, bucket_seconds: int) -> int:
    """Start (epoch seconds) of the bucket holding the instant `epoch_us` (floor, also before 1970)."""
    return (epoch_us // (bucket_seconds * 1_000_000)) * bucket_seconds


# ---------------------------------------------------------------------------------------- canonical values
def timestamp_text(moment: datetime) -> str:
    """``2026-11-01T10:02:00.000000Z``: fixed width, so text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def dimension_value(value: Any) -> Scalar:
    """JSON scalar of a typed value used as a group dimension."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    return canonical_text(value)


def canonical_text(value: Any) -> str:
    """Text of a typed value, identical whether it came from Parquet/Arrow or a JSON row event."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    for kind, render in _TEXT:
        if isinstance(value, kind):
            return render(value)
    raise TypeError(f"unsupported value {value!r}")


_TEXT: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (int, str),
    (float, repr),
    (Decimal, format_decimal),
    (datetime, timestamp_text),  # before date: a datetime is a date
    (date, date.isoformat),
)


def numeric_value(value: Any) -> Decimal:
    """Exact decimal of an int, Decimal or float (a float by its shortest repr)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    raise TypeError(f"not a number: {value!r}")


# ---------------------------------------------------------------------------------------- contract spec
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


# ---------------------------------------------------------------------------------------- row events
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
        exact = value.quantize(Decimal(1).scaleb(-scale), context=_EXACT)
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


# ---------------------------------------------------------------------------------------- partial records
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
    seq = _non_negative_int(obj.get("seq"), "seq")
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


# ---------------------------------------------------------------------------------------- Arrow side
class PartialAggregator:
    """Observer of a run's valid typed rows: accumulates partial aggregates per (bucket, group).

    Call it with each ``pa.Table``/``pa.RecordBatch`` of valid rows (contract column names and
    types); :meth:`records` gives the compact partial records, in a deterministic order.
    """

    def __init__(self, contract: Contract, run_id: str) -> None:
        self.spec = AggregateSpec.of(contract)
        self.run_id = run_id
        self.rows = 0
        self._items: dict[ItemKey, Values] = {}

    def __call__(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Fold a batch of valid rows."""
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        spec = self.spec
        keys = {"__bucket": _bucket_column(table.column(spec.time_column.name), spec.bucket_seconds)}
        for i, c in enumerate(spec.dimensions):
            keys[f"__d{i}"] = table.column(c.name)
        columns = dict(keys)
        aggregations: list[tuple[Any, str]] = [([], "count_all")]
        for i, m in enumerate(spec.measures):
            name = f"__m{i}"
            columns[name] = table.column(m.column.name)
            aggregations.append((name, "count"))
            if m.column.type == "float64":
                aggregations.append((name, "list"))  # summed exactly in decimal, below
            else:
                aggregations.extend((name, op) for op in OPS if op in m.ops)
        grouped = pa.table(columns).group_by(list(keys), use_threads=False).aggregate(aggregations)
        for row in grouped.to_pylist():
            self._fold(self._key_of(row), self._values_of(row))
        for c in spec.distinct:
            self._fold_distinct(keys, table.column(c.name), c.name)

    def _key_of(self, row: Mapping[str, Any]) -> ItemKey:
        return self.spec.key(row["__bucket"], [row[f"__d{i}"] for i in range(len(self.spec.dimensions))])

    def _values_of(self, row: Mapping[str, Any]) -> Values:
        values = self.spec.new_values()
        values.count = row["count_all"]
        for i, m in enumerate(self.spec.measures):
            measure = values.measures[m.column.name]
            if m.column.type == "float64":
                for v in row[f"__m{i}_list"]:
                    if v is not None:
                        measure.add(numeric_value(v))
                continue
            measure.n = row[f"__m{i}_count"]
            if measure.n:
                for op in m.ops:
                    raw = row[f"__m{i}_{op}"]
                    setattr(measure, op, numeric_value(raw) if m.kind == "num" else canonical_text(raw))
        return values

    def _fold(self, key: ItemKey, values: Values) -> None:
        current = self._items.get(key)
        if current is None:
            self._items[key] = values
        else:
            current.merge(values)

    def _fold_distinct(self, keys: dict[str, Any], column: Any, name: str) -> None:
        import pyarrow as pa

        pairs = pa.table({**keys, "__v": column}).group_by([*keys, "__v"], use_threads=False).aggregate([])
        for row in pairs.to_pylist():
            if row["__v"] is not None:
                self._items[self._key_of(row)].distinct[name].add(canonical_text(row["__v"]))

    def items(self) -> dict[ItemKey, Values]:
        """The accumulated values per item (live objects; do not mutate)."""
        return self._items

    def records(self) -> list[dict[str, Any]]:
        """Partial records, ``seq`` 0..n-1 in (bucket, group) order."""
        keys = sorted(self._items, key=ItemKey.sort_key)
        return [
            partial_record(
                k, self._items[k], run_id=self.run_id, seq=i, n=len(keys), contract_version=self.spec.version
            )
            for i, k in enumerate(keys)
        ]


def _bucket_column(column: Any, bucket_seconds: int) -> Any:
    """Int64 bucket starts (epoch seconds) of a timestamp or date column; nulls stay null."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(column.type):
        micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False).cast(pa.int64())
        unit = bucket_seconds * 1_000_000
    elif pa.types.is_date(column.type):
        micros = pc.multiply(pc.cast(pc.cast(column, pa.date32()), pa.int64()), 86_400)  # days -> seconds
        unit = bucket_seconds
    else:
        raise ContractError(f"time column must be a timestamp or date, got {column.type}")
    valid = pc.is_valid(micros).to_numpy(zero_copy_only=False)
    raw = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.floor_divide(raw, unit) * bucket_seconds
    return pa.array(starts, type=pa.int64(), mask=~valid)
