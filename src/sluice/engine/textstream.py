"""Raw CSV bytes to UTF-8 blocks: byte order marks and explicit transcoding.

The CSV reader only ever sees UTF-8. A UTF-8 contract passes the bytes through untouched (a
leading BOM is dropped) and undecodable bytes are caught per row by the parser. Any other
encoding is transcoded here, block by block; a byte that is not valid in that encoding is
carried through as the same raw byte (``surrogateescape``), which is invalid UTF-8, so that
row, and only that row, is quarantined downstream.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from sluice.errors import InputRejectedError

PASSTHROUGH = frozenset({"utf-8", "utf-8-sig"})
UTF16 = frozenset({"utf-16", "utf-16-le", "utf-16-be"})
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_TRANSCODE_PIECE = 1 << 20


def sniff_bom(head: bytes) -> tuple[str | None, int]:
    """The encoding a byte order mark at the start of `head` announces, and its length."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return None, 0


def read_exactly(source: BinaryIO, size: int) -> bytes:
    """Read up to `size` bytes, looping over short reads; fewer only at end of stream."""
    parts: list[bytes] = []
    want = size
    while want > 0:
        piece = source.read(want)
        if not piece:
            break
        parts.append(piece)
        want -= len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class Utf8Blocks:
    """Iterate a binary source as blocks of UTF-8 bytes.

    Parameters
    ----------
    source
        Readable binary file object; it may be non-seekable and is read once, in order.
    encoding
        The contract's (normalised) encoding.
    source_name
        Named in every error message.
    block_size
        Bytes read from `source` per block.
    at_start
        False when `source` starts in the middle of a file (a byte range): no BOM is expected.

    Raises
    ------
    InputRejectedError
        The bytes cannot be in `encoding` (a byte order mark says otherwise, or a byte that
        cannot be carried through as a raw byte).

    """

    def __init__(
        self, source: BinaryIO, encoding: str, *, source_name: str, block_size: int, at_start: bool = True
    ) -> None:
        self._source = source
        self._encoding = encoding
        self._source_name = source_name
        self._block_size = block_size
        self._at_start = at_start
        self.bytes_in = 0  # bytes read from `source`
        self.bytes_out = 0  # UTF-8 bytes handed out

    def _read(self) -> bytes:
        block = read_exactly(self._source, self._block_size)
        self.bytes_in += len(block)
        return block

    def _codec_for(self, head: bytes) -> tuple[str | None, int]:
        """Pick the codec (None = UTF-8 passthrough) and how many leading BOM bytes to drop."""
        enc = self._encoding
        bom, bom_len = sniff_bom(head) if self._at_start else (None, 0)
        if bom is not None and bom.startswith("utf-32"):
            raise InputRejectedError(
                f"{self._source_name}: the file starts with a {bom.upper()} byte order mark; "
                f"sluice reads {', '.join(sorted(PASSTHROUGH | UTF16))} and 8-bit encodings: re-encode the file"
            )
        if enc in PASSTHROUGH or enc == "ascii":
            if bom is not None and bom != "utf-8":
                raise InputRejectedError(
                    f"{self._source_name}: the file starts with a {bom.upper()} byte order mark but the contract "
                    f"says encoding {enc}: set dialect.encoding: utf-16 in the contract"
                )
            return (None if enc in PASSTHROUGH else "ascii"), bom_len
        if enc in UTF16:
            if bom == "utf-8":
                raise InputRejectedError(
                    f"{self._source_name}: the file starts with a UTF-8 byte order mark but the contract says "
                    f"encoding {enc}: set dialect.encoding: utf-8"
                )
            if bom is not None:
                if enc not in ("utf-16", bom):
                    raise InputRejectedError(
                        f"{self._source_name}: the byte order mark says {bom.upper()} but the contract says "
                        f"{enc}: set dialect.encoding: utf-16"
                    )
                return bom, bom_len
            if self._at_start and len(head) >= 2 and 0 not in head[:64]:
                raise InputRejectedError(
                    f"{self._source_name}: the contract says encoding {enc} but the file has no byte order mark "
                    f"and no NUL bytes in its first {min(len(head), 64)} bytes, so it is not UTF-16; "
                    f"fix dialect.encoding"
                )
            return ("utf-16-le" if enc == "utf-16" else enc), 0
        if bom is not None:
            raise InputRejectedError(
                f"{self._source_name}: the file starts with a {bom.upper()} byte order mark but the contract says "
                f"encoding {enc}: set dialect.encoding to {'utf-8' if bom == 'utf-8' else 'utf-16'}"
            )
        return enc, 0

    def __iter__(self) -> Iterator[bytes]:
        head = self._read()
        codec, skip = self._codec_for(head)
        head = head[skip:]
        if codec is None:
            while head:
                self.bytes_out += len(head)
                yield head
                head = self._read()
            return
        decoder = codecs.getincrementaldecoder(codec)("surrogateescape")
        offset = skip
        block = head
        while True:
            final = not block
            out: list[bytes] = []
            for i in range(0, max(len(block), 1), _TRANSCODE_PIECE):
                piece = block[i : i + _TRANSCODE_PIECE]
                try:
                    text = decoder.decode(piece, final=final)
                except UnicodeDecodeError as exc:
                    where = offset + i + exc.start
                    bad = piece[exc.start : exc.end].hex(" ")
                    raise InputRejectedError(
                        f"{self._source_name}: byte(s) {bad} at offset {where} cannot be decoded as {self._encoding} "
                        f"({exc.reason}); fix dialect.encoding in the contract or re-encode the file"
                    ) from exc
                if text:
                    out.append(text.encode("utf-8", "surrogateescape"))
            if out:
                block = b"".join(out)
                self.bytes_out += len(block)
                yield block
            if final:
                return
            offset += len(block)
            block = self._read()
