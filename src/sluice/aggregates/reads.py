"""Reading aggregates back: what ``sluice aggregates`` and dashboards ask of the aggregates table."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sluice.aggregates.values import Scalar, Values, format_decimal, iso_seconds, parse_iso_seconds
from sluice.errors import SluiceError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class AggregateReader(Protocol):
    """The reads of :class:`sluice.adapters.aggregates_table.DynamoAggregateStore`."""

    def list_datasets(self) -> list[tuple[str, int]]:
        """``(dataset, bucket_seconds)`` of every dataset with aggregates."""
        ...

    def query_dataset(
        self, dataset: str, bucket_seconds: int, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Aggregate items of a dataset whose bucket starts in ``[since, until)``, oldest first."""
        ...


@dataclass(frozen=True)
class AggregateRow:
    """One aggregate item as read back."""

    dataset: str
    bucket_seconds: int
    bucket_start: str | None
    group: dict[str, Scalar]
    values: Values
    updated_at: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AggregateRow:
        """From a deserialized aggregate item (its exact ``values`` JSON, not the rounded-looking numbers)."""
        group = {str(k): _scalar(v) for k, v in (item.get("group") or {}).items()}
        return cls(
            str(item["dataset"]),
            int(item["bucket_seconds"]),
            item.get("bucket_start"),
            group,
            Values.from_json(json.loads(item["values"])),
            item.get("updated_at"),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain data; decimals as exact strings."""
        return {
            "dataset": self.dataset,
            "bucket_start": self.bucket_start,
            "bucket_end": None
            if self.bucket_start is None
            else iso_seconds(parse_iso_seconds(self.bucket_start) + self.bucket_seconds),
            "bucket_seconds": self.bucket_seconds,
            "group": self.group,
            "count": self.values.count,
            "measures": {c: m.to_json() for c, m in sorted(self.values.measures.items())},
            "distinct": {c: s.estimate() for c, s in sorted(self.values.distinct.items())},
            "distinct_exact": {c: s.exact for c, s in sorted(self.values.distinct.items())},
            "updated_at": self.updated_at,
        }

    def measures_text(self) -> str:
        """``amount: sum 120.50 min 10.00 max 80.00; quantity: sum 7``."""
        parts = []
        for col, m in sorted(self.values.measures.items()):
            shown = [f"{op} {_show(getattr(m, op))}" for op in ("sum", "min", "max") if getattr(m, op) is not None]
            parts.append(f"{col}: {' '.join(shown) or f'{m.n} values'}")
        return "; ".join(parts)

    def distinct_text(self) -> str:
        """``customer_id 12`` (``~`` marks an estimate)."""
        return ", ".join(f"{c} {'' if s.exact else '~'}{s.estimate()}" for c, s in sorted(self.values.distinct.items()))


def _show(value: Any) -> str:
    return format_decimal(value) if not isinstance(value, str) else value


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    text = str(value)
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An instant from ISO-8601 (naive = UTC) or a duration before `now` (``15m``, ``2h``, ``7d``).

    Raises
    ------
    SluiceError
        `text` is neither.

    """
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SluiceError(
            f"{text!r} is not a time: use ISO-8601 (2026-11-01T10:00Z) or a duration (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso_seconds(int(moment.timestamp()))


def read_aggregates(
    reader: AggregateReader,
    dataset: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AggregateRow]:
    """Aggregates of `dataset` (all datasets when None) whose bucket starts in ``[since, until)``.

    Buckets are matched by their start: one that began before `since` is left out even if it ends after.
    """
    rows: list[AggregateRow] = []
    for name, size in sorted(reader.list_datasets()):
        if dataset is None or name == dataset:
            items = reader.query_dataset(name, size, _iso(since), _iso(until))
            rows.extend(AggregateRow.from_item(i) for i in items)
    return rows
