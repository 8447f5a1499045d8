"""``sluice demo``: the whole pipeline on the embedded local cloud, end to end."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from sluice.contracts import load_contracts
from sluice_cli.alarms import alarm_states, alarm_table
from sluice_cli.connection import Connection, project_root
from sluice_cli.display import make_console
from sluice_cli.query_cmd import query, result_table
from sluice_cli.runs_cmd import failure_lines, runs_table
from sluice_cli.seeding import redeliver, sample_files, upload_samples

SHOWN_AGGREGATES = 8
DEMO_SQL = (
    "select order_date, country, count(*) as orders, sum(amount) as revenue "
    "from orders group by all order by order_date, revenue desc limit 12"
)


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo", help="run the pipeline end to end on the embedded local cloud")
    p.add_argument("--build", action="store_true", help="run the `sam build` artifact instead of the sources")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the runs")
    p.set_defaults(func=run)


@dataclass
class Checks:
    """What the demo verifies; any failure makes it exit non-zero."""

    failures: list[str] = field(default_factory=list)

    def expect(self, ok: bool, what: str, console: Console) -> None:
        """Record and print one check."""
        console.print(("[green]✓[/] " if ok else "[red]✗[/] ") + what)
        if not ok:
            self.failures.append(what)


def executions(conn: Connection) -> list[dict[str, Any]]:
    """Every execution of the pipeline state machine."""
    sfn = conn.client("stepfunctions")
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=conn.resource("PipelineStateMachine")):
        found.extend(page["executions"])
    return found


def wait_for_runs(conn: Connection, expected: int, timeout: float, console: Console) -> list[dict[str, Any]]:
    """Wait until `expected` executions exist and none is running."""
    deadline = time.monotonic() + timeout
    with console.status("waiting for the pipeline…") as status:
        while True:
            found = executions(conn)
            running = [e for e in found if e["status"] == "RUNNING"]
            status.update(f"pipeline: {len(found) - len(running)}/{max(expected, len(found))} runs finished")
            if len(found) >= expected and not running:
                return found
            if time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    """Drop the samples into S3, watch the state machine, show summaries, aggregates, a query, the alarms."""
    from localcloud import LocalCloud
    from sluice.adapters.runs_table import DynamoRunTable

    console = make_console()
    root = project_root()
    checks = Checks()
    console.print(
        Panel.fit("sluice demo: CSV in S3 → Step Functions → Parquet, run summaries, live aggregates", style="bold")
    )
    began = time.monotonic()
    with console.status("starting the embedded local cloud and deploying template.yaml…"):
        cloud = LocalCloud(root, artifact="build" if args.build else "source").start()
    try:
        conn = Connection(cloud.endpoint, cloud.resources)
        console.print(
            f"local cloud at {cloud.endpoint}: {len(cloud.resources)} resources ({time.monotonic() - began:.1f}s)"
        )
        samples = sample_files(root)
        keys = upload_samples(conn, root)
        console.print(f"uploaded {len(keys)} files to s3://{conn.resource('RawBucket')}/: {', '.join(keys)}")
        done = wait_for_runs(conn, len(keys), args.timeout, console)
        checks.expect(len(done) == len(keys), f"{len(keys)} uploads started {len(done)} executions", console)

        first = next((k for k in keys if k.startswith("orders/") and "bad" not in k), keys[0])
        redeliver(conn, first)  # EventBridge and SQS deliver at least once
        cloud.wait_idle(timeout=args.timeout)
        again = executions(conn)
        checks.expect(
            len(again) == len(done), f"the {first} event delivered twice started no second execution", console
        )
        upload_samples(conn, root, only=[first])  # the same bytes again: a new run replaces the first at commit
        cloud.wait_idle(timeout=args.timeout)

        cloud.wait_idle(timeout=args.timeout)
        with conn.environment():
            runs = DynamoRunTable(conn.resource("RunsTable")).recent_runs(100)
        console.print(runs_table(runs, "run summaries (runs table)"))
        for line in failure_lines(runs):
            console.print(line)
        _check_runs(runs, samples, root, checks, console)
        _show_parquet(conn, console)
        _show_aggregates(conn, console, checks)

        columns, rows = query(conn, DEMO_SQL)
        console.print(result_table(columns, rows, f'sluice query "{DEMO_SQL}"'))
        total = query(conn, "select count(*) from orders")[1][0][0]
        landed = sum(int(r.get("rows_out", 0)) for r in runs if r.get("status") == "SUCCEEDED")
        checks.expect(
            total == landed and total > 0, f"DuckDB sees {total} curated rows; run summaries say {landed}", console
        )
        console.print(alarm_table(alarm_states(conn.client("cloudwatch"))))
    finally:
        cloud.stop()
    if checks.failures:
        console.print(f"[red]demo failed: {len(checks.failures)} check(s) did not hold[/]")
        return 1
    console.print(f"[green]demo passed[/] in {time.monotonic() - began:.1f}s")
    return 0


def _check_runs(
    runs: list[dict[str, Any]], samples: list[tuple[Path, str]], root: Path, checks: Checks, console: Console
) -> None:
    by_key: dict[str, dict[str, Any]] = {}
    for r in runs:  # newest first: the latest run of each key
        by_key.setdefault(str(r.get("source_uri", "")).split("/", 3)[-1], r)
    datasets = {c.match.prefix for c in load_contracts(root / "contracts") if c.match.prefix}
    for _path, key in samples:
        run = by_key.get(key)
        if run is None:
            checks.expect(False, f"{key}: a run was recorded", console)
            continue
        known = any(key.startswith(p) for p in datasets)
        if not known or "bad" in key:
            checks.expect(
                run.get("status") == "FAILED" and bool(run.get("reason")),
                f"{key}: bad input recorded as FAILED with a reason",
                console,
            )
            continue
        balanced = run.get("rows_in") == run.get("rows_out", 0) + run.get("rows_rejected", 0)
        checks.expect(
            run.get("status") == "SUCCEEDED" and balanced,
            f"{key}: SUCCEEDED, {run.get('rows_in')} in = {run.get('rows_out')} out + "
            f"{run.get('rows_rejected')} quarantined",
            console,
        )


def _show_parquet(conn: Connection, console: Console) -> None:
    s3, bucket = conn.client("s3"), conn.resource("CuratedBucket")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    objects = [o for page in pages for o in page.get("Contents", [])]
    console.print(f"Parquet written to s3://{bucket}/ ({len(objects)} files, zstd, hive partitions):")
    for obj in objects:
        console.print(f"  {obj['Key']}  [dim]{obj['Size']:,} bytes[/]")


def _show_aggregates(conn: Connection, console: Console, checks: Checks) -> None:
    from decimal import Decimal

    from sluice_cli.aggregates_cmd import aggregates_table, fetch_aggregates

    items = fetch_aggregates(conn, dataset="orders")
    shown = items[-SHOWN_AGGREGATES:]
    console.print(aggregates_table(shown))
    console.print(f"[dim]latest {len(shown)} of {len(items)} hourly aggregates by country (sluice aggregates)[/]")
    streamed: dict[str, tuple[int, Decimal]] = {}
    for item in items:
        country = str(item.group.get("country"))
        count, revenue = streamed.get(country, (0, Decimal(0)))
        amount = item.values.measures["amount"].sum
        streamed[country] = (count + item.values.count, revenue + Decimal(str(amount or 0)))
    _, rows = query(conn, "select country, count(*), sum(amount) from orders group by country")
    curated = {str(c): (int(n), Decimal(str(total))) for c, n, total in rows}
    checks.expect(
        bool(items) and streamed == curated,
        f"aggregates from the stream equal a DuckDB GROUP BY over the Parquet ({len(curated)} countries, "
        f"{sum(n for n, _ in curated.values())} orders)",
        console,
    )
