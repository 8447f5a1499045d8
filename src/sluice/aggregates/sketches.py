"""A mergeable distinct-count sketch: exact for small sets, HyperLogLog above.

The sketch of a set of values U is a pure function of U's 64-bit hashes:

* ``|U| <= EXACT_LIMIT``: the sorted hashes themselves (the count is exact);
* otherwise: HyperLogLog registers at precision ``P`` (4096 registers, ~1.6 % standard error).

Merging two sketches gives the sketch of the union, whatever the order or grouping of merges
(set union, or register-wise max), so partial sketches combine exactly like the other aggregates.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zlib

P = 12
M = 1 << P
EXACT_LIMIT = 128
_REST_BITS = 64 - P
_REST_MASK = (1 << _REST_BITS) - 1
_ALPHA = 0.7213 / (1 + 1.079 / M)
# Longest encoding: "h12:" + base64 of (zlib of M bytes; zlib may add a few bytes when incompressible).
MAX_ENCODED = 4 + 4 * math.ceil((M + 64) / 3)


def value_hash(text: str) -> int:
    """Stable 64-bit hash of a value's canonical text (same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class SketchError(ValueError):
    """An encoded sketch cannot be decoded."""


class DistinctSketch:
    """Distinct count of the values added; see the module docstring for the representation."""

    __slots__ = ("_hashes", "_registers")

    def __init__(self) -> None:
        self._hashes: set[int] | None = set()
        self._registers: bytearray | None = None

    # ------------------------------------------------------------------ building
    def add(self, text: str) -> None:
        """Add one value, given as its canonical text."""
        self.add_hash(value_hash(text))

    def add_hash(self, h: int) -> None:
        """Add one value, given as its 64-bit hash."""
        if self._hashes is not None:
            self._hashes.add(h)
            if len(self._hashes) > EXACT_LIMIT:
                self._to_registers()
            return
        assert self._registers is not None
        _set_register(self._registers, h)

    def update(self, other: DistinctSketch) -> None:
        """Merge `other` into this sketch (union of the underlying sets)."""
        if other._hashes is not None:
            for h in other._hashes:
                self.add_hash(h)
            return
        assert other._registers is not None
        if self._registers is None:
            self._to_registers()
        assert self._registers is not None
        mine, theirs = self._registers, other._registers
        for i, value in enumerate(theirs):
            mine[i] = max(mine[i], value)

    def copy(self) -> DistinctSketch:
        """An independent copy."""
        twin = DistinctSketch()
        twin._hashes = set(self._hashes) if self._hashes is not None else None
        twin._registers = bytearray(self._registers) if self._registers is not None else None
        return twin

    def _to_registers(self) -> None:
        registers = bytearray(M)
        for h in self._hashes or ():
            _set_register(registers, h)
        self._hashes, self._registers = None, registers

    # ------------------------------------------------------------------ reading
    @property
    def exact(self) -> bool:
        """Whether :meth:`estimate` is the exact distinct count."""
        return self._hashes is not None

    def estimate(self) -> int:
        """The distinct count: exact below ``EXACT_LIMIT`` values, a HyperLogLog estimate above."""
        if self._hashes is not None:
            return len(self._hashes)
        assert self._registers is not None
        total = math.fsum(2.0**-r for r in self._registers)
        raw = _ALPHA * M * M / total
        zeros = self._registers.count(0)
        if raw <= 2.5 * M and zeros:
            raw = M * math.log(M / zeros)
        return round(raw)

    # ------------------------------------------------------------------ encoding
    def encode(self) -> str:
        """Compact text: ``x:<base64 sorted hashes>`` or ``h12:<base64 zlib registers>``."""
        if self._hashes is not None:
            raw = b"".join(h.to_bytes(8, "big") for h in sorted(self._hashes))
            return "x:" + base64.b64encode(raw).decode("ascii")
        assert self._registers is not None
        return f"h{P}:" + base64.b64encode(zlib.compress(bytes(self._registers), 9)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> DistinctSketch:
        """Inverse of :meth:`encode`.

        Raises
        ------
        SketchError
            `text` is not an encoded sketch of this precision.

        """
        sketch = cls()
        try:
            kind, _, payload = text.partition(":")
            raw = base64.b64decode(payload, validate=True)
            if kind == "x":
                if len(raw) % 8 or len(raw) // 8 > EXACT_LIMIT:
                    raise SketchError("exact sketch must hold at most 128 hashes of 8 bytes")
                sketch._hashes = {int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)}
            elif kind == f"h{P}":
                registers = bytearray(zlib.decompress(raw))
                if len(registers) != M or max(registers) > _REST_BITS + 1:
                    raise SketchError(f"HyperLogLog sketch must hold {M} registers of at most {_REST_BITS + 1}")
                sketch._hashes, sketch._registers = None, registers
            else:
                raise SketchError(f"unknown sketch kind {kind!r} (expected 'x' or 'h{P}')")
        except (ValueError, zlib.error) as exc:
            if isinstance(exc, SketchError):
                raise
            raise SketchError(f"undecodable sketch: {exc}") from exc
        return sketch

    def encoded_size_bound(self) -> int:
        """An upper bound of ``len(self.encode())``, computed without encoding."""
        if self._hashes is not None:
            return 2 + 4 * math.ceil(8 * len(self._hashes) / 3)
        return MAX_ENCODED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinctSketch):
            return NotImplemented
        return self._hashes == other._hashes and self._registers == other._registers

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'DistinctSketch' (it is mutable)")

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"hll{P}"
        return f"DistinctSketch({mode}, ~{self.estimate()})"


def _set_register(registers: bytearray, h: int) -> None:
    index = h >> _REST_BITS
    rest = h & _REST_MASK
    rank = _REST_BITS - rest.bit_length() + 1
    registers[index] = max(registers[index], rank)
