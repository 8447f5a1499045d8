"""Vectorised contract rules: string columns in, typed valid rows and per-row rejects out.

Every value is parsed from text with ``pyarrow.compute`` (null tokens first, then the column
type), and each rule of the contract is a boolean mask over the batch. A row is rejected for the
*first* rule it breaks, in contract column order and, per column, in the order required, type,
min, max, in, pattern; ``unique`` is checked last, on rows that passed everything else, so the
first occurrence of a value is kept and later repeats are rejected.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, Contract, Dialect
from sluice.engine.dateformats import MONTHS, DateFormat, compile_format
from sluice.engine.patterns import compile_fixed, numbered, rows_of_width
from sluice.errors import ContractError

# The acceptance rule of each type (docs/engine.md, "What a value of each type may look like"): a
# value is valid when it has the shape below *and* Arrow's cast reads it alone (range, precision,
# calendar). A whole batch that casts at once is taken as is only when no value in it can have a
# shape Arrow reads but the rule refuses (hexadecimal integers), so every value gets the same answer
# whatever the other rows of its batch.
_INT = r"^-?[0-9]+$"
_FLOAT = r"(?i)^[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$"
_DECIMAL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME = r"[T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
_TIMESTAMP = rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}({_TIME})?$"
_TIMESTAMP_TZ = rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{_TIME}(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$"
_OFFSET_END = re.compile(r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
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


def one_array(column: pa.ChunkedArray) -> pa.Array:
    """The values of `column` as one array: its only chunk as is (``combine_chunks`` would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


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


def _has_hex_mark(value: pa.Array) -> bool:
    """Whether any byte of the text of `value` is ``x`` or ``X`` (Arrow reads ``0x1F`` as an integer).

    One pass over the string data, no copy; null slots may hold text (null tokens), which can
    only make this say True and send the batch the per-value way, never change an answer.
    """
    if len(value) == 0 or value.buffers()[2] is None:
        return False
    offsets = np.frombuffer(value.buffers()[1], dtype=np.int32, count=len(value) + 1, offset=value.offset * 4)
    data = np.frombuffer(value.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return bool(np.any((data | 0x20) == ord("x")))


def cast_whole(value: pa.Array, to: pa.DataType) -> pa.Array | None:
    """`value` cast in one go when every value in it is valid under the acceptance rule, else None.

    The fast path of a clean batch: what it accepts is exactly what the per-value path accepts.
    """
    try:
        typed = pc.cast(value, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pa.types.is_integer(to) and _has_hex_mark(value):
        return None
    return typed


def _cast_checked(value: pa.Array, to: pa.DataType, shape: str) -> pa.Array:
    """Cast text to `to`; values of the wrong shape or out of range become null."""
    whole = cast_whole(value, to)
    if whole is not None:
        return whole
    candidate = pc.if_else(pc.match_substring_regex(value, shape), value, pa.scalar(None, pa.string()))
    return _bisect_cast(candidate, to)


def _parse_timestamps(value: pa.Array) -> pa.Array:
    """ISO 8601 text to UTC timestamps; values without an offset are taken as UTC."""
    whole = cast_whole(value, UTC_TIMESTAMP)  # every value has an offset
    if whole is not None:
        return whole
    first = value.drop_null()[0].as_py() if value.null_count < len(value) else None
    if first is not None and not _OFFSET_END.search(first):  # a naive batch, maybe: try it whole
        naive = cast_whole(value, pa.timestamp("us"))  # (a failing naive cast reads every value: ~9 ms a chunk)
        if naive is not None:
            return pc.cast(naive, UTC_TIMESTAMP)
    none = pa.scalar(None, pa.string())
    zoned = pc.match_substring_regex(value, _TIMESTAMP_TZ)
    with_tz = _cast_checked(pc.if_else(zoned, value, none), UTC_TIMESTAMP, _TIMESTAMP_TZ)
    naive_text = pc.if_else(zoned, none, value)
    plain = _cast_checked(naive_text, pa.timestamp("us"), _TIMESTAMP)
    return pc.coalesce(with_tz, pc.cast(plain, UTC_TIMESTAMP))


def _parse_formatted(value: pa.Array, fmt: DateFormat, column_type: str) -> pa.Array:
    """Text in layout `fmt` to dates or UTC timestamps; values off the layout or the calendar become null."""
    none = pa.scalar(None, pa.string())
    matched = pc.extract_regex(value, fmt.regex)  # null where the layout does not match
    value = pc.if_else(pc.is_valid(matched), value, none)
    parts = dict(zip((f.name for f in matched.type), matched.flatten(), strict=True))  # nulls carried down
    number = {
        name: np.asarray(pc.cast(parts[name], pa.int32()).fill_null(0).to_numpy(zero_copy_only=False))
        for name in ("Y", "y", "m", "d")
        if name in parts
    }
    year = number["Y"] if "Y" in number else np.where(number["y"] >= 69, number["y"] + 1900, number["y"] + 2000)
    if "m" in number:
        month = number["m"]
    else:  # a month name: its first three letters
        name = pc.utf8_lower(pc.utf8_slice_codeunits(parts["b" if "b" in parts else "B"], 0, 3))
        month = np.asarray(pc.index_in(name, value_set=pa.array(MONTHS)).fill_null(-1).to_numpy()) + 1
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last = np.where(month == 2, np.where(leap, 29, 28), np.where(np.isin(month, (4, 6, 9, 11)), 30, 31))
    real_day = (month >= 1) & (month <= 12) & (number["d"] >= 1) & (number["d"] <= last)
    value = pc.if_else(pa.array(real_day), value, none)
    parsed = pc.strptime(value, format=fmt.text, unit="us", error_is_null=True)
    if column_type == "date":
        return pc.cast(parsed, pa.date32())
    return parsed if fmt.zoned else pc.cast(parsed, UTC_TIMESTAMP)  # no offset: the time is UTC


def _with_decimal_point(value: pa.Array, point: str) -> pa.Array:
    """Numbers written with `point` as the decimal separator, rewritten with ``.``; a ``.`` in them is invalid."""
    none = pa.scalar(None, pa.string())
    rewritten = pc.replace_substring(value, point, ".", max_replacements=1)
    return pc.if_else(pc.match_substring(value, "."), none, rewritten)


def parse_values(value: pa.Array, column_type: str, dialect: Dialect, fmt: str | None = None) -> pa.Array:
    """Parse text (nulls already applied) as `column_type` (dates and timestamps in layout `fmt`, else ISO).

    Values that cannot be parsed become null.
    """
    to = arrow_type(column_type)
    if fmt is not None:
        return _parse_formatted(value, compile_format(fmt, column_type), column_type)
    if dialect.decimal_point != "." and (column_type == "float64" or column_type.startswith("decimal")):
        value = _with_decimal_point(value, dialect.decimal_point)
    if column_type == "string":
        return value
    if column_type == "bool":  # one lookup: a true token's index is below the first false one's
        tokens = pa.array([*dialect.true_values, *dialect.false_values], pa.string())
        return pc.less(pc.index_in(value, value_set=tokens), len(dialect.true_values))
    if column_type == "timestamp":
        return _parse_timestamps(value)
    shape = {"int64": _INT, "float64": _FLOAT, "date": _DATE}.get(column_type, _DECIMAL)
    return _cast_checked(value, to, shape)


def _with_nulls(raw: pa.Array, rows: np.ndarray) -> pa.Array:
    """`raw` (no nulls) with `rows` null: a validity bitmap over the same buffers, no copy of the text."""
    valid = np.ones(raw.offset + len(raw), dtype=bool)
    valid[raw.offset + rows] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        raw.type, len(raw), [bitmap, *raw.buffers()[1:]], null_count=len(rows), offset=raw.offset
    )


def column_nulls(col: Column, null_values: Sequence[str]) -> tuple[str, ...]:
    """The null tokens of `col`: the dialect's, less any text its ``in`` list allows (``in: [NA, EU]`` keeps NA)."""
    if col.in_ is None:
        return tuple(null_values)
    allowed = {v for v in col.in_ if isinstance(v, str)}
    return tuple(t for t in null_values if t not in allowed)


def apply_nulls(raw: pa.Array, null_values: Sequence[str]) -> pa.Array:
    """`raw` with the null tokens turned into nulls."""
    if not null_values or len(raw) == raw.null_count:  # empty, or all null (a column the file lacks)
        return raw
    sizes = [len(v.encode("utf-8")) for v in null_values]
    bounds = pc.min_max(pc.binary_length(raw)).as_py()
    if bounds["min"] > max(sizes) or bounds["max"] < min(sizes):
        return raw  # no value has the length of a null token
    hit = pc.is_in(raw, value_set=pa.array(list(null_values), pa.string()))
    if not pc.any(hit).as_py():
        return raw
    if raw.null_count == 0 and pa.types.is_string(raw.type):
        return _with_nulls(raw, np.flatnonzero(_mask(hit)))
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


def in_values(col: Column, to: pa.DataType) -> pa.Array:
    """The column's ``in`` values as an array of its Arrow type `to`."""
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
class _Run:
    """A sorted run of distinct keys: kept as the keys, or as ``[start, end]`` intervals when they pay."""

    __slots__ = ("ends", "size", "starts")

    def __init__(self, starts: np.ndarray, ends: np.ndarray | None) -> None:
        self.starts = starts
        self.ends = ends  # None: every interval is one key
        self.size = len(starts)  # entries, what lookups and merges cost

    @classmethod
    def of(cls, starts: np.ndarray, ends: np.ndarray) -> _Run:
        """Coalesce adjacent intervals (sorted, disjoint) and pick the smaller representation."""
        if len(starts) > 1:
            with np.errstate(over="ignore"):
                gap = starts[1:] != ends[:-1] + np.uint64(1)
            first = np.concatenate(([True], gap))
            last = np.concatenate((gap, [True]))
            starts, ends = starts[first], ends[last]
        if np.array_equal(starts, ends):
            return cls(starts, None)
        return cls(starts, ends)

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + (self.ends.nbytes if self.ends is not None else 0))

    @property
    def lo(self) -> np.uint64:
        return np.uint64(self.starts[0])

    @property
    def hi(self) -> np.uint64:
        return np.uint64((self.ends if self.ends is not None else self.starts)[-1])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.starts, self.ends if self.ends is not None else self.starts

    def contains(self, probe: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.starts, probe, side="right") - 1
        np.maximum(pos, 0, out=pos)
        ends = self.ends if self.ends is not None else self.starts
        return np.asarray((self.starts[pos] <= probe) & (probe <= ends[pos]))


class SeenValues:
    """Keys of values already accepted for a ``unique`` column: at most 8 bytes per distinct value.

    64-bit keys: exact for integers, dates, timestamps, floats and ASCII text up to 8 bytes; a
    hash otherwise (a false duplicate is possible in theory, about n^2 / 2^65 for n values).
    Sorted runs merged like a log-structured tree (up to MAX_RUN entries each) keep inserts and
    lookups cheap. Runs of consecutive keys are kept as intervals, so ids counting up through
    the file (see :class:`KeyMaker`) take a few bytes in all instead of 8 per row.
    """

    MAX_RUN = 1 << 22  # entries; runs stop merging at 32 MB, so a merge never needs more than 64 MB extra

    def __init__(self) -> None:
        self._runs: list[_Run] = []

    @property
    def nbytes(self) -> int:
        """Memory held by the keys."""
        return sum(r.nbytes for r in self._runs)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which `keys` were added before.

        Only keys within a run's range are searched in it: keys that grow with the file skip
        every older run at the cost of a compare.
        """
        found = np.zeros(len(keys), dtype=bool)
        if not len(keys):
            return found
        lo_key, hi_key = keys.min(), keys.max()
        for run in self._runs:
            lo, hi = run.lo, run.hi
            if hi_key < lo or lo_key > hi:
                continue
            inside = np.flatnonzero((keys >= lo) & (keys <= hi))
            found[inside] |= run.contains(keys[inside])
        return found

    def add(self, keys: np.ndarray, *, presorted: bool = False) -> None:
        """Remember `keys` (distinct, and not added before)."""
        if not len(keys):
            return
        ordered = keys if presorted else np.sort(keys)
        self._runs.append(_Run.of(ordered, ordered))
        while (
            len(self._runs) > 1
            and self._runs[-2].size <= 2 * self._runs[-1].size
            and self._runs[-2].size + self._runs[-1].size <= self.MAX_RUN
        ):
            last = self._runs.pop()
            self._runs[-1] = _merge(self._runs[-1], last)


def _merge(a: _Run, b: _Run) -> _Run:
    """One run holding the keys of two (disjoint) runs."""
    (sa, ea), (sb, eb) = a.bounds(), b.bounds()
    starts = np.concatenate((sa, sb))
    if a.ends is None and b.ends is None:
        starts.sort(kind="stable")  # two sorted runs: a linear merge
        return _Run.of(starts, starts)
    order = np.argsort(starts, kind="stable")
    return _Run.of(starts[order], np.concatenate((ea, eb))[order])


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


def _padded_bytes(arr: pa.Array, width: int) -> np.ndarray:
    """The bytes of ASCII strings of at most `width` bytes, NUL-padded to `width` each, back to back."""
    n = len(arr)
    padded = pc.utf8_rpad(arr, width=width, padding="\x00")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32, count=n + 1, offset=padded.offset * 4)
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + n * width]
    return np.ascontiguousarray(data)


def _word_keys(arr: pa.Array, words: int, lengths: np.ndarray) -> np.ndarray:
    """Keys of ASCII strings that all span `words` 8-byte words."""
    matrix = _padded_bytes(arr, words * 8).view(np.uint64).reshape(len(arr), words)
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


_PREFIXED = np.uint64(1 << 63)


def prefixed_keys(arr: pa.Array, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Order-preserving exact keys of the ASCII strings ``prefix + rest`` with ``rest`` of at most 8 bytes.

    Returns the rows that qualify and their keys: the rest, big-endian and zero-padded, with
    the top bit set. ASCII text has a clear top bit in every byte, so these keys never equal
    the exact keys of :func:`_text_keys` (little-endian, top bit clear), and a NUL can't be in a
    value (rows with one are rejected), so the padding is unambiguous.
    """
    width = len(prefix)
    ok = pc.and_(
        pc.and_(pc.starts_with(arr, prefix), pc.string_is_ascii(arr)),
        pc.less_equal(pc.binary_length(arr), width + 8),
    )
    rows = np.flatnonzero(_mask(ok))
    if not len(rows):
        return rows, np.zeros(0, dtype=np.uint64)
    rest = pc.utf8_slice_codeunits(arr.take(pa.array(rows)) if len(rows) < len(arr) else arr, width)
    keys = _padded_bytes(rest, 8).view(">u8").astype(np.uint64) | _PREFIXED
    return rows, keys


def numbered_keys(arr: pa.Array, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact keys of the strings ``prefix`` + 1 to 17 digits: the number, its digit count, the top bit.

    Returns the rows that qualify and their keys. Consecutive numbers of one width get
    consecutive keys (kept as intervals by :class:`SeenValues`); the digit count keeps
    ``O-042`` and ``O-42`` apart, and the top bit keeps these keys apart from the exact keys of
    :func:`_text_keys` (ASCII of at most 8 bytes, little-endian: top bit clear).
    """
    head = prefix.encode()
    found = rows_of_width(arr)
    if found is not None and 1 <= found[1].shape[1] - len(head) <= 17:  # the commonest width: digits from the bytes
        same, matrix = found
        width = matrix.shape[1] - len(head)
        fits = numbered(head, width).matches(matrix)
        rows = same[fits] if not fits.all() else same
        digits = matrix[fits, len(head) :] if len(rows) < len(same) else matrix[:, len(head) :]
        number = np.zeros(len(rows), dtype=np.uint64)
        for j in range(width):
            number *= np.uint64(10)
            number += digits[:, j]
            number -= np.uint64(ord("0"))
        keys = number | (np.uint64(width) << np.uint64(57)) | _PREFIXED
        if len(same) == len(arr):
            return rows, keys
        others = np.setdiff1d(np.arange(len(arr)), same, assume_unique=True)  # other widths: the regex way
        more_rows, more_keys = _numbered_by_regex(arr.take(pa.array(others)), prefix)
        rows, keys = np.concatenate((rows, others[more_rows])), np.concatenate((keys, more_keys))
        order = np.argsort(rows, kind="stable")
        return rows[order], keys[order]
    return _numbered_by_regex(arr, prefix)


def _numbered_by_regex(arr: pa.Array, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`numbered_keys` for values of any width, with a regular expression."""
    ok = pc.match_substring_regex(arr, f"^{re.escape(prefix)}[0-9]{{1,17}}$")
    rows = np.flatnonzero(_mask(ok))
    if not len(rows):
        return rows, np.zeros(0, dtype=np.uint64)
    digits = pc.utf8_slice_codeunits(arr.take(pa.array(rows)) if len(rows) < len(arr) else arr, len(prefix))
    number = np.asarray(pc.cast(digits, pa.uint64()).to_numpy(zero_copy_only=False), dtype=np.uint64)
    width = np.asarray(pc.binary_length(digits).to_numpy(zero_copy_only=False), dtype=np.uint64)
    return rows, number | (width << np.uint64(57)) | _PREFIXED


class KeyMaker:
    """Keys of one ``unique`` column; text ids sharing a prefix get ordered, exact keys.

    Ids like ``O-0000000042`` are too long for an exact 8-byte key and their hashes are random:
    every lookup would search every run of :class:`SeenValues`, 8 bytes a row. The first batch
    fixes a scheme: when its values are a common prefix and up to 17 digits, the key is the
    number (:func:`numbered_keys`), so ids that count up through the file are found new with a
    comparison and stored as intervals; when they share a prefix leaving at most 8 bytes, the
    rest, big-endian (:func:`prefixed_keys`); otherwise :func:`value_keys`. Values that don't fit
    the scheme get :func:`value_keys`. A key depends on the value and the (fixed) scheme only.
    """

    def __init__(self) -> None:
        self._scheme: tuple[str, str] | None = None  # ("numbered" | "prefixed" | "", prefix)
        self._lock = threading.Lock()

    def _learn(self, arr: pa.Array) -> tuple[str, str]:
        with self._lock:
            if self._scheme is None:
                self._scheme = _key_scheme(arr)
            return self._scheme

    def keys(self, arr: pa.Array) -> np.ndarray:
        """64-bit keys of the (non-null) values of `arr`."""
        if not pa.types.is_string(arr.type) or len(arr) == 0:
            return value_keys(arr)
        kind, prefix = self._scheme if self._scheme is not None else self._learn(arr)
        if not kind:
            return _text_keys(arr)
        rows, exact = numbered_keys(arr, prefix) if kind == "numbered" else prefixed_keys(arr, prefix)
        if len(rows) == len(arr):
            return exact
        keys = np.empty(len(arr), dtype=np.uint64)
        rest = np.ones(len(arr), dtype=bool)
        rest[rows] = False
        keys[rows] = exact
        others = np.flatnonzero(rest)
        keys[others] = _text_keys(arr.take(pa.array(others)))
        return keys


def _key_scheme(arr: pa.Array) -> tuple[str, str]:
    """The :class:`KeyMaker` scheme for a column whose first batch is `arr`."""
    sample = arr.slice(0, 4096)
    if not pc.all(pc.string_is_ascii(sample)).as_py():
        return "", ""
    head = sample[0].as_py()
    if not isinstance(head, str):
        return "", ""
    common = len(head)
    for value in (sample[len(sample) // 2].as_py(), sample[len(sample) - 1].as_py()):
        other = value or ""
        common = min(
            common,
            next((i for i, (x, y) in enumerate(zip(head, other, strict=False)) if x != y), min(len(head), len(other))),
        )
    numbered = head[:common].rstrip("0123456789")
    if pc.all(pc.match_substring_regex(sample, f"^{re.escape(numbered)}[0-9]{{1,17}}$")).as_py():
        return "numbered", numbered
    longest = pc.max(pc.binary_length(sample)).as_py() or 0
    width = longest - 8
    if width <= 0 or width > common:
        return "", ""  # short values have exact keys already; long ones share too little
    prefix = head[:width]
    if not pc.all(pc.starts_with(sample, prefix)).as_py():
        return "", ""
    return "prefixed", prefix


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


Mask = Callable[[pa.Array, pa.Array], pa.Array | np.ndarray]


@dataclass
class Checked:
    """A batch after :meth:`Validator.check`: typed columns, the first rule each row broke, keys for ``unique``."""

    first: np.ndarray  # per row: index into ``found`` of the first rule broken, -1 when none
    found: list[_Check] = field(default_factory=list)
    raws: list[pa.Array] = field(default_factory=list)
    typed: list[pa.Array] = field(default_factory=list)
    keys: dict[int, _Keys] = field(default_factory=dict)

    def record(self, check: _Check, failed: pa.Array | np.ndarray) -> None:
        """Mark the rows of `failed` that broke no earlier rule as breaking `check`."""
        if isinstance(failed, pa.Array | pa.ChunkedArray):
            if not pc.any(failed).as_py():
                return
            failed = _mask(failed)
        new = failed & (self.first < 0)
        if new.any():
            self.first[new] = len(self.found)
            self.found.append(check)


def _casts_directly(col: Column, dialect: Dialect) -> bool:
    """Whether Arrow's cast from text reads `col` as the contract means it (ISO dates, ``.`` decimals)."""
    if col.format is not None:
        return False
    if col.type in ("int64", "date"):
        return True
    numeric = col.type == "float64" or col.type.startswith("decimal")
    return numeric and dialect.decimal_point == "."


class Validator:
    """Parse and check string batches against `contract`.

    Raises
    ------
    ContractError
        A rule of the contract does not fit its column's type.

    """

    def __init__(self, contract: Contract, *, compact: bool = False) -> None:
        self.contract = contract
        self.schema = contract_schema(contract)
        self._dialect = contract.dialect
        # text columns share the parsed batch's memory; rows that wait long (a partitioned
        # writer's buffer) are better copied out, so the rest of the batch is freed at once
        self._compact = compact
        self._seen = {c.name: SeenValues() for c in contract.columns if c.unique}
        self._key_makers = {c.name: KeyMaker() for c in contract.columns if c.unique}
        self._nulls = {c.name: column_nulls(c, self._dialect.null_values) for c in contract.columns}
        self._indirect: set[str] = set()
        self._checks: list[tuple[Column, list[tuple[_Check, Mask]]]] = [
            (c, self._column_checks(c)) for c in contract.columns
        ]
        tokens = pa.array(list(self._dialect.null_values), pa.string())
        self._direct = {
            c.name
            for c in contract.columns
            if _casts_directly(c, self._dialect)
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
            allowed = in_values(col, to)
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
        return self.finish(self.check(strings))

    def check(self, strings: pa.Table) -> Checked:
        """Every rule but ``unique`` over one batch; safe to run on several batches at once (threads).

        :meth:`finish` must then see the batches in file order: it applies ``unique``, whose
        state carries from one batch to the next.
        """
        n = strings.num_rows
        out = Checked(first=np.full(n, -1, dtype=np.int32))
        for col, checks in self._checks:
            raw = strings.column(col.name)
            copy = self._compact and col.type == "string" and not self._dialect.trim_spaces  # trimming copies
            raw = raw.combine_chunks() if copy else one_array(raw)
            out.raws.append(raw)  # the text as written, for the quarantine
            text = pc.utf8_trim(raw, characters=" \t") if self._dialect.trim_spaces else raw
            value, typed = self._parse(col, text)
            out.typed.append(typed)
            if col.required and value.null_count:
                out.record(
                    _Check(f"{col.name}.required", col.name, "is empty but the column is required"), pc.is_null(value)
                )
            if typed.null_count > value.null_count:
                out.record(
                    _Check(f"{col.name}.type", col.name, f"is not a valid {col.type}"),
                    pc.and_(pc.is_valid(value), pc.is_null(typed)),
                )
            for check, fn in checks:
                out.record(check, fn(typed, value))
        for k, col in enumerate(self.contract.columns):
            if col.unique:
                out.keys[k] = _keys_of_valid(out.typed[k], self._key_makers[col.name])
        return out

    def finish(self, checked: Checked) -> tuple[pa.Table, Rejects]:
        """Apply ``unique`` to a checked batch (batches in file order) and split valid from rejected rows."""
        first = checked.first
        for k, col in enumerate(self.contract.columns):
            if col.unique:
                checked.record(
                    _Check(f"{col.name}.unique", col.name, "repeats the value of an earlier row"),
                    self._duplicates(col.name, checked.keys[k], first < 0),
                )
        table = pa.Table.from_arrays(checked.typed, schema=self.schema)
        bad = np.flatnonzero(first >= 0)
        if not len(bad):
            return table, Rejects()
        rejects = Rejects(rows=bad)
        index = {c.name: k for k, c in enumerate(self.contract.columns)}
        for row in bad.tolist():
            check = checked.found[first[row]]
            rejects.rules.append(check.rule)
            rejects.columns.append(check.column)
            rejects.reasons.append(check.reason)
            rejects.values.append(checked.raws[index[check.column]][row].as_py())
        return table.filter(pa.array(first < 0)), rejects

    def _parse(self, col: Column, raw: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Text with null tokens applied, and the typed values."""
        if col.name in self._direct and col.name not in self._indirect:
            typed = cast_whole(raw, self.schema.field(col.name).type)  # no null token parses as this type
            if typed is not None:
                return raw, typed
            # a failed cast costs as much as a good one: once a column has held a null token or a
            # bad value, go straight to the null-aware path for the rest of the file
            self._indirect.add(col.name)
        value = apply_nulls(raw, self._nulls[col.name])
        return value, parse_values(value, col.type, self._dialect, col.format)

    def _duplicates(self, name: str, keys: _Keys, alive: np.ndarray) -> np.ndarray:
        """Rows (of those alive) whose value was seen before, in this batch or an earlier one."""
        seen = self._seen[name]
        dup = np.zeros(len(alive), dtype=bool)
        live = alive[keys.rows]
        if live.all():  # the usual case: the sort done by check() holds
            idx, batch, ordered = keys.rows, keys.keys, keys.ordered
        else:
            idx, batch = keys.rows[live], keys.keys[live]
            ordered = np.sort(batch)
        if not len(idx):
            return dup
        repeated = first_occurrences(batch) if (ordered[1:] == ordered[:-1]).any() else np.zeros(len(batch), bool)
        repeated |= seen.contains(batch)
        seen.add(batch[~repeated] if repeated.any() else ordered, presorted=not repeated.any())
        dup[idx[repeated]] = True
        return dup


@dataclass(frozen=True)
class _Keys:
    """Rows of a batch holding a value of a ``unique`` column, their keys, and the keys sorted."""

    rows: np.ndarray
    keys: np.ndarray
    ordered: np.ndarray


def _keys_of_valid(typed: pa.Array, maker: KeyMaker) -> _Keys:
    """Keys of the values of `typed`, computed ahead of the ordered ``unique`` check."""
    if typed.null_count == 0:
        rows, keys = np.arange(len(typed)), maker.keys(typed)
    else:
        rows = np.flatnonzero(_mask(pc.is_valid(typed)))
        keys = maker.keys(typed.take(pa.array(rows)))
    return _Keys(rows, keys, np.sort(keys))


def _pattern_mask(pattern: str) -> Mask:
    """A mask of values that do not match `pattern` (search semantics, RE2 where it can)."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        compiled = re.compile(pattern)

        def slow(_typed: pa.Array, value: pa.Array) -> pa.Array:
            return pa.array([None if v is None else compiled.search(v) is None for v in value.to_pylist()])

        return slow

    fixed = compile_fixed(pattern)

    def fast(_typed: pa.Array, value: pa.Array) -> pa.Array | np.ndarray:
        found = rows_of_width(value, fixed.width) if fixed is not None else None
        if fixed is None or found is None:
            return pc.invert(pc.match_substring_regex(value, pattern))
        rows, matrix = found  # ids of one width: compare the bytes, no regex; other widths can't match
        failed = np.ones(len(value), dtype=bool)
        failed[rows] = ~fixed.matches(matrix)
        if value.null_count:
            failed &= np.asarray(value.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return failed

    return fast
