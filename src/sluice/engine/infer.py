"""Contract inference: sniff a CSV sample and write a contract that ``convert`` accepts.

From the first ``sample_bytes`` of a file: the encoding (BOM, UTF-16 NUL pattern, UTF-8, else
Shift_JIS / cp1252 / latin-1), the delimiter (most consistent field count), RFC 4180 quoting
(or a refusal naming the dialect the file really uses), the header line (title rows above it are
skipped; no header when the first row looks like data), unique deterministic column names, and
column types parsed with the very code ``convert`` uses, so the sample always converts cleanly.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from sluice.contracts import Dialect, parse_contract
from sluice.engine.csvsource import csv_error_text
from sluice.engine.dateformats import DATE_CANDIDATES, TIMESTAMP_CANDIDATES
from sluice.engine.rules import apply_nulls, parse_values
from sluice.engine.textstream import read_exactly, sniff_bom
from sluice.errors import InputRejectedError

DELIMITERS = (",", "\t", ";", "|")
EXTRA_NULLS = ("none", "None", "NONE", "n/a", "#N/A", "-", ".")
_WORD_BOOLS = {"true", "false", "yes", "no"}
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_UNDECODED = re.compile("[\udc80-\udcff]")
_UNSET: Any = object()


@dataclass(frozen=True)
class InferOptions:
    """Overrides for what is otherwise sniffed (``quote_char=None`` means no quoting)."""

    dataset: str | None = None
    sample_bytes: int = 8 << 20
    encoding: str | None = None
    delimiter: str | None = None
    quote_char: Any = _UNSET
    escape_char: str | None = None
    header_line: int | None = None  # 1-based line of the header; 0: no header


@dataclass
class Inference:
    """An inferred contract (plain data, ready for YAML) and notes for the reader."""

    contract: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_yaml(self, source: str) -> str:
        """The contract as YAML, with the notes as comments on top."""
        head = [
            f"# Inferred by `sluice contract infer` from {source}.",
            "# Review the types, add rules (required, unique, min/max, in, pattern) and a partition.",
        ]
        head += [f"# note: {n}" for n in self.notes]
        body = {k: v for k, v in self.contract.items() if k != "columns"}
        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
        cols = "".join(
            "  - " + yaml.safe_dump(c, sort_keys=False, allow_unicode=True, default_flow_style=True, width=1000)
            for c in self.contract["columns"]
        )
        return "\n".join(head) + "\n" + text + "columns:\n" + cols


@dataclass
class _Record:
    start: int  # 0-based physical line
    end: int
    fields: list[str]


# ---------------------------------------------------------------------------- encoding
def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "FULLWIDTH", "HALFWIDTH", "IDEOGRAPHIC"))


def _paired_high_bytes(data: bytes) -> float:
    """Share of bytes >= 0x80 that sit next to another one (double-byte text pairs them; Latin text rarely)."""
    runs = [len(m.group()) for m in re.finditer(rb"[\x80-\xff]+", data)]
    total = sum(runs)
    return sum(n for n in runs if n > 1) / total if total else 0.0


def _legacy_encoding(data: bytes) -> str:
    """Shift_JIS, cp1252 or latin-1 for bytes that are not UTF-8."""
    try:
        cp = data.decode("cp1252")
    except UnicodeDecodeError:
        cp = None
    try:
        sj = data.decode("shift_jis")
    except UnicodeDecodeError:
        sj = None
    if sj is not None:
        high = [c for c in sj if ord(c) > 127]
        if high and sum(map(_is_cjk, high)) >= 0.9 * len(high) and (cp is None or _paired_high_bytes(data) >= 0.5):
            return "shift_jis"
    return "cp1252" if cp is not None else "latin-1"


def _looks_legacy(lines: Sequence[bytes]) -> bool:
    """Whether undecodable bytes sit inside words (accented letters) rather than as isolated garbage."""
    for line in lines:
        for m in re.finditer(rb"[\x80-\xff]+", line):
            try:
                m.group().decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass
            before = line[m.start() - 1 : m.start()]
            after = line[m.end() : m.end() + 1]
            if before.isalpha() or after.isalpha():
                return True
    return False


def sniff_encoding(data: bytes, truncated: bool, notes: list[str]) -> str:
    """The encoding of a sample."""
    bom, _ = sniff_bom(data)
    if bom is not None:
        if bom.startswith("utf-32"):
            raise InputRejectedError(f"the file is {bom.upper()}; sluice reads UTF-8, UTF-16 and 8-bit encodings")
        return "utf-8-sig" if bom == "utf-8" else "utf-16"
    head = data[:4096]
    if len(head) >= 4:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > len(head) // 4 and even == 0:
            return "utf-16-le"
        if even > len(head) // 4 and odd == 0:
            return "utf-16-be"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(data, final=not truncated)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    lines = data.splitlines()
    first = next((ln for ln in lines if ln.strip()), b"")
    bad: list[tuple[int, bytes]] = []
    for i, ln in enumerate(lines):
        try:
            ln.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((i, ln))
    header_ok = all(ln is not first for _, ln in bad)
    if header_ok and bad and not _looks_legacy([ln for _, ln in bad]):
        notes.append(
            f"{len(bad)} line(s) of the sample are not valid UTF-8 (first: line {bad[0][0] + 1}); their bytes look "
            f"like corruption, not a legacy encoding, so convert will quarantine those rows (rule row.encoding)"
        )
        return "utf-8"
    return _legacy_encoding(data if not truncated else data[: data.rfind(b"\n") + 1] or data)


# ---------------------------------------------------------------------------- parsing the sample
def _split_lines(text: str) -> list[str]:
    return _LINE.findall(text)


def _reader(lines: Sequence[str], delimiter: str, quote: str | None, escape: str | None, strict: bool) -> Any:
    if quote is None:
        return csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE, escapechar=escape, strict=strict)
    return csv.reader(
        lines, delimiter=delimiter, quotechar=quote, escapechar=escape, doublequote=escape is None, strict=strict
    )


def parse_sample(
    lines: Sequence[str], delimiter: str, quote: str | None, escape: str | None
) -> tuple[list[_Record], list[tuple[int, int, str]], int | None]:
    """Records, quote errors ``(start, end, message)`` and the line of a quote still open at the end."""
    reader = _reader(lines, delimiter, quote, escape, strict=True)
    records: list[_Record] = []
    errors: list[tuple[int, int, str]] = []
    while True:
        start = reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return records, errors, None
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return records, errors, start
            errors.append((start, reader.line_num, csv_error_text(exc)))
            continue
        records.append(_Record(start, reader.line_num, fields))


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The candidate delimiter giving the most consistent field count above one (ties: more fields)."""
    best, best_key = ",", (0.0, 0)
    head = lines[:500]
    for d in DELIMITERS:
        counts = [len(r) for r in _reader(head, d, '"', None, strict=False) if r]
        if not counts:
            continue
        width, hits = Counter(counts).most_common(1)[0]
        if width < 2:
            continue
        key = (round(hits / len(counts), 3), width)
        if key > best_key:
            best, best_key = d, key
    return best


# ---------------------------------------------------------------------------- types
@dataclass(frozen=True)
class _Typed:
    """What a column's sample says: its type, the layout of its dates, or why its dates stay text."""

    type: str
    format: str | None = None
    ambiguous: tuple[str, ...] = ()  # layouts that all read every value, differently


MAX_DECIMAL_DIGITS = 38  # Parquet's and Athena's widest decimal


def _column_type(values: Sequence[str], dialect: Dialect, extra_nulls: set[str]) -> _Typed:
    raw = pa.array([_UNDECODED.sub("\ufffd", v) for v in values], pa.string())
    value = apply_nulls(raw, (*dialect.null_values, *sorted(extra_nulls)))
    present = pc.drop_null(value)
    if len(present) == 0:
        return _Typed("string")
    texts = set(present.to_pylist())
    simple = _word_or_integer_type(present, texts, dialect)
    if simple is not None:
        return simple
    for candidate in ("float64", "date", "timestamp"):
        parsed = parse_values(present, candidate, dialect)
        if parsed.null_count == 0:
            return _money(texts, dialect) or _Typed(candidate)
    if any(ch.isdigit() for ch in next(iter(texts))):
        for kind, layouts in (("date", DATE_CANDIDATES), ("timestamp", TIMESTAMP_CANDIDATES)):
            found = _date_layout(present, kind, layouts, dialect)
            if found is not None:
                return found
    return _Typed("string")


MONEY_SCALES = (2, 3, 4)  # digits after the point of amounts: cents, mills, basis points


def _money(texts: set[str], dialect: Dialect) -> _Typed | None:
    """``decimal(p,s)`` for numbers written with a fixed number of decimals (``12.50``, ``3.00``), else None.

    Every value with a decimal point has the same `s` digits after it (2 to 4; integers may mix in),
    as amounts and prices are written: exact decimals, where float64 would turn 0.10 + 0.20 into
    0.30000000000000004. p leaves room for 18 digits (64 bits), or 38 for longer values.
    """
    point = re.escape(dialect.decimal_point)
    scales, digits = set(), 0
    for t in texts:
        m = re.fullmatch(rf"[+-]?([0-9]+)(?:{point}([0-9]+))?", t)
        if m is None:
            return None
        whole, fraction = m.group(1).lstrip("0"), m.group(2)
        if fraction is not None:
            scales.add(len(fraction))
        digits = max(digits, len(whole))
    if len(scales) != 1 or (scale := scales.pop()) not in MONEY_SCALES:
        return None
    precision = 18 if digits + scale <= 18 else MAX_DECIMAL_DIGITS
    return _Typed(f"decimal({precision},{scale})") if digits + scale <= MAX_DECIMAL_DIGITS else None


def _word_or_integer_type(present: pa.Array, texts: set[str], dialect: Dialect) -> _Typed | None:
    """The type of true/false words (bool), codes with leading zeros (text) and integers, else None.

    Integers are int64, beyond it decimal(38,0), beyond that text: every digit is kept (float64
    would round 12345678901234567890).
    """
    if all(t.lower() in _WORD_BOOLS for t in texts) and {t.lower() for t in texts} <= _WORD_BOOLS:
        return _Typed("bool")
    if any(re.fullmatch(r"[+-]?0[0-9]+", t) for t in texts):
        return _Typed("string")  # codes with leading zeros stay text
    if not all(re.fullmatch(r"-?[0-9]+", t) for t in texts):
        return None
    if parse_values(present, "int64", dialect).null_count == 0:
        return _Typed("int64")
    wide = max(len(t.lstrip("-")) for t in texts) <= MAX_DECIMAL_DIGITS
    return _Typed(f"decimal({MAX_DECIMAL_DIGITS},0)" if wide else "string")


def _date_layout(present: pa.Array, kind: str, layouts: Sequence[str], dialect: Dialect) -> _Typed | None:
    """The one layout of `layouts` that reads every value (several that agree: the first)."""
    fits: list[tuple[str, pa.Array]] = []
    head = present.slice(0, 100)
    for layout in layouts:
        if parse_values(head, kind, dialect, layout).null_count:
            continue  # most layouts fail on the first values: no need to read the whole sample
        parsed = parse_values(present, kind, dialect, layout)
        if parsed.null_count == 0:
            fits.append((layout, parsed))
    if not fits:
        return None
    differ = [layout for layout, parsed in fits[1:] if not parsed.equals(fits[0][1])]
    if differ:  # e.g. 03/11/2023: the 3rd of November or March the 11th
        return _Typed("string", ambiguous=(fits[0][0], *differ))
    return _Typed(kind, fits[0][0])


def _infer_types(rows: list[list[str]], width: int, dialect: Dialect) -> tuple[list[_Typed], list[str]]:
    """Column types, and the extra null tokens that made some column typed."""
    types, used_extra = [], set()
    for j in range(width):
        values = [r[j] for r in rows]
        plain = _column_type(values, dialect, set())
        if plain.type == "string":
            tokens = {v for v in values if v in EXTRA_NULLS}
            if tokens:
                typed = _column_type(values, dialect, tokens)
                if typed.type != "string":
                    used_extra |= tokens
                    plain = typed
        types.append(plain)
    return types, sorted(used_extra)


def _dialect_and_types(rows: list[list[str]], width: int, dialect: Dialect) -> tuple[Dialect, list[_Typed], list[str]]:
    """:func:`_infer_types`, and the dialect with ``trim_spaces`` and a decimal comma where they type a column."""
    types, extra_nulls = _infer_types(rows, width, dialect)
    if any(v != v.strip(" \t") for r in rows for v in r):
        trimmed = [[v.strip(" \t") for v in r] for r in rows]
        retyped, trimmed_nulls = _infer_types(trimmed, width, dialect)
        if any(a.type == "string" and b.type != "string" for a, b in zip(types, retyped, strict=True)):
            dialect = dialect.model_copy(update={"trim_spaces": True})  # "  42": padded numbers or dates
            rows, types, extra_nulls = trimmed, retyped, trimmed_nulls
    return _decimal_point(rows, width, dialect, types, extra_nulls)


def _decimal_point(
    rows: list[list[str]], width: int, dialect: Dialect, types: list[_Typed], extra_nulls: list[str]
) -> tuple[Dialect, list[_Typed], list[str]]:
    """The dialect with a decimal comma when that makes a column a number, and the types then.

    Only when no column already reads as numbers with a decimal point, and the delimiter is not
    a comma (``12,50`` would then be two fields).
    """
    if dialect.delimiter == "," or any(_fractional(t.type) for t in types):
        return dialect, types, extra_nulls
    comma = dialect.model_copy(update={"decimal_point": ","})
    retyped, comma_nulls = _infer_types(rows, width, comma)
    if any(a.type == "string" and _fractional(b.type) for a, b in zip(types, retyped, strict=True)):
        return comma, retyped, comma_nulls
    return dialect, types, extra_nulls


def _columns(
    names: Sequence[tuple[str, str | None]], types: Sequence[_Typed], notes: list[str]
) -> list[dict[str, Any]]:
    """The contract's columns (plain data); a note for each column whose dates are ambiguous."""
    columns = []
    for (name, src), t in zip(names, types, strict=True):
        col: dict[str, Any] = {"name": name, "type": t.type}
        if t.format is not None:
            col["format"] = t.format
        if src is not None:
            col["source"] = src
        if t.ambiguous:
            notes.append(
                f"column {name}: its values read as dates in more than one layout ({', '.join(t.ambiguous)}); "
                f"left as text: set type and format by hand"
            )
        columns.append(col)
    return columns


def _numeric(column_type: str) -> bool:
    return column_type in ("int64", "float64") or column_type.startswith("decimal")


def _fractional(column_type: str) -> bool:
    """Numbers with a decimal point: float64, or a decimal with a scale."""
    return column_type == "float64" or (column_type.startswith("decimal") and not column_type.endswith(",0)"))


def _looks_like_header(first: list[str], data: list[list[str]], dialect: Dialect) -> bool:
    if not data:
        return True
    votes = 0
    for j, cell in enumerate(first):
        column = [r[j] for r in data]
        t = _column_type(column, dialect, set()).type
        if t == "string":
            continue
        as_value = _column_type([cell], dialect, set()).type
        cell_null = not cell.strip() or cell in dialect.null_values
        numbers = _numeric(t) and _numeric(as_value)  # 12 in a column of 12.50 is a value, not a name
        votes += 1 if (as_value != t and not numbers and not cell_null) else -1
    if votes:
        return votes > 0
    return not any(first == r for r in data[:1000])


# ---------------------------------------------------------------------------- names
def column_names(cells: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(name, source)`` per header cell: clean unique names, and the header text where it differs."""
    out: list[tuple[str, str | None]] = []
    taken: set[str] = set()
    for i, cell in enumerate(cells):
        text = cell.strip()
        base = re.sub(r"[^\w]+", "_", text.lower()).strip("_") or f"column_{i + 1}"
        if base[0].isdigit():
            base = f"c_{base}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out.append((name, None if name == text else text))
    return out


def dataset_name(stem: str) -> str:
    """A dataset name (``^[a-z][a-z0-9_]{0,62}$``) from a file name."""
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"d_{name}".rstrip("_")
    return name[:63]


# ---------------------------------------------------------------------------- the whole inference
def _refuse(source: str, message: str) -> InputRejectedError:
    return InputRejectedError(f"{source}: {message}")


class _Sniffer:
    def __init__(self, stream: BinaryIO, source: str, options: InferOptions) -> None:
        self.source = source
        self.options = options
        self.notes: list[str] = []
        self.cut_line: int | None = None  # 1-based line the sample ends inside, when it does
        data = read_exactly(stream, options.sample_bytes + 1)
        self.truncated = len(data) > options.sample_bytes
        self.data = data[: options.sample_bytes]
        csv.field_size_limit(max(csv.field_size_limit(), options.sample_bytes + 1))  # any field of the sample

    def text_lines(self) -> tuple[str, list[str]]:
        if not self.data.strip(b"\r\n\t "):
            raise _refuse(self.source, "the file is empty (or only blank lines); nothing to infer")
        try:
            enc = self.options.encoding or sniff_encoding(self.data, self.truncated, self.notes)
        except InputRejectedError as exc:
            raise _refuse(self.source, str(exc)) from exc
        enc = Dialect(encoding=enc).encoding
        codec = {"utf-8-sig": "utf-8-sig", "utf-16": "utf-16"}.get(enc, enc)
        decoder = codecs.getincrementaldecoder(codec)("surrogateescape")
        try:
            text = decoder.decode(self.data, final=not self.truncated)
        except UnicodeDecodeError as exc:
            raise _refuse(self.source, f"the sample cannot be decoded as {enc}: {exc}") from exc
        lines = _split_lines(text)
        if self.truncated and lines and not lines[-1].endswith(("\r", "\n")):
            lines.pop()
            self.cut_line = len(lines) + 1
        return enc, lines

    def quoting(self, lines: list[str], delimiter: str) -> tuple[str | None, str | None, list[_Record]]:
        opts = self.options
        quote = '"' if opts.quote_char is _UNSET else (opts.quote_char or None)
        escape = opts.escape_char or None
        records, errors, open_at = parse_sample(lines, delimiter, quote, escape)
        if open_at is not None and not self.truncated:
            raise _refuse(
                self.source,
                f"line {open_at + 1}: a quote opened here never closes; the file cannot be "
                f"split into records (check the quoting)",
            )
        if errors and opts.quote_char is _UNSET and opts.escape_char is None:
            self._check_other_dialects(lines, delimiter, errors)
        if errors:
            self.notes.append(
                f"{len(errors)} record(s) with malformed quoting in the sample (first at line "
                f"{errors[0][0] + 1}: {errors[0][2]}); convert will quarantine them (rule row.quote)"
            )
        return quote, escape, records

    def _check_other_dialects(self, lines: list[str], delimiter: str, errors: list[tuple[int, int, str]]) -> None:
        first = f"{len(errors)} quote error(s), the first at line {errors[0][0] + 1} ({errors[0][2]})"
        sample = "".join(lines)
        if '\\"' in sample:
            recs, errs, open_at = parse_sample(lines, delimiter, '"', "\\")
            if not errs and open_at is None and len({len(r.fields) for r in recs if r.fields}) == 1:
                raise _refuse(
                    self.source,
                    f"not RFC 4180 CSV: {first}; it reads cleanly with backslash-escaped "
                    f"quotes. If that is its dialect, rerun with --escape-char '\\' "
                    f"(contract: escape_char: '\\', double_quote: false)",
                )
        recs, errs, _ = parse_sample(lines, delimiter, None, None)
        widths = {len(r.fields) for r in recs if r.fields}
        cells = [f for r in recs for f in r.fields if f]
        wrapped = sum(1 for f in cells if len(f) > 1 and f[0] == f[-1] == '"')
        if not errs and len(widths) == 1 and wrapped < 0.5 * max(1, len(cells)):
            raise _refuse(
                self.source,
                f"not RFC 4180 CSV: {first}; it reads cleanly with no quote character at "
                f"all (quotes are literal text). If that is its dialect, rerun with "
                f"--quote-char none (contract: quote_char: null)",
            )

    def data_records(self, records: list[_Record]) -> list[_Record]:
        """The records with fields; refused when there are none because the sample ends inside the first."""
        data = [r for r in records if r.fields]
        if not data and self.cut_line is not None:
            raise _refuse(
                self.source,
                f"line {self.cut_line}: no record ends within the first {self.options.sample_bytes >> 20} MiB, so "
                f"there is no data to infer types from (a value of that size, or a quote that never closes?); "
                f"rerun with a larger --sample-mib, or check the quoting",
            )
        return data

    def check_one_table(self, records: list[_Record]) -> None:
        runs: list[tuple[int, int]] = []  # (width, length)
        for r in records:
            if not r.fields:
                continue
            w = len(r.fields)
            if runs and runs[-1][0] == w:
                runs[-1] = (w, runs[-1][1] + 1)
            else:
                runs.append((w, 1))
        long_widths = sorted({w for w, n in runs if n >= 3})
        if len(long_widths) >= 2:
            raise _refuse(
                self.source,
                f"not one table: runs of records with {', '.join(map(str, long_widths))} "
                f"fields (a multi-record report?); sluice loads one rectangular table per file",
            )

    def header(self, records: list[_Record], dialect: Dialect) -> tuple[int | None, int]:
        """Index (in `records`) of the header record (None: no header) and of the first data record."""
        nonblank = [i for i, r in enumerate(records) if r.fields]
        if not nonblank:
            raise _refuse(self.source, "no records in the sample")
        width = Counter(len(records[i].fields) for i in nonblank).most_common(1)[0][0]
        line = self.options.header_line
        if line is not None:
            if line == 0:
                return None, nonblank[0]
            pos = next((i for i in nonblank if records[i].start + 1 >= line), None)
            if pos is None:
                raise _refuse(self.source, f"no record starts at or after line {line}")
            return pos, pos + 1
        k = 0
        while k < min(10, len(nonblank) - 1):
            r = records[nonblank[k]].fields
            sparse = width >= 3 and sum(1 for f in r if f.strip()) <= 1
            if not (len(r) < width or sparse):
                break
            k += 1
        if k:
            self.notes.append(f"skipped {records[nonblank[k]].start} line(s) above the header (title rows)")
        first = nonblank[k]
        data = [records[i].fields for i in nonblank[k + 1 : k + 2001] if len(records[i].fields) == width]
        cells = records[first].fields
        if len(cells) == width and not _looks_like_header(cells, data, dialect):
            return None, first
        return first, first + 1


def infer_contract(
    stream: BinaryIO, *, source_name: str, file_stem: str, options: InferOptions | None = None
) -> Inference:
    """Infer a contract from the start of `stream`.

    Raises
    ------
    InputRejectedError
        The file is empty, not one table, or not RFC 4180 CSV while another dialect fits (the
        message says which and how to ask for it).

    """
    opts = options or InferOptions()
    sn = _Sniffer(stream, source_name, opts)
    enc, lines = sn.text_lines()
    delimiter = opts.delimiter or sniff_delimiter(lines)
    delimiter = Dialect(delimiter=delimiter).delimiter
    quote, escape, records = sn.quoting(lines, delimiter)
    sn.check_one_table(records)
    base = Dialect(encoding=enc, delimiter=delimiter)
    header_idx, data_from = sn.header(records, base)
    if header_idx is None:
        width = Counter(len(r.fields) for r in records[data_from:] if r.fields).most_common(1)[0][0]
        cells = None
        skip = records[data_from].start
    else:
        cells = records[header_idx].fields
        width = len(cells)
        skip = records[header_idx].start
    data = sn.data_records(records[data_from:])
    # records with undecodable bytes are quarantined by convert: they say nothing about types
    rows = [r.fields for r in data if len(r.fields) == width and not any(map(_UNDECODED.search, r.fields))]
    if width == 1:  # blank lines are empty values in a one-column file
        rows += [[""] for r in records[data_from:] if not r.fields]
    multiline = any(r.end - r.start > 1 for r in data)
    base, types, extra_nulls = _dialect_and_types(rows, width, base)
    names = column_names(cells) if cells is not None else [(f"column_{i + 1}", None) for i in range(width)]
    ragged = sum(1 for r in data if len(r.fields) != width)
    if ragged:
        sn.notes.append(f"{ragged} record(s) of the sample do not have {width} fields; convert will quarantine them")
    dataset = dataset_name(opts.dataset or file_stem)
    dialect: dict[str, Any] = {"encoding": enc, "delimiter": delimiter}
    if quote != '"':
        dialect["quote_char"] = quote
    if escape is not None:
        dialect["escape_char"] = escape
        dialect["double_quote"] = False
    dialect["header"] = cells is not None
    if skip:
        dialect["skip_rows"] = skip
    dialect["newlines_in_values"] = multiline
    if base.trim_spaces:
        dialect["trim_spaces"] = True
    if base.decimal_point != ".":
        dialect["decimal_point"] = base.decimal_point
    if extra_nulls:
        dialect["null_values"] = [*base.null_values, *extra_nulls]
    columns = _columns(names, types, sn.notes)
    contract = {
        "dataset": dataset,
        "version": 1,
        "description": f"Inferred from {file_stem} ({len(rows)} sample rows).",
        "match": {"prefix": f"{dataset}/"},
        "dialect": dialect,
        "columns": columns,
        "max_reject_ratio": 1.0,
    }
    parse_contract(contract, f"contract inferred from {source_name}")
    if sn.truncated:
        sn.notes.append(f"inferred from the first {opts.sample_bytes >> 20} MiB only")
    return Inference(contract, sn.notes)
