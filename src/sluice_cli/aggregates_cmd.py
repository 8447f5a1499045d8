"""``sluice aggregates``: the real-time aggregates in the aggregates table of the local cloud."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from rich.table import Table

from sluice.adapters.aggregates_table import DynamoAggregateStore
from sluice.aggregates.reads import AggregateRow, parse_time, read_aggregates
from sluice.errors import SluiceError
from sluice_cli.connection import Connection, running
from sluice_cli.display import make_console


def register(subparsers: Any) -> None:
    """Add ``aggregates``."""
    p = subparsers.add_parser("aggregates", help="print the real-time aggregates (per dataset, time bucket and group)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--since", help="buckets starting at/after this time: ISO-8601 or a duration ago (30m, 2h, 7d)")
    p.add_argument("--until", help="buckets starting before this time (same forms as --since)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--endpoint", help="AWS endpoint URL (default: the running local cloud)")
    p.add_argument("--table", help="aggregates table name (default: the local cloud's AggregatesTable)")
    p.set_defaults(func=run)


def store_for(endpoint: str | None, table: str | None) -> DynamoAggregateStore:
    """The aggregates table of `endpoint` (or of the running local cloud)."""
    if endpoint is None:
        conn = running()
        return DynamoAggregateStore(table or conn.resource("AggregatesTable"), client=conn.client("dynamodb"))
    conn = Connection(endpoint, {})
    if table is None:
        try:
            table = running().resource("AggregatesTable")
        except SluiceError:
            raise SluiceError("--table is required with --endpoint when no local cloud is recorded") from None
    return DynamoAggregateStore(table, client=conn.client("dynamodb"))


def fetch_aggregates(
    conn: Connection, dataset: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[AggregateRow]:
    """Aggregates (of `dataset`) in the aggregates table of the local cloud `conn`."""
    store = DynamoAggregateStore(conn.resource("AggregatesTable"), client=conn.client("dynamodb"))
    return read_aggregates(store, dataset, since, until)


def aggregates_table(rows: list[AggregateRow]) -> Table:
    """A rich table of aggregate rows."""
    table = Table(title="aggregates", title_justify="left")
    for col, justify in (
        ("dataset", "left"),
        ("bucket", "left"),
        ("group", "left"),
        ("rows", "right"),
        ("measures", "left"),
        ("distinct", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        group = ", ".join(f"{k}={v}" for k, v in r.group.items()) or "-"
        table.add_row(
            r.dataset, r.bucket_start or "(no time)", group, str(r.values.count), r.measures_text(), r.distinct_text()
        )
    return table


def run(args: argparse.Namespace) -> int:
    """Print the aggregates."""
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    rows = read_aggregates(store_for(args.endpoint, args.table), args.dataset, since, until)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        make_console().print(aggregates_table(rows))
    return 0
