r"""The quarantine of a run: ``rejected.csv`` (one row per rejected record) and ``report.json``.

``rejected.csv`` is UTF-8 CSV with the columns ``_line, _rule, _column, _value, _message, _text``:
the physical line the record starts on, the first rule it broke (``<column>.<rule>`` or
``row.fields`` / ``row.quote`` / ``row.encoding`` / ``row.nul`` / ``row.length`` /
``row.transform``), the column and offending value when the rule is about one value, a readable
message, and the record's original text (decoded; bytes that could not be decoded and NUL
characters are written as ``\\xNN``).

People open it in spreadsheets, so it is safe to: a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return (what a spreadsheet would run as a formula, per OWASP's
advice on CSV injection) or with ``'`` gets a ``'`` in front (:func:`neutralise`), plain numbers
such as ``-1.5`` excepted. To get a cell back as written, drop the first character of any cell
that starts with ``'``; ``report.json`` keeps its example values unchanged and the raw object
every row.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from sluice.contracts import Contract
from sluice.errors import RejectThresholdError

HEADER = ("_line", "_rule", "_column", "_value", "_message", "_text")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
SHOWN_VALUE = 200  # characters of a value quoted in a message (the _value column has all of it)
EXAMPLE_VALUE = 1 << 10  # characters of a value kept in report.json's examples
_SLICE = 512  # rows written between two checks of the file's size


def neutralise(cell: str) -> str:
    """`cell`, with a ``'`` in front when a spreadsheet could run it as a formula, or it starts with ``'``.

    Plain numbers (``-1.5``, ``+4``, ``-1,00``, ``-2e3``) stay as they are: a sign, digits,
    separators and an exponent cannot call anything.
    """
    if cell[:1] not in _FORMULA_CHARS or _PLAIN_NUMBER.match(cell):
        return cell
    return "'" + cell


def restore(cell: str) -> str:
    """A cell of ``rejected.csv`` as it was written in the file (undoes :func:`neutralise`)."""
    return cell[1:] if cell.startswith("'") else cell


_FORMULA_CHARS = frozenset(FORMULA_START)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9][0-9.,]*|[.,][0-9][0-9.,]*)(?:[eE][+-]?[0-9]+)?\Z")
_quoted: Callable[[str], str] = encode_basestring  # json.dumps(text, ensure_ascii=False), without its overhead


class QuarantineFullError(Exception):
    """``rejected.csv`` passed ``limits.max_quarantine_bytes`` (internal: the run stops and fails)."""


@dataclass(frozen=True)
class Rejected:
    """One rejected record: set aside while parsing (field count, quoting, encoding, NUL) or by a rule."""

    line: int
    text: str
    rule: str
    column: str | None
    value: str | None
    reason: str


class QuarantineWriter:
    """Stream rejected records to ``rejected.csv`` and summarise them in ``report.json``.

    Parameters
    ----------
    directory
        Where both files are written (created on demand).
    source_name, contract_label
        For messages.
    examples_per_rule
        How many examples of each rule the report keeps.

    """

    def __init__(
        self,
        directory: Path,
        *,
        source_name: str,
        contract_label: str,
        examples_per_rule: int = 5,
        max_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self.rejected_path = directory / "rejected.csv"
        self.report_path = directory / "report.json"
        self._source = source_name
        self._label = contract_label
        self._per_rule = examples_per_rule
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._max_bytes = max_bytes
        self.bytes = 0  # of rejected.csv so far
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}

    @property
    def total(self) -> int:
        """Records rejected so far."""
        return sum(self.counts.values())

    def message(self, r: Rejected) -> str:
        """The one-line explanation of a rejected record."""
        where = f"{self._source} line {r.line}"
        if r.column is not None:
            where += f", column {_quoted(r.column)}"
            value = r.value if r.value is None or len(r.value) <= SHOWN_VALUE else r.value[:SHOWN_VALUE] + "..."
            what = f"{_quoted(value) if value is not None else 'null'} {r.reason}"
        else:
            what = f"the record {r.reason}"
        return f"{where}: {what} (rule {r.rule}, contract {self._label})"

    def add(self, records: list[Rejected]) -> None:
        """Append `records` (already in line order).

        Raises
        ------
        QuarantineFullError
            ``rejected.csv`` is now larger than `max_bytes` (every record was still written).

        """
        if not records:
            return
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.rejected_path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(HEADER)
        safe, message, counts = neutralise, self.message, self.counts
        for start in range(0, len(records), _SLICE):  # the size is checked every _SLICE rows
            part = records[start : start + _SLICE]
            self._writer.writerows(
                [
                    r.line,
                    safe(r.rule),
                    safe(r.column or ""),
                    "" if r.value is None else safe(r.value),
                    safe(message(r)),
                    safe(r.text),
                ]
                for r in part
            )
            for r in part:
                counts[r.rule] = counts.get(r.rule, 0) + 1
                examples = self.examples.setdefault(r.rule, [])
                if len(examples) < self._per_rule:
                    shown = r.value if r.value is None or len(r.value) <= EXAMPLE_VALUE else r.value[:EXAMPLE_VALUE]
                    examples.append({"line": r.line, "column": r.column, "value": shown, "message": message(r)})
            if self._max_bytes is not None:
                self.bytes = self._file.tell()
                if self.bytes > self._max_bytes:
                    raise QuarantineFullError(self.bytes)

    def close(self, summary: dict[str, Any]) -> tuple[Path | None, Path]:
        """Finish ``rejected.csv`` (None when nothing was rejected) and write ``report.json``."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.directory.mkdir(parents=True, exist_ok=True)
        report = {
            **summary,
            "source": self._source,
            "contract": self._label,
            "rows_rejected": self.total,
            "rejects_by_rule": dict(sorted(self.counts.items())),
            "examples": self.examples,
            "rejected_file": self.rejected_path.name if self.total else None,
            "rejected_columns": list(HEADER),
        }
        self.report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return (self.rejected_path if self.total else None), self.report_path

    def discard(self) -> None:
        """Remove anything written (the whole file was rejected)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for p in (self.rejected_path, self.report_path):
            p.unlink(missing_ok=True)


def over_threshold(rows_in: int, rejected: int, contract: Contract) -> bool:
    """Whether more rows were rejected than the contract's ``max_reject_ratio`` allows."""
    return bool(rows_in) and rejected / rows_in > contract.max_reject_ratio


def threshold_error(
    where: str, contract: Contract, rows_in: int, counts: dict[str, int], see: str
) -> RejectThresholdError:
    """The error of a run refused for too many rejects; `see` says where the quarantine is."""
    rejected = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return RejectThresholdError(
        f"{where}: {rejected} of {rows_in} rows ({rejected / rows_in:.1%}) broke contract "
        f"{contract.label}, more than its max_reject_ratio {contract.max_reject_ratio:g} allows; "
        f"most frequent: {', '.join(f'{k} x{v}' for k, v in top)}. Nothing was loaded; see {see}"
    )


def early_stop_error(where: str, counts: dict[str, int], why: str, see: str) -> RejectThresholdError:
    """The error of a run stopped before the end of its file because it was bound to fail: `why` says why."""
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return RejectThresholdError(
        f"{where}: {why}; most frequent: {', '.join(f'{k} x{v}' for k, v in top)}. Nothing was loaded; see {see}"
    )
