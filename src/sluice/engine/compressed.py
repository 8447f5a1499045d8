"""Compressed raw objects: gzip, bzip2 and zstd CSV files are read through a streaming decompressor.

The compression is recognised by the first bytes of the object, not by its name, so
``orders.csv.gz``, ``orders.csv.zst`` and a gzip stored as ``orders.csv`` all load. A compressed
object cannot be split into byte ranges: it always converts on one worker.

A decompressing stream is bounded by the contract's ``limits``: it fails as soon as it has
produced more than ``max_decompressed_bytes``, or more than ``max_expansion_ratio`` times the
compressed bytes read so far plus :data:`RATIO_SLACK` (a compression bomb). Archives and other
binary formats (zip, 7z, rar, xz, lz4, Parquet, xls, PDF, tar ...) are refused by their magic
bytes with :class:`~sluice.errors.UnsupportedFormatError`, also inside a compressed stream.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from typing import BinaryIO, cast

from sluice.contracts import Limits
from sluice.engine.textstream import read_exactly
from sluice.errors import DecompressionLimitError, InputRejectedError, UnsupportedFormatError

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\x28\xb5\x2f\xfd", "zstd"))
HEAD_LIMIT = 4 << 20  # decompressed bytes of a sample: enough for a header, bounded for a "zip bomb"
RATIO_SLACK = 16 << 20  # decompressed bytes allowed beyond max_expansion_ratio (small files compress well)
SNIFF_BYTES = 264  # enough for every magic number below (tar's is at offset 257)
_FORMATS = (
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx, .docx or .ods document, which are ZIP files)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"PK\x07\x08", "a split ZIP archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x04\x22\x4d\x18", "an LZ4 frame"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 document (an Excel 97-2003 .xls, or a .doc)"),
    (b"PAR1\x15", "a Parquet file"),
    (b"Obj\x01", "an Avro file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"%PDF-", "a PDF document"),
)


def sniff(head: bytes) -> str | None:
    """``gzip``, ``bzip2``, ``zstd`` or None (not compressed) from the first bytes of an object."""
    for magic, kind in _MAGIC:
        if head.startswith(magic) and (kind != "bzip2" or head[3:4] in b"123456789"):
            return kind
    return None


def binary_format(head: bytes) -> str | None:
    """What an archive or binary file is, from its first :data:`SNIFF_BYTES` bytes; None for text."""
    for magic, what in _FORMATS:
        if head.startswith(magic):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive"
    return None


def refuse_binary(head: bytes, source_name: str, inside: str | None = None) -> None:
    """Raise :class:`UnsupportedFormatError` when `head` starts an archive or a binary file, not CSV.

    `inside`: the compression the bytes came out of (``gzip`` for a ``.tar.gz``), if any.
    """
    what = binary_format(head)
    if what is None and inside is not None and sniff(head) is not None:
        what = f"{sniff(head)}-compressed data"
    if what is None:
        return
    where = f"{inside}-compressed, it holds {what}" if inside else f"it is {what}"
    raise UnsupportedFormatError(
        f"{source_name}: not a CSV file: {where} (recognised by its first bytes). sluice reads CSV, plain or "
        f"compressed with gzip, bzip2 or zstd: extract the CSV and upload it instead"
    )


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
    """A decompressing reader whose errors name the file (a corrupt or truncated stream), within `limits`."""

    def __init__(
        self, inner: BinaryIO, kind: str, source_name: str, *, raw: _Prepended, limits: Limits, label: str
    ) -> None:
        self._inner = inner
        self._kind = kind
        self._source_name = source_name
        self._raw = raw
        self._max_bytes = limits.decompressed_bytes
        self._ratio = limits.max_expansion_ratio
        self._label = label
        self.produced = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size)
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputRejectedError(
                f"{self._source_name}: the {self._kind} stream is corrupt or cut short ({exc}); "
                f"nothing was loaded. Upload the file again, or uncompressed"
            ) from exc
        self.produced += len(data)
        if self.produced > self._max_bytes:
            raise DecompressionLimitError(
                f"{self._source_name}: the {self._kind} stream decompresses to more than {_mib(self._max_bytes)} "
                f"(limits.max_decompressed_bytes of contract {self._label}); stopped there, nothing was loaded. "
                f"Raise the limit if the file is genuine, or split it"
            )
        consumed = self._raw.consumed
        if self.produced > RATIO_SLACK + self._ratio * consumed:
            raise DecompressionLimitError(
                f"{self._source_name}: the {self._kind} stream expands {self.produced / max(1, consumed):,.0f} times "
                f"({_mib(self.produced)} from the first {consumed:,} bytes), more than limits.max_expansion_ratio "
                f"{self._ratio:g} of contract {self._label} allows: a compression bomb? Nothing was loaded; raise "
                f"the limit if the file is genuine"
            )
        return data


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    import pyarrow as pa  # only for zstd: the standard library reads it from Python 3.14 on

    return cast(BinaryIO, pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"))


def open_source(
    source: BinaryIO, source_name: str, limits: Limits | None = None, label: str = ""
) -> tuple[BinaryIO, _Prepended, str | None]:
    """`source` as CSV bytes (decompressed if it is compressed), the raw reader, and the compression.

    Raises
    ------
    UnsupportedFormatError
        The object is an archive or a binary file (also inside the compression).
    DecompressionLimitError
        Raised by reads of a compressed object beyond `limits` (the contract's defaults if None).

    """
    head = read_exactly(source, SNIFF_BYTES)
    refuse_binary(head, source_name)
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
    stream = _Decompressed(inner, kind, source_name, raw=raw, limits=limits or Limits(), label=label)
    inner_head = read_exactly(cast(BinaryIO, stream), SNIFF_BYTES)
    refuse_binary(inner_head, source_name, inside=kind)
    return cast(BinaryIO, _Prepended(inner_head, cast(BinaryIO, stream))), raw, kind


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
