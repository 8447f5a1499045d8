"""Reading aggregates back: times, filters, exact rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sluice.aggregates.reads import AggregateRow, parse_time, read_aggregates
from sluice.aggregates.values import Values
from sluice.errors import SluiceError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", datetime(2026, 11, 23, 11, 30, tzinfo=UTC)),
        ("2h", datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 16, 12, 0, tzinfo=UTC)),
        ("2026-11-01T10:00", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
        ("2026-11-01T11:00+01:00", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_durations_ago(text, expected):
    assert parse_time(text, NOW) == expected


def test_a_bad_time_says_what_to_write():
    with pytest.raises(SluiceError, match="ISO-8601"):
        parse_time("last tuesday", NOW)


def item(dataset: str, size: int, bucket: str | None, country: str, count: int, amount: str) -> dict:
    values = {
        "count": count,
        "measures": {"amount": {"n": count, "sum": amount, "min": amount, "max": amount}},
        "distinct": {},
    }
    return {
        "dataset": dataset,
        "bucket_seconds": size,
        "bucket_start": bucket,
        "group": {"country": country},
        "values": json.dumps(values),
        "updated_at": "2026-11-23T12:00:00.000+00:00",
    }


class Reader:
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def list_datasets(self) -> list[tuple[str, int]]:
        return sorted({(i["dataset"], i["bucket_seconds"]) for i in self.items})

    def query_dataset(self, dataset, bucket_seconds, since=None, until=None):
        lo, hi = since or "0", until or "9999-12-31T23:59:59Z~"
        return [
            i
            for i in self.items
            if i["dataset"] == dataset
            and i["bucket_seconds"] == bucket_seconds
            and ((since is None and until is None) or lo <= f"{i['bucket_start'] or 'none'}#" <= hi)
        ]


def test_read_filters_by_dataset_and_bucket_start():
    reader = Reader(
        [
            item("orders", 3600, "2026-11-01T10:00:00Z", "DE", 2, "10.50"),
            item("orders", 3600, "2026-11-01T11:00:00Z", "DE", 1, "1.00"),
            item("orders", 3600, None, "FR", 1, "2.00"),
            item("sales", 60, "2026-11-01T10:00:00Z", "DE", 5, "9.99"),
        ]
    )
    assert len(read_aggregates(reader)) == 4
    rows = read_aggregates(reader, "orders", since=parse_time("2026-11-01T10:30:00Z"))
    assert [r.bucket_start for r in rows] == ["2026-11-01T11:00:00Z"]
    rows = read_aggregates(reader, "orders", until=parse_time("2026-11-01T11:00:00Z"))
    assert [r.bucket_start for r in rows] == ["2026-11-01T10:00:00Z"]
    [row] = read_aggregates(reader, "sales")
    assert row.to_json()["bucket_end"] == "2026-11-01T10:01:00Z"


def test_rows_render_exact_decimals():
    row = AggregateRow(
        "orders",
        3600,
        "2026-11-01T10:00:00Z",
        {"country": "DE"},
        Values.from_json({"count": 2, "measures": {"amount": {"n": 2, "sum": "10.50", "min": "0.50", "max": "10.00"}}}),
    )
    assert row.measures_text() == "amount: sum 10.50 min 0.50 max 10.00"
    assert row.to_json()["measures"]["amount"]["sum"] == "10.50"
