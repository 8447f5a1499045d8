"""What a conversion counts, in one JSON spelling (light: no pyarrow, so run manifests can use it)."""
# ruff: noqa: D102  (the Protocol lists read-only attributes; the class docstring says what they are)

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Counts(Protocol):
    """What a conversion counted, as a conversion result and a run manifest both carry it."""

    @property
    def rows_in(self) -> int: ...
    @property
    def rows_out(self) -> int: ...
    @property
    def rows_rejected(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def blank_lines(self) -> int: ...
    @property
    def rejects_by_rule(self) -> Mapping[str, int]: ...
    @property
    def schema(self) -> Sequence[Sequence[str]]: ...
    @property
    def partition_columns(self) -> Sequence[str]: ...


def counts_json(counts: Counts) -> dict[str, Any]:
    """The counts and schema of a conversion as JSON (one spelling for summaries and manifests)."""
    return {
        "rows_in": counts.rows_in,
        "rows_out": counts.rows_out,
        "rows_rejected": counts.rows_rejected,
        "bytes_in": counts.bytes_in,
        "bytes_out": counts.bytes_out,
        "blank_lines": counts.blank_lines,
        "rejects_by_rule": dict(counts.rejects_by_rule),
        "schema": [list(c) for c in counts.schema],
        "partition_columns": list(counts.partition_columns),
    }
