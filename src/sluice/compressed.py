"""Compressed raw objects: gzip, bzip2 and zstd CSV files are read through a streaming decompressor.

The compression is recognised by the first bytes of the object, not by its name, so
``orders.csv.gz``, ``orders.csv.zst`` and a gzip stored as ``orders.csv`` all load. A compressed
object cannot be split into byte ranges: it always converts on one worker.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from typing import BinaryIO, cast

from sluice.errors import InputRejectedError
from sluice.textstream import read_exactly

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\x28\xb5\x2f\xfd", "zstd"))
HEAD_LIMIT = 4 << 20  # decompressed bytes of a sample: enough for a header, bounded for a "zip bomb"


def sniff(head: bytes) -> str | None:
    """``gzip``, ``bzip2``, ``zstd`` or None (not compressed) from the first bytes of an object."""
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
        self.closed = False  # what pyarrow's PythonFile asks before reading

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to do: whoever opened the source closes it."""

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            data = self._source.read() if size < 0 else self._source.read(size)
        elif 0 <= size <= len(self._head):
            data, self._head = self._head[:size], self._head[size:]
        else:
            head, self._head = self._head, b""
            data = head + (self._source.read() if size < 0 else self._source.read(size - len(head)))
        self.consumed += len(data)
        return data


class _Decompressed:
    """A decompressing reader whose errors name the file (a corrupt or truncated stream)."""

    def __init__(self, inner: BinaryIO, kind: str, source_name: str) -> None:
        self._inner = inner
        self._kind = kind
        self._source_name = source_name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputRejectedError(
                f"{self._source_name}: the {self._kind} stream is corrupt or cut short ({exc}); "
                f"nothing was loaded. Upload the file again, or uncompressed"
            ) from exc


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    import pyarrow as pa  # only for zstd: the standard library reads it from Python 3.14 on

    return cast(BinaryIO, pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"))


def open_source(source: BinaryIO, source_name: str) -> tuple[BinaryIO, _Prepended, str | None]:
    """`source` as CSV bytes (decompressed if it is compressed), the raw reader, and the compression."""
    head = read_exactly(source, 4)
    raw = _Prepended(head, source)
    kind = sniff(head)
    readable = cast(BinaryIO, raw)  # read() is all the readers below use
    if kind is None:
        return readable, raw, None
    inner: BinaryIO
    if kind == "gzip":
        inner = cast(BinaryIO, gzip.GzipFile(fileobj=readable, mode="rb"))
    elif kind == "bzip2":
        inner = cast(BinaryIO, bz2.BZ2File(readable, mode="rb"))
    else:
        inner = _zstd_reader(readable)
    return cast(BinaryIO, _Decompressed(inner, kind, source_name)), raw, kind


def decompress_head(sample: bytes, kind: str, source_name: str) -> bytes:
    """The first (at most HEAD_LIMIT) decompressed bytes of a compressed sample (it may be cut short)."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(wbits=31).decompress(sample, HEAD_LIMIT)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(sample, max_length=HEAD_LIMIT)
        return _zstd_head(sample)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputRejectedError(f"{source_name}: the file starts like {kind} but does not decompress ({exc})") from exc


def _zstd_head(sample: bytes) -> bytes:
    """What a (possibly cut short) zstd sample decompresses to, up to HEAD_LIMIT bytes."""
    stream = _zstd_reader(cast(BinaryIO, io.BytesIO(sample)))
    parts: list[bytes] = []
    size = 0
    while size < HEAD_LIMIT:
        try:
            part = stream.read(64 << 10)
        except (ValueError, OSError):  # the sample ends inside a block: keep what came before it
            if not parts:
                raise
            break
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
