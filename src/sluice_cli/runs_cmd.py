"""``sluice runs``: run summaries from the runs table of the local cloud."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from sluice.adapters.runs_table import DynamoRunTable
from sluice_cli.connection import running
from sluice_cli.display import make_console


def register(subparsers: Any) -> None:
    """Add ``runs``."""
    p = subparsers.add_parser("runs", help="list run summaries (rows in/out/rejected, status, reason)")
    p.add_argument("--dataset", help="only runs of this dataset")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def fetch_runs(dataset: str | None, limit: int) -> list[dict[str, Any]]:
    """Latest runs (of `dataset`), newest first, from the running local cloud."""
    conn = running()
    with conn.environment():
        table = DynamoRunTable(conn.resource("RunsTable"))
        return table.runs_of_dataset(dataset, limit) if dataset else table.recent_runs(limit)


def runs_table(runs: list[dict[str, Any]], title: str = "runs") -> Table:
    """A rich table of run summaries (failure reasons: :func:`failure_lines`)."""
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("raw key", "left"),
        ("dataset", "left"),
        ("status", "left"),
        ("rows in", "right"),
        ("out", "right"),
        ("rejected", "right"),
        ("files", "right"),
        ("ms", "right"),
    ):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    colours = {
        "SUCCEEDED": "green",
        "COMMITTED": "green",
        "COMMITTING": "yellow",
        "FAILED": "red",
        "RUNNING": "yellow",
        "SUPERSEDED": "dim",
    }
    for r in runs:
        status = str(r.get("status", "?"))
        table.add_row(
            str(r.get("source_uri", "")).split("/", 3)[-1],
            str(r.get("dataset", "")),
            f"[{colours.get(status, 'white')}]{status}[/]",
            *(str(r.get(k, "")) for k in ("rows_in", "rows_out", "rows_rejected", "output_files", "duration_ms")),
        )
    return table


def failure_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One line per run with an error: failed ones, and committed ones whose later step failed."""
    lines = []
    for r in runs:
        key = str(r.get("source_uri", "")).split("/", 3)[-1]
        if r.get("status") == "FAILED":
            lines.append(f"[red]{key}[/]: {r.get('error_type', '')}: {r.get('reason', '')}")
        elif r.get("error_type") and r.get("status") in ("COMMITTING", "COMMITTED"):
            lines.append(
                f"[yellow]{key}[/]: data committed, but {r.get('failed_step', 'a later step')} failed: "
                f"{r.get('error_type')}: {r.get('reason', '')} (sluice rerun {r.get('run_id')})"
            )
    return lines


def run(args: argparse.Namespace) -> int:
    """Print run summaries."""
    runs = fetch_runs(args.dataset, args.limit)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
    else:
        console = make_console()
        console.print(runs_table(runs))
        for line in failure_lines(runs):
            console.print(line)
    return 0
