"""Compressed raw objects: gzip and bzip2 CSV files are read through a streaming decompressor.

The compression is recognised by the first bytes of the object, not by its name, so
``orders.csv.gz``, ``orders.gz`` and a gzip stored as ``orders.csv`` all load. A compressed
object cannot be split into byte ranges: it always converts on one worker.
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from typing import BinaryIO, cast

from sluice.errors import InputRejectedError
from sluice.textstream import read_exactly

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"))
HEAD_LIMIT = 4 << 20  # decompressed bytes of a sample: enough for a header, bounded for a "zip bomb"


def sniff(head: bytes) -> str | None:
    """``gzip``, ``bzip2`` or None (not compressed) from the first bytes of an object."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


class _Prepended:
    """`source` with `head` (already read from it) put back in front; counts the bytes handed out."""

    def __init__(self, head: bytes, source: BinaryIO) -> None:
        self._head = head
        self._source = source
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            data = self._source.read(size)
        elif 0 <= size <= len(self._head):
            data, self._head = self._head[:size], self._head[size:]
        else:
            head, self._head = self._head, b""
            data = head + (self._source.read() if size < 0 else self._source.read(size - len(head)))
        self.consumed += len(data)
        return data


class _Decompressed:
    """A decompressing reader whose errors name the file (a corrupt or truncated stream)."""

    def __init__(self, inner: gzip.GzipFile | bz2.BZ2File, kind: str, source_name: str) -> None:
        self._inner = inner
        self._kind = kind
        self._source_name = source_name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise InputRejectedError(
                f"{self._source_name}: the {self._kind} stream is corrupt or cut short ({exc}); "
                f"nothing was loaded. Upload the file again, or uncompressed"
            ) from exc


def open_source(source: BinaryIO, source_name: str) -> tuple[BinaryIO, _Prepended, str | None]:
    """`source` as CSV bytes (decompressed if it is gzip or bzip2), the raw reader, and the compression."""
    head = read_exactly(source, 3)
    raw = _Prepended(head, source)
    kind = sniff(head)
    readable = cast(BinaryIO, raw)  # read() is all the readers below use
    if kind is None:
        return readable, raw, None
    inner = gzip.GzipFile(fileobj=readable, mode="rb") if kind == "gzip" else bz2.BZ2File(readable, mode="rb")
    return cast(BinaryIO, _Decompressed(inner, kind, source_name)), raw, kind


def decompress_head(sample: bytes, kind: str, source_name: str) -> bytes:
    """The first (at most HEAD_LIMIT) decompressed bytes of a compressed sample (it may be cut short)."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(wbits=31).decompress(sample, HEAD_LIMIT)
        return bz2.BZ2Decompressor().decompress(sample, max_length=HEAD_LIMIT)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputRejectedError(f"{source_name}: the file starts like {kind} but does not decompress ({exc})") from exc
