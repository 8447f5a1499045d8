"""Aggregate values and keys: exact, mergeable measures of an item, the key it belongs to, canonical text.

An aggregate item is keyed by :class:`ItemKey` (dataset, time bucket of the contract's
``time_column``, dimension values) and holds :class:`Values`: a row count, per measure the
non-null count and exact sum / min / max, and per distinct column a :class:`DistinctSketch`.
Merging is exact, commutative and associative, so partials combine in any order.

Numbers never pass through floats: decimals and integers are :class:`~decimal.Decimal` in memory
and decimal strings (``"1234.50"``) in JSON; ``float64`` values enter as the decimal of their
shortest ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, Rounded
from typing import Any, Literal, NamedTuple

from sluice.aggregates.sketches import DistinctSketch, SketchError

OPS = ("sum", "min", "max")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PARTITION_KEY = 256
Scalar = str | int | float | bool | None
Ordered = Decimal | str
Kind = Literal["num", "text"]

# Big enough that adding decimals of up to 38 digits never rounds; any rounding raises instead.
EXACT = Context(
    prec=1000, Emax=999_999, Emin=-999_999, traps=[Inexact, Rounded, InvalidOperation, Overflow, DivisionByZero]
)


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
            self.sum = value if self.sum is None else EXACT.add(self.sum, value)
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
            EXACT.add(self.sum, other.sum) if "sum" in ops and self.sum is not None and other.sum is not None else None
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
        n = non_negative_int(obj.get("n"), "n")
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


def non_negative_int(raw: Any, name: str) -> int:
    """`raw` as a count (a non-negative int, not a bool); ValueError naming `name` otherwise."""
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
        count = non_negative_int(obj.get("count"), "count")
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
