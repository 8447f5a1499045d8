"""Streaming CSV reader: record-aligned chunks parsed by pyarrow, checked, with a precise slow path.

The byte stream (UTF-8, see :mod:`sluice.engine.textstream`) is cut into chunks that end on a record
boundary (any line break when values cannot span lines; a line break at even quote parity
otherwise), so every chunk knows the physical line it starts on. Each chunk is parsed by
``pyarrow.csv`` into string columns (the fast path, always with quote-aware record splitting),
then checked:

- NUL bytes, invalid UTF-8, rows with the wrong field count, and quoting pyarrow would accept
  silently (text after a closing quote, bare quotes, a quote left open; found from the parity
  of the quotes, vectorised) send the chunk to the slow path;
- with ``newlines_in_values: false`` every record must be exactly one physical line: rows plus
  blank lines must equal the line count, otherwise the slow path finds the quoted line break and
  the file is rejected (loudly, never mis-parsed);
- with ``newlines_in_values: true`` a chunk whose last value ends in a line break was cut inside
  a quoted value; the slow path carries that record over to the next chunk.

The slow path is Python's ``csv`` module in strict mode over the chunk's lines: it knows each
record's line number and text, so bad records are set aside as :class:`~sluice.engine.quarantine.Rejected` (quarantine)
and the good ones are returned as the same string columns. A chunk only works out *where* its
rows came from when asked (:meth:`Chunk.locate`), so clean chunks pay nothing for line numbers.
When values cannot span lines, a chunk that fails the fast path is retried in 1 MiB pieces so
only the piece holding the problem takes the slow path.

A source that starts at a record boundary in the middle of a file (a byte range) is read with
``header=False`` and ``first_line`` set (see ``ConvertOptions.header``).
"""

from __future__ import annotations

import _csv
import csv
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.contracts import Dialect
from sluice.engine.quarantine import Rejected
from sluice.errors import InputRejectedError

CR, LF = 13, 10
Bytes = bytes | bytearray  # the reader hands out its buffer's front as is (see CsvReader._take_front)
_SUB_CHUNK = 1 << 20
LONG_LINE_SHOWN = 1 << 10  # bytes of an over-long line kept for the quarantine


@dataclass(frozen=True)
class CsvFormat:
    """The tokenising part of a dialect."""

    delimiter: str = ","
    quote_char: str | None = '"'
    escape_char: str | None = None
    double_quote: bool = True
    newlines_in_values: bool = False

    @classmethod
    def from_dialect(cls, dialect: Dialect) -> CsvFormat:
        """The format a contract dialect declares."""
        return cls(
            delimiter=dialect.delimiter,
            quote_char=dialect.quote_char or None,
            escape_char=dialect.escape_char or None,
            double_quote=dialect.double_quote,
            newlines_in_values=dialect.newlines_in_values,
        )

    def reader(self, lines: Iterable[str]) -> _csv.Reader:
        """A strict Python ``csv`` reader over `lines` in this format."""
        if self.quote_char is None:
            return csv.reader(
                lines, delimiter=self.delimiter, quoting=csv.QUOTE_NONE, escapechar=self.escape_char, strict=True
            )
        return csv.reader(
            lines,
            delimiter=self.delimiter,
            quotechar=self.quote_char,
            escapechar=self.escape_char,
            doublequote=self.double_quote,
            strict=True,
        )


def printable(text: str) -> str:
    r"""`text` with undecodable bytes (surrogate escapes) and NUL shown as ``\\xNN``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def csv_error_text(exc: csv.Error) -> str:
    """A csv module error message with control characters made visible."""
    return str(exc).encode("unicode_escape").decode("ascii").replace("\\'", "'")


def _strip_terminator(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\r", "\n")):
        return text[:-1]
    return text


Locator = Callable[[Sequence[int]], list[tuple[int, str]]]


@dataclass(frozen=True)
class Piece:
    """Record-aligned bytes of the stream, cut ahead of parsing (see :meth:`CsvReader.pieces`).

    A line longer than the reader's ``max_record_bytes`` is never held whole: it becomes a piece
    without data whose ``bad`` record names it (rule ``row.length``).
    """

    data: Bytes
    first_line: int
    final: bool
    line_breaks: int
    bad: tuple[Rejected, ...] = ()


@dataclass
class Chunk:
    """Records of one record-aligned piece of the file.

    ``table`` holds the well-formed records as string columns named after the contract's
    columns; ``bad`` the records set aside while parsing. ``records`` counts both.
    """

    table: pa.Table
    bad: list[Rejected]
    blank_lines: int
    first_line: int
    locator: Locator = field(repr=False)
    line_breaks: int | None = None  # line terminators in the chunk's bytes, when already counted

    @property
    def records(self) -> int:
        """Data records in the chunk (well-formed and bad), blank lines excluded."""
        return int(self.table.num_rows) + len(self.bad)

    def locate(self, rows: Sequence[int]) -> list[tuple[int, str]]:
        """``(line, original text)`` of the given rows of ``table``."""
        return self.locator(rows) if len(rows) else []


_scratch = threading.local()
_SCRATCH_LIMIT = 8 << 20


def equal_bytes(data: Bytes, byte: int) -> np.ndarray:
    """Mask of the bytes of `data` equal to `byte`.

    Written into a buffer of the calling thread, reused from call to call (fresh pages cost more
    than the comparison here): valid until the thread's next call.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    if len(arr) > _SCRATCH_LIMIT:
        return np.asarray(arr == byte)
    buf: np.ndarray | None = getattr(_scratch, "mask", None)
    if buf is None or len(buf) < len(arr):
        buf = np.empty(max(len(arr), 1 << 21), dtype=bool)
        _scratch.mask = buf
    out: np.ndarray = np.equal(arr, byte, out=buf[: len(arr)])
    return out


def count_line_breaks(data: Bytes) -> int:
    """Line terminators (CR, LF or CRLF) in `data`."""
    if data.find(b"\r") < 0:  # memchr: the usual LF-only file costs one vectorised count
        return int(np.count_nonzero(equal_bytes(data, LF)))
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _lines_in(data: Bytes) -> int:
    n = count_line_breaks(data)
    return n + 1 if data and data[-1] not in (CR, LF) else n


def line_spans(data: Bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, terminator excluded) offsets of every physical line of `data`."""
    if data.find(b"\r") < 0:  # LF only: the line ends are where the LFs are
        stops = np.flatnonzero(equal_bytes(data, LF))
        starts = np.empty(len(stops) + 1, dtype=np.int64)
        starts[0] = 0
        starts[1:] = stops + 1
        if starts[-1] < len(data):
            return starts, np.append(stops, len(data))
        return starts[:-1], stops
    arr = np.frombuffer(data, dtype=np.uint8)
    lf = arr == LF
    cr = arr == CR
    last = lf.copy()
    lone_cr = cr.copy()
    lone_cr[:-1] &= ~lf[1:]
    last |= lone_cr
    ends = np.flatnonzero(last)
    term = np.ones(len(ends), dtype=np.int64)
    if len(ends):
        prev = np.maximum(ends - 1, 0)
        term[lf[ends] & (ends > 0) & cr[prev]] = 2
    stops = ends + 1 - term
    starts = np.empty(len(ends), dtype=np.int64)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    tail = int(ends[-1]) + 1 if len(ends) else 0
    if tail < len(data):
        starts = np.append(starts, tail)
        stops = np.append(stops, len(data))
    return starts, stops


def _embedded_breaks(table: pa.Table) -> int:
    import pyarrow.compute as pc

    total = 0
    for col in table.columns:
        for pat in ("\n", "\r"):
            total += int(pc.sum(pc.count_substring(col, pat)).as_py() or 0)
        total -= int(pc.sum(pc.count_substring(col, "\r\n")).as_py() or 0)
    return total


class CsvReader:
    """Read a header and then record-aligned :class:`Chunk` objects from UTF-8 blocks.

    Parameters
    ----------
    blocks
        UTF-8 byte blocks (see :class:`sluice.engine.textstream.Utf8Blocks`).
    fmt
        Tokenising rules.
    source_name, encoding, contract_label
        For messages.
    chunk_size
        Target bytes per chunk.
    max_record_bytes
        Longest line (``limits.max_row_bytes``). When every line break ends a record, a longer line
        is set aside as a bad record (``row.length``) while it streams past, never held whole;
        with line breaks in values, a record that runs longer (usually a quote that never
        closes) rejects the file.
    first_line
        Physical line number of the first byte of the stream (1 for a whole file).

    """

    def __init__(
        self,
        blocks: Iterable[bytes],
        fmt: CsvFormat,
        *,
        source_name: str,
        encoding: str = "utf-8",
        contract_label: str = "",
        chunk_size: int = 16 << 20,
        max_record_bytes: int = 64 << 20,
        first_line: int = 1,
        use_threads: bool = True,
    ) -> None:
        self._blocks = iter(blocks)
        self.fmt = fmt
        self._src = source_name
        self._encoding = encoding
        self._label = contract_label
        self._chunk_size = chunk_size
        self._max_record = max_record_bytes
        self._use_threads = use_threads
        self._pending: Bytes = b""
        self._eof = False
        self._offset = 0  # stream offset of _pending[0]
        self.line = first_line  # physical line number of _pending[0]
        self.leading_blank_lines = 0
        csv.field_size_limit(max(max_record_bytes, csv.field_size_limit()))

    @property
    def exhausted(self) -> bool:
        """Whether every byte of the stream has been taken out of the reader."""
        return self._eof and not self._pending

    @property
    def consumed(self) -> int:
        """Bytes of the UTF-8 stream taken out of the reader so far (cut into pieces or skipped)."""
        return self._offset

    # ------------------------------------------------------------------ stream plumbing
    def _fill(self, want: int) -> None:
        """Read blocks until at least `want` bytes are pending (or the stream ends)."""
        grown: bytearray | None = None
        while len(self._pending) < want and not self._eof:
            block = next(self._blocks, b"")
            if not block:
                self._eof = True
                break
            if grown is None:  # a bytearray, so that _take_front can hand its front over without a copy
                grown = self._pending if isinstance(self._pending, bytearray) else bytearray(self._pending)
                self._pending = grown
            grown += block

    def _take_front(self, size: int) -> Bytes:
        """Take the first `size` pending bytes: the buffer itself, cut short, when it is a bytearray."""
        pending = self._pending
        if size >= len(pending):
            self._pending = b""
        elif isinstance(pending, bytearray):
            self._pending = pending[size:]  # the short rest is copied, the front stays where it is
            del pending[size:]
        else:
            self._pending, pending = pending[size:], pending[:size]
        self._offset += size
        return pending

    def _take(self, size: int) -> Bytes:
        data = self._pending[:size]
        self._drop(size)
        return data

    def _drop(self, size: int) -> None:
        self._pending = self._pending[size:] if size < len(self._pending) else b""
        self._offset += size

    def _where(self, line: int) -> str:
        return f"{self._src} line {line}"

    # ------------------------------------------------------------------ header
    def _next_line(self) -> Bytes | None:
        """Take one physical line (with its terminator), reading more as needed."""
        while True:
            cut = _first_break_end(self._pending, self._eof)
            if cut:
                self.line += 1
                return self._take(cut)
            if self._eof:
                if self._pending:
                    self.line += 1
                    return self._take(len(self._pending))
                return None
            if len(self._pending) > self._max_record:
                raise InputRejectedError(
                    f"{self._where(self.line)}: a line before the data is longer than {_size(self._max_record)} "
                    f"(limits.max_row_bytes); is this a CSV file?"
                )
            self._fill(len(self._pending) + self._chunk_size)

    def _decode_header(self, raw: Bytes, line: int, offset: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.end].hex(" ")
            raise InputRejectedError(
                f"{self._where(line)}: byte(s) {bad} at offset {offset + exc.start} are not valid "
                f"{self._encoding}; the header cannot be read. Set dialect.encoding in the contract "
                f"(cp1252, latin-1, shift_jis, utf-16 ...) or re-encode the file as UTF-8"
            ) from exc

    def read_header(self, *, skip_lines: int, header: bool) -> list[str] | None:
        """Skip `skip_lines` preamble lines and blank lines, then read the header record.

        Returns the header's cells (None when ``header`` is False). Afterwards :attr:`line` is
        the line of the first data record.

        Raises
        ------
        InputRejectedError
            Empty file, no header, or a header that is not valid text / quoting.

        """
        self._skip_preamble(skip_lines, header)
        return self._header_record() if header else None

    def _skip_preamble(self, skip_lines: int, header: bool) -> None:
        for _ in range(skip_lines):
            if self._next_line() is None:
                raise InputRejectedError(
                    f"{self._src}: the file ends within the {skip_lines} line(s) dialect.skip_rows skips: "
                    f"empty file or wrong skip_rows"
                )
        if header:  # blank lines before the header are not records
            while True:
                self._fill(1)
                if self._pending[:1] not in (b"\r", b"\n"):
                    break
                self._next_line()
                self.leading_blank_lines += 1
        else:
            self._fill(self._chunk_size)
            while not self._pending.strip(b"\r\n") and not self._eof:
                self._fill(len(self._pending) + self._chunk_size)
        if not self._pending.strip(b"\r\n"):
            what = "has only blank lines" if self._pending or self.leading_blank_lines else "is empty (0 bytes)"
            after = " after the lines dialect.skip_rows skips" if skip_lines else ""
            raise InputRejectedError(f"{self._src}: the file {what}{after}; nothing to load")

    def _header_record(self) -> list[str]:
        start_line, start_offset = self.line, self._offset
        lines: list[str] = []
        size = 0
        while True:
            raw = self._next_line()
            if raw is None:
                raise InputRejectedError(
                    f"{self._where(start_line)}: the header's quote never closes; check the quoting of the header"
                )
            lines.append(self._decode_header(raw, self.line - 1, start_offset + size))
            size += len(raw)
            try:
                rows = list(self.fmt.reader(lines))
            except csv.Error as exc:
                if "unexpected end of data" in str(exc) and size < self._max_record:
                    continue
                raise InputRejectedError(
                    f"{self._where(start_line)}: the header is not valid CSV ({csv_error_text(exc)}); "
                    f"check dialect.quote_char / escape_char"
                ) from exc
            if rows:
                if "\x00" in "".join(rows[0]):
                    raise InputRejectedError(f"{self._where(start_line)}: the header contains a NUL byte")
                return rows[0]

    # ------------------------------------------------------------------ chunks
    def chunks(self, names: Sequence[str]) -> Iterator[Chunk]:
        """Parse the rest of the stream into chunks of records with ``len(names)`` fields."""
        names = list(names)
        if self.splittable:  # every cut is a record boundary: the pieces, parsed in order
            for piece in self.pieces():
                yield self.parse_piece(piece, names)[0]
            return
        floor = 0  # a cut at or below this was tried and ended inside a record
        while True:
            self._fill(self._chunk_size)
            if not self._pending:
                return
            cut = self._next_cut(floor)
            final = self._eof and cut == len(self._pending)
            data = self._pending if cut == len(self._pending) else self._pending[:cut]
            chunk, used = self._parse(data, names, self.line, final)
            if used == 0:
                if len(self._pending) > self._max_record:
                    raise InputRejectedError(
                        f"{self._where(self.line)}: a quoted value runs for more than {_size(self._max_record)} "
                        f"(limits.max_row_bytes); a quote that never closes? (check dialect.quote_char)"
                    )
                floor = cut
                continue
            floor = 0
            known = chunk.line_breaks if used == len(data) else None
            self.line += known if known is not None else count_line_breaks(data[:used])
            del data
            self._drop(used)
            yield chunk

    @property
    def splittable(self) -> bool:
        """Whether every line break ends a record: chunks can then be cut ahead and parsed in parallel."""
        return not self.fmt.newlines_in_values

    def pieces(self) -> Generator[Piece]:
        """Cut the rest of the stream into pieces for :meth:`parse_piece`, ahead of parsing.

        For a :attr:`splittable` format every cut is a record boundary. With line breaks in
        values a cut is where the quotes before it pair up: a record boundary when the quoting is
        regular, so a piece rarely has to wait for the parse of the one before it; when it is not
        (:meth:`parse_piece` then uses only part of a piece), the caller hands the rest back with
        :meth:`unread` and goes on with :meth:`chunks`, which decides where each record ends.
        """
        while True:
            self._fill(self._chunk_size)
            if not self._pending:
                return
            cut = self._next_cut(0)
            if self.splittable and (cut < 0 or cut > self._max_record):
                long_at = -1 if cut < 0 else self._long_line_at(cut)
                if long_at == 0 or cut < 0:  # the line at the front is too long: let it stream past
                    yield self._skip_long_line()
                    continue
                if long_at > 0:
                    cut = long_at  # the lines before it first
            final = self._eof and cut == len(self._pending)
            data = self._take_front(cut)
            breaks = count_line_breaks(data)
            piece = Piece(data, self.line, final, breaks)
            self.line += breaks
            del data
            yield piece

    def parse_piece(self, piece: Piece, names: Sequence[str]) -> tuple[Chunk, int]:
        """Parse one piece from :meth:`pieces` (thread-safe: pieces may be parsed concurrently).

        Returns the records and the bytes of the piece they used: all of them, unless line breaks
        in values and irregular quoting put the cut inside a record (see :meth:`pieces`).
        """
        if piece.bad:
            return Chunk(_empty(names), list(piece.bad), 0, piece.first_line, lambda rows: [], piece.line_breaks), 0
        chunk, used = self._parse(piece.data, list(names), piece.first_line, piece.final, piece.line_breaks)
        if used != len(piece.data) and self.splittable:  # every line break ends a record here
            raise AssertionError(f"{self._where(piece.first_line)}: piece parsed only in part")
        return chunk, used

    def unread(self, data: Bytes, line: int) -> None:
        """Put bytes cut ahead by :meth:`pieces` back in front of the stream; `line` is where they start."""
        self._pending = data + self._pending
        self._offset -= len(data)
        self.line = line

    def _next_cut(self, floor: int) -> int:
        """Where the next chunk ends: a record-boundary candidate beyond `floor`, reading more as needed."""
        while True:
            if self._eof:
                return len(self._pending)  # everything left is parsed as the final chunk
            cut = self._cut_point(self._pending, self._eof)
            if cut <= floor:
                nxt = _first_break_end(self._pending[floor:], self._eof)
                cut = floor + nxt if nxt else (len(self._pending) if self._eof else 0)
            if cut > floor:
                return cut
            if len(self._pending) > self._max_record:
                if self.splittable:
                    return -1  # one line, longer than allowed, and its end not read yet
                raise InputRejectedError(
                    f"{self._where(self.line)}: no record ends within {_size(self._max_record)} (limits.max_row_bytes "
                    f"of contract {self._label}); a quote that never closes? (check dialect.quote_char), or raise "
                    f"the limit if records really are that long"
                )
            self._fill(len(self._pending) + self._chunk_size)

    def _long_line_at(self, cut: int) -> int:
        """Start of the first line of ``pending[:cut]`` longer than allowed; -1 when none is."""
        starts, stops = line_spans(self._pending[:cut])
        long = np.flatnonzero(stops - starts > self._max_record)
        return int(starts[long[0]]) if len(long) else -1

    def _skip_long_line(self) -> Piece:
        """Read past the over-long line at the front of the stream, keeping only its start; a piece naming it."""
        line = self.line
        shown = bytes(self._pending[:LONG_LINE_SHOWN])
        size = 0
        while True:
            end = _first_break_end(self._pending, self._eof)
            if end:
                term = 2 if self._pending[end - 2 : end] == b"\r\n" else 1
                size += end - term
                self._drop(end)
                self.line += 1
                breaks = 1
                break
            if self._eof:
                size += len(self._pending)
                self._drop(len(self._pending))
                breaks = 0
                break
            keep = 1 if self._pending[-1:] == b"\r" else 0  # maybe the first half of a CRLF
            size += len(self._pending) - keep
            self._drop(len(self._pending) - keep)
            self._fill(len(self._pending) + self._chunk_size)
        text = printable(shown.decode("utf-8", "surrogateescape")) + "..."
        bad = Rejected(
            line,
            text,
            "row.length",
            None,
            str(size),
            f"is {size:,} bytes long, more than limits.max_row_bytes ({_size(self._max_record)}) of contract "
            f"{self._label} allows; it was not loaded (the raw file keeps it; _text shows its first "
            f"{LONG_LINE_SHOWN} bytes)",
        )
        return Piece(b"", line, self._eof and not self._pending, breaks, (bad,))

    def _cut_point(self, buf: Bytes, eof: bool) -> int:
        """End of the last complete record candidate in `buf` (0: none yet)."""
        if eof:
            return len(buf)
        cut = _last_break_end(buf, len(buf))
        if not self.fmt.newlines_in_values or self.fmt.quote_char is None or cut == 0:
            return cut
        q = self.fmt.quote_char.encode()
        esc = (self.fmt.escape_char.encode() + q) if self.fmt.escape_char else None
        quotes = buf.count(q, 0, cut) - (buf.count(esc, 0, cut) if esc else 0)
        while cut and quotes % 2:
            term = cut - 2 if cut >= 2 and buf[cut - 2 : cut] == b"\r\n" else cut - 1
            prev = _last_break_end(buf, term)
            quotes -= buf.count(q, prev, cut) - (buf.count(esc, prev, cut) if esc else 0)
            cut = prev
        return cut

    def _parse(
        self, data: Bytes, names: list[str], first_line: int, final: bool, breaks: int | None = None
    ) -> tuple[Chunk, int]:
        fast = self._parse_fast(data, names, first_line, final, breaks)
        if fast is not None:
            return fast, len(data)
        if self.fmt.newlines_in_values or len(data) <= 2 * _SUB_CHUNK:
            return self._parse_slow(data, names, first_line, final)
        # one line is one record here: re-try the fast path on small pieces, slow path only where needed
        parts: list[Chunk] = []
        pos, line = 0, first_line
        while pos < len(data):
            end = len(data) if len(data) - pos <= _SUB_CHUNK else _last_break_end(data, pos + _SUB_CHUNK)
            if end <= pos:
                nxt = _first_break_end(data[pos:], True)
                end = pos + nxt if nxt else len(data)
            piece = data[pos:end]
            last = final and end == len(data)
            part = self._parse_fast(piece, names, line, last)
            if part is None:
                part, _ = self._parse_slow(piece, names, line, True)
            parts.append(part)
            line += count_line_breaks(piece)
            pos = end
        return _concat(parts, names, first_line), len(data)

    # ------------------------------------------------------------------ fast path
    def _arrow_parse(self, data: Bytes, names: list[str]) -> tuple[pa.Table, list[tuple[int, int]]] | None:
        """String columns of `data`, and the records pyarrow skipped: (record number from 1, field count).

        None when pyarrow refuses the chunk (invalid UTF-8, ...) or, with line breaks in
        values, skipped any record (its line is then unknown).
        """
        invalid: list[tuple[int, int]] = []
        _quiet_undecodable_rows()

        def on_invalid(row: pacsv.InvalidRow) -> str:
            invalid.append((row.number or 0, row.actual_columns))
            return "skip"

        fmt = self.fmt
        try:
            table = pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(
                    column_names=names,
                    use_threads=self._use_threads,
                    block_size=len(data) + 1 if not self._use_threads else 1 << 20,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=fmt.delimiter,
                    quote_char=fmt.quote_char or False,
                    double_quote=fmt.double_quote,
                    escape_char=fmt.escape_char or False,
                    newlines_in_values=True,
                    ignore_empty_lines=len(names) > 1,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=not data.isascii(),  # ASCII is valid UTF-8: skip the check
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if invalid and (fmt.newlines_in_values or any(number < 1 for number, _ in invalid)):
            return None
        return table, invalid

    def _quote_anomaly(self, data: Bytes) -> bool:
        """Whether the quoting of `data` (starting at a record boundary) needs the precise parser.

        The parity of the quotes before each quote says whether it opens a field (even) or closes
        one / starts a doubled quote (odd). An opening quote must follow a delimiter, a line break
        or (with ``double_quote``) the quote of a doubled pair; a closing quote must precede a
        delimiter, a line break or (with ``double_quote``) another quote. Anything else is text
        after a closing quote (pyarrow would silently glue it to the value) or a bare quote inside
        an unquoted field (literal, but it breaks the parity).
        """
        q = self.fmt.quote_char
        esc_b = self.fmt.escape_char.encode() if self.fmt.escape_char else b""
        has_escape = bool(esc_b) and data.find(esc_b) >= 0
        if q is None:
            return has_escape  # escapes without quoting: leave them to the precise parser
        if data.find(q.encode()) < 0 and not has_escape:
            return False
        arr = np.frombuffer(data, dtype=np.uint8)
        qb, d, n = ord(q), ord(self.fmt.delimiter), len(arr)
        pos = np.flatnonzero(equal_bytes(data, qb))
        if esc_b:
            if data.count(esc_b) != data.count(esc_b + q.encode()):
                return True  # escapes of anything but a quote: leave them to the precise parser
            pos = pos[(pos == 0) | (arr[np.maximum(pos - 1, 0)] != ord(esc_b))]
        if len(pos) % 2:
            return True  # a quote left open (or a bare quote)
        prev = arr[np.maximum(pos - 1, 0)]
        nxt = arr[np.minimum(pos + 1, n - 1)]
        opening = np.arange(len(pos)) % 2 == 0
        ok_open = (pos == 0) | (prev == d) | (prev == LF) | (prev == CR)
        ok_close = (pos == n - 1) | (nxt == d) | (nxt == LF) | (nxt == CR)
        if self.fmt.double_quote:  # "" inside a quoted value: a quote, its pair right after it
            ok_open |= prev == qb
            ok_close |= nxt == qb
        return bool(np.any(np.where(opening, ~ok_open, ~ok_close)))

    def _parse_fast(
        self, data: Bytes, names: list[str], first_line: int, final: bool, breaks: int | None = None
    ) -> Chunk | None:
        """Parse `data` with pyarrow; None when the slow path must decide."""
        ncols = len(names)
        if _only_line_breaks(data):  # only blank lines: empty values of a 1-column file, else nothing
            return None if ncols == 1 else Chunk(_empty(names), [], _lines_in(data), first_line, lambda rows: [])
        parsed = None if b"\x00" in data or self._quote_anomaly(data) else self._arrow_parse(data, names)
        if parsed is None:
            return None
        table, invalid = parsed
        if breaks is None:
            breaks = count_line_breaks(data)
        nlines = breaks + 1 if data[-1] not in (CR, LF) else breaks
        if not self.fmt.newlines_in_values:
            return _single_line_chunk(table, invalid, data, first_line, ncols=ncols, nlines=nlines, breaks=breaks)
        multi_blank = self._multiline_blanks(table, data, nlines, final)
        if multi_blank is None:
            return None
        return Chunk(table, [], multi_blank, first_line, self._slow_locator(data, names, first_line), breaks)

    def _multiline_blanks(self, table: pa.Table, data: Bytes, nlines: int, final: bool) -> int | None:
        """Blank lines of a chunk parsed with line breaks in values; None when the cut looks wrong."""
        rows = table.num_rows
        if (
            not final
            and rows
            and any(v is not None and v.endswith(("\r", "\n")) for v in (c[rows - 1].as_py() for c in table.columns))
        ):
            return None  # the cut fell inside a quoted value
        if table.num_columns == 1 or rows == nlines:
            return 0
        blank = nlines - rows - _embedded_breaks(table)
        return blank if blank >= 0 else None

    def _slow_locator(self, data: Bytes, names: list[str], first_line: int) -> Locator:
        def locate(rows: Sequence[int]) -> list[tuple[int, str]]:
            chunk, _ = self._parse_slow(data, names, first_line, True)
            if chunk.bad or chunk.table.num_rows == 0:
                raise InputRejectedError(
                    f"{self._where(first_line)}: pyarrow and Python csv disagree about the records of this part "
                    f"of the file; check the quoting"
                )
            return chunk.locate(rows)

        return locate

    # ------------------------------------------------------------------ slow path
    def _parse_slow(self, data: Bytes, names: list[str], first_line: int, final: bool) -> tuple[Chunk, int]:
        """Parse `data` with Python csv (strict), record by record.

        Returns the chunk and how many bytes of `data` it used: less than ``len(data)`` when
        the last record is incomplete and more data may follow.
        """
        return _SlowParse(self, data, names, first_line, final).run()

    def _multiline_error(self, line: int) -> InputRejectedError:
        return InputRejectedError(
            f"{self._where(line)}: a quoted value contains a line break, but contract {self._label} sets "
            f"dialect.newlines_in_values: false; set it to true if values may span lines (slower, no byte-range "
            f"fan-out), otherwise fix the quoting of this record"
        )


class _SlowParse:
    """One run of the precise path over a chunk (see :meth:`CsvReader._parse_slow`)."""

    def __init__(self, owner: CsvReader, data: Bytes, names: list[str], first_line: int, final: bool) -> None:
        self.owner = owner
        self.fmt = owner.fmt
        self.data = data
        self.names = names
        self.first_line = first_line
        self.final = final
        self.raw: list[Bytes] = list(data.splitlines(keepends=True))
        self.texts: list[str] = []
        self.bad_bytes: dict[int, Bytes] = {}
        for i, line in enumerate(self.raw):
            try:
                self.texts.append(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self.texts.append(line.decode("utf-8", "surrogateescape"))
                self.bad_bytes[i] = line[exc.start : exc.end]
        self.columns: list[list[str]] = [[] for _ in names]
        self.built: list[pa.Table] = []
        self.good_start: list[int] = []
        self.good_end: list[int] = []
        self.bad: list[Rejected] = []
        self.blank = 0

    def text_of(self, a: int, b: int) -> str:
        return printable(_strip_terminator("".join(self.texts[a:b])))

    def run(self) -> tuple[Chunk, int]:
        reader = self.fmt.reader(self.texts)
        used_lines = len(self.raw)
        while True:
            start = reader.line_num
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if self.on_error(exc, start, reader.line_num):
                    used_lines = start  # the record goes on in the next chunk
                    break
                continue
            self.on_record(rec, start, reader.line_num)
        self.built.append(_table(self.columns, self.names))
        table = pa.concat_tables(self.built) if len(self.built) > 1 else self.built[0]
        used = sum(len(x) for x in self.raw[:used_lines]) if used_lines < len(self.raw) else len(self.data)
        starts = np.asarray(self.good_start, dtype=np.int64)
        ends = np.asarray(self.good_end, dtype=np.int64)
        first = self.first_line

        def locate(rows: Sequence[int]) -> list[tuple[int, str]]:
            return [(first + int(starts[r]), self.text_of(int(starts[r]), int(ends[r]))) for r in rows]

        return Chunk(table, self.bad, self.blank, first, locate), used

    def on_error(self, exc: csv.Error, start: int, end: int) -> bool:
        """Handle a strict-mode error; True when the record is cut by the chunk's end."""
        where = self.owner._where
        if "unexpected end of data" in str(exc):
            if self.fmt.newlines_in_values and not self.final:
                return True
            if not self.fmt.newlines_in_values and self.texts[-1].endswith(("\r", "\n")):
                raise self.owner._multiline_error(self.first_line + start) from exc
            raise InputRejectedError(
                f"{where(self.first_line + start)}: a quote opened in this record never closes; "
                f"the file is cut short or its quoting is broken (check dialect.quote_char)"
            ) from exc
        if end - start > 1:
            raise InputRejectedError(
                f"{where(self.first_line + end - 1)}: malformed quoting ({csv_error_text(exc)}) in a record that "
                f"starts at line {self.first_line + start} and spans {end - start} lines, so no record boundary after "
                f"it can be trusted; the file may use another quoting dialect (dialect.quote_char, "
                f"escape_char, double_quote)"
            ) from exc
        self.bad.append(
            Rejected(
                self.first_line + start,
                self.text_of(start, end),
                "row.quote",
                None,
                None,
                f"has malformed quoting ({csv_error_text(exc)})",
            )
        )
        return False

    def on_record(self, rec: list[str], start: int, end: int) -> None:
        ncols = len(self.names)
        if end - start > 1 and not self.fmt.newlines_in_values:
            raise self.owner._multiline_error(self.first_line + start)
        if not rec:
            if ncols > 1:
                self.blank += 1
                return
            rec = [""]
        line = self.first_line + start
        enc = next((self.bad_bytes[i] for i in range(start, end) if i in self.bad_bytes), None)
        if enc is not None:
            shown = "".join(f"\\x{b:02x}" for b in enc)
            self.bad.append(
                Rejected(
                    line,
                    self.text_of(start, end),
                    "row.encoding",
                    None,
                    shown,
                    f"has bytes that are not valid {self.owner._encoding}",
                )
            )
        elif len(rec) != ncols:
            self.bad.append(
                Rejected(
                    line,
                    self.text_of(start, end),
                    "row.fields",
                    None,
                    str(len(rec)),
                    f"has {len(rec)} fields, expected {ncols}",
                )
            )
        elif any("\x00" in v for v in rec):
            j = next(i for i, v in enumerate(rec) if "\x00" in v)
            self.bad.append(
                Rejected(
                    line, self.text_of(start, end), "row.nul", self.names[j], printable(rec[j]), "contains a NUL byte"
                )
            )
        else:
            for j, v in enumerate(rec):
                self.columns[j].append(v)
            self.good_start.append(start)
            self.good_end.append(end)
            if len(self.columns[0]) >= 65536:
                self.built.append(_table(self.columns, self.names))
                self.columns = [[] for _ in self.names]


def _size(n: int) -> str:
    """A byte count for messages: ``16 MiB``, ``1.5 KiB``, ``900 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n} bytes"


class _UndecodableRowHook:
    """``sys.unraisablehook`` that keeps quiet about ragged rows pyarrow cannot decode for their handler.

    pyarrow decodes a ragged row's text as UTF-8 before calling ``invalid_row_handler``; with
    invalid bytes in it that fails inside Cython, is printed as "Exception ignored ... Traceback"
    and the parse is refused, so the piece takes the precise path, which quarantines the row
    (``row.encoding``). The message would only alarm; anything else goes to the previous hook.
    """

    def __init__(self, previous: Callable[[sys.UnraisableHookArgs], object]) -> None:
        self.previous = previous

    def __call__(self, unraisable: sys.UnraisableHookArgs) -> None:
        if issubclass(unraisable.exc_type, UnicodeDecodeError) and getattr(unraisable.object, "__name__", "") == (
            "on_invalid"
        ):
            return
        self.previous(unraisable)


_hook_lock = threading.Lock()


def _quiet_undecodable_rows() -> None:
    """Install :class:`_UndecodableRowHook` in front of the current hook (once)."""
    if not isinstance(sys.unraisablehook, _UndecodableRowHook):
        with _hook_lock:
            if not isinstance(sys.unraisablehook, _UndecodableRowHook):
                sys.unraisablehook = _UndecodableRowHook(sys.unraisablehook)


def _only_line_breaks(data: Bytes) -> bool:
    """Whether `data` is nothing but CR and LF (checked without copying it in the usual case)."""
    return data[:1] in (b"\r", b"\n", b"") and not data.strip(b"\r\n")


def _first_break_end(buf: Bytes, eof: bool) -> int:
    """End (exclusive) of the first line terminator in `buf`; 0 when there is none (yet)."""
    lf, cr = buf.find(b"\n"), buf.find(b"\r")
    if lf < 0 and cr < 0:
        return 0
    if cr < 0 or (0 <= lf < cr):
        return lf + 1
    if cr + 1 < len(buf):
        return cr + 2 if buf[cr + 1] == LF else cr + 1
    return cr + 1 if eof else 0


def _last_break_end(buf: Bytes, limit: int) -> int:
    """End (exclusive) of the last complete line terminator in ``buf[:limit]``; 0 when none.

    A CR that is the last byte of `buf` may be the first half of a CRLF, so it does not count.
    """
    while limit > 0:
        p = max(buf.rfind(b"\n", 0, limit), buf.rfind(b"\r", 0, limit))
        if p < 0:
            return 0
        if buf[p] == CR:
            if p + 1 >= len(buf):
                limit = p  # maybe the first half of a CRLF
                continue
            if buf[p + 1] == LF:
                return p + 2
        return p + 1
    return 0


def _blank_mask(data: Bytes) -> np.ndarray:
    starts, stops = line_spans(data)
    return np.asarray(starts == stops)


def _record_lines(data: Bytes, ncols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, stop and line index of every record of `data` when each record is one line."""
    starts, stops = line_spans(data)
    line_no = np.arange(len(starts))
    if ncols > 1:  # blank lines are not records
        keep = starts != stops
        starts, stops, line_no = starts[keep], stops[keep], line_no[keep]
    return starts, stops, line_no


def _line_text(data: Bytes, start: int, stop: int) -> str:
    return printable(data[start:stop].decode("utf-8", "surrogateescape"))


def _line_locator(
    data: Bytes,
    first_line: int,
    ncols: int,
    skipped: np.ndarray | None = None,
    lines: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Locator:
    """Locate table rows when each record is one line.

    `skipped`: record indexes not in the table; `lines`: :func:`_record_lines` of `data`, if known.
    """

    def locate(rows: Sequence[int]) -> list[tuple[int, str]]:
        starts, stops, line_no = lines if lines is not None else _record_lines(data, ncols)
        if skipped is not None and len(skipped):
            kept = np.ones(len(starts), dtype=bool)
            kept[skipped] = False
            starts, stops, line_no = starts[kept], stops[kept], line_no[kept]
        return [(first_line + int(line_no[r]), _line_text(data, int(starts[r]), int(stops[r]))) for r in rows]

    return locate


def _single_line_chunk(
    table: pa.Table,
    invalid: list[tuple[int, int]],
    data: Bytes,
    first_line: int,
    *,
    ncols: int,
    nlines: int,
    breaks: int,
) -> Chunk | None:
    """The chunk of a parse where every record must be one line; None when the lines say otherwise."""
    # fewer records than lines: blank lines, or a quoted line break (then the slow path names it)
    records = table.num_rows + len(invalid)
    blank = 0 if ncols == 1 or records == nlines else int(np.count_nonzero(_blank_mask(data)))
    if records + blank != nlines:
        return None
    if not invalid:
        return Chunk(table, [], blank, first_line, _line_locator(data, first_line, ncols), breaks)
    # each record is one line: the records pyarrow skipped are ragged rows, quarantined here
    starts, stops, line_no = _record_lines(data, ncols)
    if len(starts) != records:
        return None  # records and lines disagree: let the precise path decide
    skipped = np.asarray([number - 1 for number, _ in invalid], dtype=np.int64)
    bad = [
        Rejected(
            first_line + int(line_no[k]),
            _line_text(data, int(starts[k]), int(stops[k])),
            "row.fields",
            None,
            str(fields),
            f"has {fields} fields, expected {ncols}",
        )
        for k, (_, fields) in zip(skipped.tolist(), invalid, strict=True)
    ]
    locator = _line_locator(data, first_line, ncols, skipped, (starts, stops, line_no))
    return Chunk(table, bad, blank, first_line, locator, breaks)


def _empty(names: Sequence[str]) -> pa.Table:
    return pa.table({n: pa.array([], pa.string()) for n in names})


def _table(columns: list[list[str]], names: Sequence[str]) -> pa.Table:
    return pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, columns, strict=True)})


def _concat(parts: list[Chunk], names: Sequence[str], first_line: int) -> Chunk:
    tables = [p.table for p in parts]
    offsets = np.cumsum([0] + [t.num_rows for t in tables])

    def locate(rows: Sequence[int]) -> list[tuple[int, str]]:
        which = np.searchsorted(offsets, np.asarray(rows, dtype=np.int64), side="right") - 1
        by_part: dict[int, list[int]] = {}
        for k, part_no in enumerate(which.tolist()):
            by_part.setdefault(part_no, []).append(k)
        result: list[tuple[int, str]] = [(0, "")] * len(rows)
        for part_no, ks in by_part.items():
            found = parts[part_no].locate([int(rows[k]) - int(offsets[part_no]) for k in ks])
            for k, loc in zip(ks, found, strict=True):
                result[k] = loc
        return result

    table = pa.concat_tables(tables) if tables else _empty(names)
    bad = [b for p in parts for b in p.bad]
    return Chunk(table, bad, sum(p.blank_lines for p in parts), first_line, locate)
