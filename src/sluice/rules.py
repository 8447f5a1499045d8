"""Vectorised contract rules: string columns in, typed valid rows and per-row rejects out.

Every value is parsed from text with ``pyarrow.compute`` (null tokens first, then the column
type), and each rule of the contract is a boolean mask over the batch. A row is rejected for the
*first* rule it breaks, in contract column order and, per column, in the order required, type,
min, max, in, pattern; ``unique`` is checked last, on rows that passed everything else, so the
first occurrence of a value is kept and later repeats are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, Contract, Dialect
from sluice.errors import ContractError

_INT = r"^-?[0-9]+$"
_FLOAT = r"(?i)^[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$"
_DECIMAL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?$"
_TIMESTAMP_TZ = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
)
_ZONED = r"[T ][0-9:.]+(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def arrow_type(column_type: str) -> pa.DataType:
    """The Arrow (and Parquet) type of a contract column type."""
    simple = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": UTC_TIMESTAMP,
    }
    if column_type in simple:
        return simple[column_type]
    m = re.fullmatch(r"decimal\((\d+),(\d+)\)", column_type)
    if m is None:
        raise ContractError(f"unknown column type {column_type!r}")
    return pa.decimal128(int(m.group(1)), int(m.group(2)))


def contract_schema(contract: Contract) -> pa.Schema:
    """Arrow schema of the contract's columns, in contract order."""
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in contract.columns])


# ---------------------------------------------------------------------------- parsing values
def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array (nulls count as False) as numpy."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _bisect_cast(arr: pa.Array, to: pa.DataType) -> pa.Array:
    """Cast `arr`, turning the values that cannot be cast into nulls."""
    try:
        return pc.cast(arr, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(arr) == 1:
            return pa.nulls(1, to)
        half = len(arr) // 2
        return pa.concat_arrays([_bisect_cast(arr.slice(0, half), to), _bisect_cast(arr.slice(half), to)])


def _cast_checked(value: pa.Array, to: pa.DataType, shape: str) -> pa.Array:
    """Cast text to `to`; values of the wrong shape or out of range become null."""
    try:
        return pc.cast(value, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    candidate = pc.if_else(pc.match_substring_regex(value, shape), value, pa.scalar(None, pa.string()))
    return _bisect_cast(candidate, to)


def _parse_timestamps(value: pa.Array) -> pa.Array:
    """ISO 8601 text to UTC timestamps; values without an offset are taken as UTC."""
    try:
        return pc.cast(value, UTC_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    none = pa.scalar(None, pa.string())
    zoned = pc.match_substring_regex(value, _ZONED)
    with_tz = _cast_checked(pc.if_else(zoned, value, none), UTC_TIMESTAMP, _TIMESTAMP_TZ)
    naive_text = pc.if_else(zoned, none, value)
    naive = _cast_checked(naive_text, pa.timestamp("us"), _TIMESTAMP)
    return pc.coalesce(with_tz, pc.cast(naive, UTC_TIMESTAMP))


def parse_values(value: pa.Array, column_type: str, dialect: Dialect) -> pa.Array:
    """Parse text (nulls already applied) as `column_type`; unparsable values become null."""
    to = arrow_type(column_type)
    if column_type == "string":
        return value
    if column_type == "bool":
        true = pc.is_in(value, value_set=pa.array(dialect.true_values, pa.string()))
        false = pc.is_in(value, value_set=pa.array(dialect.false_values, pa.string()))
        return pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
    if column_type == "timestamp":
        return _parse_timestamps(value)
    shape = {"int64": _INT, "float64": _FLOAT, "date": _DATE}.get(column_type, _DECIMAL)
    return _cast_checked(value, to, shape)


def apply_nulls(raw: pa.Array, null_values: Sequence[str]) -> pa.Array:
    """`raw` with the null tokens turned into nulls."""
    if not null_values or len(raw) == 0:
        return raw
    sizes = [len(v.encode("utf-8")) for v in null_values]
    bounds = pc.min_max(pc.binary_length(raw)).as_py()
    if bounds["min"] > max(sizes) or bounds["max"] < min(sizes):
        return raw  # no value has the length of a null token
    hit = pc.is_in(raw, value_set=pa.array(list(null_values), pa.string()))
    if not pc.any(hit).as_py():
        return raw
    return pc.if_else(hit, pa.scalar(None, pa.string()), raw)


# ---------------------------------------------------------------------------- bounds
def _bound(col: Column, raw: Decimal | str, upper: bool) -> Any:
    """A min/max bound as a Python value comparable with the column's values."""
    t = col.type
    try:
        if t == "int64":
            d = Decimal(str(raw))
            return int(d.to_integral_value(rounding=ROUND_FLOOR if upper else ROUND_CEILING))
        if t == "float64":
            return float(Decimal(str(raw)))
        if t.startswith("decimal"):
            ps = col.decimal_precision_scale
            assert ps is not None
            q = Decimal(1).scaleb(-ps[1])
            return Decimal(str(raw)).quantize(q, rounding=ROUND_FLOOR if upper else ROUND_CEILING)
        if t == "date":
            return date.fromisoformat(str(raw))
        if t == "timestamp":
            ts = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        if t == "bool":
            raise ValueError("bool columns have no order")
        return str(raw)
    except (ValueError, InvalidOperation, ArithmeticError) as exc:
        raise ContractError(f"column {col.name!r}: {'max' if upper else 'min'} {raw!r} does not fit type {t}") from exc


def _value_set(col: Column, to: pa.DataType) -> pa.Array:
    assert col.in_ is not None
    values = list(col.in_)
    try:
        if col.type == "timestamp":
            return pa.array([_bound(col, str(v), False) for v in values], to)
        if col.type == "date":
            return pa.array([v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values], to)
        if col.type.startswith("decimal"):
            return pa.array([Decimal(str(v)) for v in values], to)
        if col.type == "string":
            return pa.array([v if isinstance(v, str) else _yaml_text(v) for v in values], to)
        return pa.array(values, to)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, InvalidOperation) as exc:
        raise ContractError(f"column {col.name!r}: `in` values {values!r} do not fit type {col.type}") from exc


def _yaml_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---------------------------------------------------------------------------- uniqueness
class SeenValues:
    """Keys of values already accepted for a ``unique`` column: 8 bytes per distinct value.

    64-bit keys: exact for integers, dates, timestamps, floats and ASCII text up to 8 bytes; a
    hash otherwise (a false duplicate is possible in theory, about n^2 / 2^65 for n values).
    Sorted runs merged like a log-structured tree keep inserts and lookups cheap.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    @property
    def nbytes(self) -> int:
        """Memory held by the keys."""
        return sum(r.nbytes for r in self._runs)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which `keys` were added before."""
        found = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, keys)
            np.minimum(pos, len(run) - 1, out=pos)
            found |= run[pos] == keys
        return found

    def add(self, keys: np.ndarray, *, presorted: bool = False) -> None:
        """Remember `keys` (distinct, and not added before)."""
        if not len(keys):
            return
        self._runs.append(keys if presorted else np.sort(keys))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            merged = np.concatenate((self._runs[-1], last))
            del last
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._runs[-1] = merged


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Mask of the entries of `keys` that repeat an earlier entry."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeat_sorted = np.zeros(len(keys), dtype=bool)
    repeat_sorted[1:] = ordered[1:] == ordered[:-1]
    repeated = np.empty(len(keys), dtype=bool)
    repeated[order] = repeat_sorted
    return repeated


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (vectorised, wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = h ^ (h >> np.uint64(31))
    return out


def _word_keys(arr: pa.Array, words: int, lengths: np.ndarray) -> np.ndarray:
    """Keys of ASCII strings that all span `words` 8-byte words."""
    n = len(arr)
    padded = pc.utf8_rpad(arr, width=words * 8, padding="\x00")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32, count=n + 1, offset=padded.offset * 4)
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + n * words * 8]
    matrix = np.ascontiguousarray(data).view(np.uint64).reshape(n, words)
    if words == 1:
        return matrix[:, 0].copy()  # exact: the text itself
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _MIX
        for k in range(words):
            h = _mix(h ^ matrix[:, k])
    return h


def _short_ascii_keys(arr: pa.Array) -> np.ndarray:
    """Keys of ASCII strings of at most 64 bytes: the text itself up to 8 bytes, else a hash of its words."""
    lengths = np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False), dtype=np.int64)
    used = np.maximum((lengths + 7) // 8, 1)
    lo, hi = int(used.min()), int(used.max())
    if lo == hi:
        return _word_keys(arr, lo, lengths)
    keys = np.empty(len(arr), dtype=np.uint64)
    for words in np.unique(used).tolist():
        idx = np.flatnonzero(used == words)
        keys[idx] = _word_keys(arr.take(pa.array(idx)), int(words), lengths[idx])
    return keys


def _text_keys(arr: pa.Array) -> np.ndarray:
    """64-bit keys of non-null strings; a key depends only on the string, never on the batch."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    fast = pc.and_(pc.string_is_ascii(arr), pc.less_equal(pc.binary_length(arr), 64))
    if pc.all(fast).as_py():
        return _short_ascii_keys(arr)
    mask = np.asarray(fast.to_numpy(zero_copy_only=False), dtype=bool)
    keys = np.empty(n, dtype=np.uint64)
    idx = np.flatnonzero(mask)
    if len(idx):
        keys[idx] = _short_ascii_keys(arr.take(pa.array(idx)))
    rest = np.flatnonzero(~mask)
    values = arr.take(pa.array(rest)).to_pylist()
    keys[rest] = np.fromiter((hash(v) for v in values), dtype=np.int64, count=len(values)).view(np.uint64)
    return keys


def value_keys(arr: pa.Array) -> np.ndarray:
    """64-bit keys of the (non-null) values of `arr`."""
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_date32(t) or pa.types.is_timestamp(t):
        ints = pc.fill_null(pc.cast(arr, pa.int64()), 0)
        return np.asarray(ints.to_numpy(zero_copy_only=False)).view(np.uint64)
    if pa.types.is_floating(t):
        floats = pc.fill_null(arr, 0.0).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(floats, dtype=np.float64).view(np.uint64)
    if pa.types.is_boolean(t):
        return np.asarray(pc.fill_null(pc.cast(arr, pa.uint64()), 0).to_numpy(zero_copy_only=False))
    return _text_keys(arr if pa.types.is_string(t) else arr.cast(pa.string()))


# ---------------------------------------------------------------------------- validation
@dataclass
class Rejects:
    """Rows of a batch that broke a rule: row positions (ascending) and, per row, the first rule."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rules: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rules)


@dataclass(frozen=True)
class _Check:
    rule: str
    column: str
    reason: str


Mask = Callable[[pa.Array, pa.Array], pa.Array]


class Validator:
    """Parse and check string batches against `contract`.

    Raises
    ------
    ContractError
        A rule of the contract does not fit its column's type.

    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.schema = contract_schema(contract)
        self._dialect = contract.dialect
        self._seen = {c.name: SeenValues() for c in contract.columns if c.unique}
        self._checks: list[tuple[Column, list[tuple[_Check, Mask]]]] = [
            (c, self._column_checks(c)) for c in contract.columns
        ]
        tokens = pa.array(list(self._dialect.null_values), pa.string())
        self._direct = {
            c.name
            for c in contract.columns
            if c.type in ("int64", "float64", "date") or c.type.startswith("decimal")
            if parse_values(tokens, c.type, self._dialect).null_count == len(tokens)
        }

    @property
    def unique_bytes(self) -> int:
        """Memory held for ``unique`` checks."""
        return sum(s.nbytes for s in self._seen.values())

    def _column_checks(self, col: Column) -> list[tuple[_Check, Mask]]:
        to = arrow_type(col.type)
        checks: list[tuple[_Check, Mask]] = []

        def add(rule: str, reason: str, fn: Mask) -> None:
            checks.append((_Check(f"{col.name}.{rule}", col.name, reason), fn))

        if col.min is not None:
            lo = pa.scalar(_bound(col, col.min, False), to)
            add("min", f"is below the minimum {col.min}", lambda typed, _v: pc.less(typed, lo))
        if col.max is not None:
            hi = pa.scalar(_bound(col, col.max, True), to)
            add("max", f"is above the maximum {col.max}", lambda typed, _v: pc.greater(typed, hi))
        if col.in_ is not None:
            allowed = _value_set(col, to)
            shown = ", ".join(_yaml_text(v) for v in col.in_[:20]) + (", ..." if len(col.in_) > 20 else "")
            add(
                "in",
                f"is not one of {shown}",
                lambda typed, _v: pc.and_(pc.is_valid(typed), pc.invert(pc.is_in(typed, value_set=allowed))),
            )
        if col.pattern is not None:
            add("pattern", f"does not match pattern {col.pattern}", _pattern_mask(col.pattern))
        return checks

    def validate(self, strings: pa.Table) -> tuple[pa.Table, Rejects]:
        """Typed valid rows of `strings` (columns named after the contract) and the rejected rows."""
        n = strings.num_rows
        first = np.full(n, -1, dtype=np.int32)
        found: list[_Check] = []
        raws: list[pa.Array] = []
        typed_cols: list[pa.Array] = []

        def record(check: _Check, failed: pa.Array | np.ndarray) -> None:
            if isinstance(failed, pa.Array | pa.ChunkedArray):
                if not pc.any(failed).as_py():
                    return
                failed = _mask(failed)
            new = failed & (first < 0)
            if new.any():
                first[new] = len(found)
                found.append(check)

        for col, checks in self._checks:
            raw = strings.column(col.name).combine_chunks()
            raws.append(raw)
            value, typed = self._parse(col, raw)
            typed_cols.append(typed)
            if col.required and value.null_count:
                record(
                    _Check(f"{col.name}.required", col.name, "is empty but the column is required"), pc.is_null(value)
                )
            if typed.null_count > value.null_count:
                record(
                    _Check(f"{col.name}.type", col.name, f"is not a valid {col.type}"),
                    pc.and_(pc.is_valid(value), pc.is_null(typed)),
                )
            for check, fn in checks:
                record(check, fn(typed, value))
        for k, col in enumerate(self.contract.columns):
            if col.unique:
                record(
                    _Check(f"{col.name}.unique", col.name, "repeats the value of an earlier row"),
                    self._duplicates(col.name, typed_cols[k], first < 0),
                )
        table = pa.Table.from_arrays(typed_cols, schema=self.schema)
        bad = np.flatnonzero(first >= 0)
        if not len(bad):
            return table, Rejects()
        rejects = Rejects(rows=bad)
        index = {c.name: k for k, c in enumerate(self.contract.columns)}
        for row in bad.tolist():
            check = found[first[row]]
            rejects.rules.append(check.rule)
            rejects.columns.append(check.column)
            rejects.reasons.append(check.reason)
            rejects.values.append(raws[index[check.column]][row].as_py())
        return table.filter(pa.array(first < 0)), rejects

    def _parse(self, col: Column, raw: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Text with null tokens applied, and the typed values."""
        if col.name in self._direct:
            try:  # no null token parses as this type: a clean column casts in one go
                return raw, pc.cast(raw, self.schema.field(col.name).type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        value = apply_nulls(raw, self._dialect.null_values)
        return value, parse_values(value, col.type, self._dialect)

    def _duplicates(self, name: str, typed: pa.Array, alive: np.ndarray) -> np.ndarray:
        seen = self._seen[name]
        idx = np.flatnonzero(alive & _mask(pc.is_valid(typed)))
        dup = np.zeros(len(alive), dtype=bool)
        if not len(idx):
            return dup
        keys = value_keys(typed.take(pa.array(idx)))
        ordered = np.sort(keys)
        repeated = first_occurrences(keys) if (ordered[1:] == ordered[:-1]).any() else np.zeros(len(keys), bool)
        repeated |= seen.contains(keys)
        seen.add(keys[~repeated] if repeated.any() else ordered, presorted=not repeated.any())
        dup[idx[repeated]] = True
        return dup


def _pattern_mask(pattern: str) -> Mask:
    """A mask of values that do not match `pattern` (search semantics, RE2 where it can)."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        compiled = re.compile(pattern)

        def slow(_typed: pa.Array, value: pa.Array) -> pa.Array:
            return pa.array([None if v is None else compiled.search(v) is None for v in value.to_pylist()])

        return slow

    def fast(_typed: pa.Array, value: pa.Array) -> pa.Array:
        return pc.invert(pc.match_substring_regex(value, pattern))

    return fast
