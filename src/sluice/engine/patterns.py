"""Fixed-width text checked over its bytes: the fast path for id-like patterns and numbered keys.

Ids and codes are usually written at one width (``O-0000000042``, ``SKU-00017``, ``DE``). A
string array whose values all have the same byte length is, without a copy, an ``(n, width)``
matrix of bytes (:func:`fixed_width_bytes`), and an anchored pattern made only of ASCII
literals and byte classes with exact counts (``^O-[0-9]{10}$``) is then a few vectorised
comparisons over its columns instead of a regular expression run per value
(:func:`compile_fixed`). In an array of mixed widths only the rows of the pattern's width are
compared (:func:`rows_of_width`): the others cannot match. Patterns outside the subset take RE2.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyarrow as pa

_SPECIAL = set("\\^$.|?*+()[]{}")
_CLASS_ESCAPES = {
    "d": "0123456789",
    "w": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_",
}


def _lengths(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Offsets and byte lengths of a string array's values (None: not a string array with data)."""
    if len(arr) == 0 or not pa.types.is_string(arr.type) or arr.buffers()[1] is None or arr.buffers()[2] is None:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return offsets, np.diff(offsets)


def _matrix(arr: pa.Array, offsets: np.ndarray, width: int) -> np.ndarray:
    """The bytes of `arr`, whose values all have `width` bytes, as an ``(n, width)`` view."""
    n = len(arr)
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=n * width, offset=int(offsets[0])).reshape(n, width)


def fixed_width_bytes(arr: pa.Array) -> np.ndarray | None:
    """The bytes of `arr` as an ``(n, width)`` uint8 matrix (a view, no copy).

    None unless `arr` is a non-empty string array without nulls whose values all have one
    byte length, at least 1.
    """
    found = _lengths(arr) if not arr.null_count else None
    if found is None:
        return None
    offsets, lengths = found
    width = int(lengths[0])
    if width == 0 or bool((lengths != width).any()):
        return None
    return _matrix(arr, offsets, width)


def rows_of_width(arr: pa.Array, width: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of `arr` whose value has `width` bytes (None: the commonest width), and their bytes.

    Returns the row numbers (ascending) and an ``(len(rows), width)`` byte matrix: a view when
    every row has that width (see :func:`fixed_width_bytes`), else a copy of just those rows.
    Null rows never qualify. None unless `arr` is a string array with a value of at least one byte.
    """
    found = _lengths(arr)
    if found is None:
        return None
    offsets, lengths = found
    if arr.null_count:
        lengths[np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = 0
    if width is None:
        counts = np.bincount(lengths)
        counts[0] = 0
        width = int(counts.argmax())
    if width <= 0:
        return None
    same = lengths == width
    if same.all():
        return np.arange(len(arr)), _matrix(arr, offsets, width)
    rows = np.flatnonzero(same)
    if not len(rows):
        return rows, np.zeros((0, width), dtype=np.uint8)
    matrix = fixed_width_bytes(arr.take(pa.array(rows)))
    assert matrix is not None  # the rows taken all have `width` bytes
    return rows, matrix


class FixedPattern:
    """An anchored pattern that only matches values of `width` bytes, each position from one byte class.

    Positions whose class is a range of bytes (a literal is a range of one) are checked all at
    once over the matrix's contiguous bytes; others look their byte up in a table.
    """

    def __init__(self, positions: list[frozenset[int]]) -> None:
        self.width = len(positions)
        self._low = np.zeros(self.width, dtype=np.uint8)
        self._span = np.full(self.width, 255, dtype=np.uint8)  # 255: any byte passes the range check
        self._tables: list[tuple[int, np.ndarray]] = []
        for j, allowed in enumerate(positions):
            lo, hi = min(allowed), max(allowed)
            if len(allowed) == hi - lo + 1:
                self._low[j], self._span[j] = lo, hi - lo
            else:
                table = np.zeros(256, dtype=bool)
                table[sorted(allowed)] = True
                self._tables.append((j, table))
        self._tiled: tuple[np.ndarray, np.ndarray] = (self._low, self._span)

    def _bounds(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The per-position bounds repeated for `rows` rows (kept for the largest batch seen)."""
        size = rows * self.width
        low, span = self._tiled
        if len(low) < size:
            low, span = np.tile(self._low, rows), np.tile(self._span, rows)
            self._tiled = (low, span)
        return low[:size], span[:size]

    def matches(self, matrix: np.ndarray) -> np.ndarray:
        """Which rows of a ``(n, width)`` byte matrix (see :func:`fixed_width_bytes`) match."""
        n = matrix.shape[0]
        if matrix.shape[1] != self.width:
            return np.zeros(n, dtype=bool)
        low, span = self._bounds(n)
        # one pass over all the bytes; uint8 arithmetic wraps, so a byte below the range is out too
        bad = (matrix.reshape(-1) - low) > span
        ok = ~bad.reshape(n, self.width).any(axis=1) if bad.any() else np.ones(n, dtype=bool)
        for j, table in self._tables:
            ok &= table[matrix[:, j]]
        return ok


def _escape(e: str) -> str | None:
    r"""The characters an escape ``\e`` stands for (``\d``, ``\w``, escaped ASCII punctuation)."""
    if e in _CLASS_ESCAPES:
        return _CLASS_ESCAPES[e]
    return e if e and not e.isalnum() and e.isascii() and e.isprintable() else None


def _class(body: str) -> frozenset[int] | None:
    """The bytes of a bracket expression's body (not negated), ASCII only; None outside the subset.

    Ranges only join plain characters (``a-z``); a ``-`` is literal only first or last.
    """
    chars: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            chars_of = _escape(body[i + 1 : i + 2])
            if chars_of is None or (body[i + 2 : i + 3] == "-" and i + 3 < len(body)):
                return None
            chars.extend(chars_of)
            i += 2
        elif c == "[":
            return None  # POSIX classes and the like
        elif c == "-" and 0 < i < len(body) - 1:
            return None  # a range from or to an escape
        elif i + 2 < len(body) and body[i + 1] == "-" and body[i + 2] not in "\\[":
            if ord(c) > ord(body[i + 2]):
                return None
            chars.extend(map(chr, range(ord(c), ord(body[i + 2]) + 1)))
            i += 3
        else:
            chars.append(c)
            i += 1
    if not chars or not all(c.isascii() and c.isprintable() for c in chars):
        return None
    return frozenset(ord(c) for c in chars)


def _closing_bracket(body: str, start: int) -> int:
    """Index of the ``]`` closing the class whose body starts at `start` (-1: none)."""
    j = start
    while j < len(body) and body[j] != "]":
        j += 2 if body[j] == "\\" else 1
    return j if j < len(body) else -1


def _atoms(body: str) -> list[frozenset[int]] | None:
    """One byte class per position of an anchored pattern's body; None outside the subset."""
    positions: list[frozenset[int]] = []
    i = 0
    while i < len(body):
        c = body[i]
        atom: frozenset[int] | None
        if c == "[":
            if body[i + 1 : i + 2] in ("^", "]", ""):
                return None
            end = _closing_bracket(body, i + 1)
            if end < 0:
                return None
            atom = _class(body[i + 1 : end])
            i = end + 1
        elif c == "\\":
            chars = _escape(body[i + 1 : i + 2])
            atom = frozenset(map(ord, chars)) if chars is not None else None
            i += 2
        elif c in _SPECIAL or not (c.isascii() and c.isprintable()):
            return None
        else:
            atom = frozenset((ord(c),))
            i += 1
        if atom is None:
            return None
        count = 1
        m = re.match(r"\{(\d+)\}", body[i:])
        if m is not None:
            count = int(m.group(1))
            i += m.end()
        elif body[i : i + 1] in ("{", "*", "+", "?"):
            return None
        positions.extend([atom] * count)
    return positions


def compile_fixed(pattern: str) -> FixedPattern | None:
    r"""The :class:`FixedPattern` of an anchored fixed-width pattern (``^O-[0-9]{10}$``), else None.

    The subset: ``^`` and ``$`` around ASCII literals, escaped punctuation, ``\d``, ``\w`` and
    bracket classes of ASCII characters and ranges, each optionally repeated ``{n}`` times.
    Alternation, groups, ``.``, negated classes, other quantifiers and flags are left to RE2,
    whose meaning this subset keeps (``$`` is the end of the text, ``[0-9]`` only ASCII digits).
    """
    if len(pattern) < 3 or not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
        return None
    positions = _atoms(pattern[1:-1])
    if not positions or len(positions) > 256:
        return None
    return FixedPattern(positions)


_DIGITS = frozenset(range(ord("0"), ord("9") + 1))


@lru_cache(maxsize=64)
def numbered(prefix: bytes, digits: int) -> FixedPattern:
    """The pattern ``prefix`` followed by exactly `digits` ASCII digits."""
    return FixedPattern([frozenset((b,)) for b in prefix] + [_DIGITS] * digits)
