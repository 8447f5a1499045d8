"""``sluice load``: a burst of uploads on a local cloud of its own, then every promise checked.

It uploads N order files of mixed sizes in two shapes - *hourly* (every row in one hour) and
*month* (rows spread over a month: one aggregate item per hour and country) - with duplicate
deliveries of some events, malformed files, and new versions of some keys uploaded while their
first version is still running. Once the cloud is idle it checks:

- every upload has exactly one run, and it ended (SUCCEEDED, SUPERSEDED or FAILED);
- the newest upload of every key is the live one (malformed files: FAILED);
- the curated rows are exactly the live runs' rows, no order id twice;
- no message in either dead-letter queue;
- the stream's aggregates equal a DuckDB GROUP BY over the curated data;

and prints files per minute, the lag from upload to the run's end (p50, p95, max) and the peak
memory of the local cloud's processes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sluice_cli.connection import Connection, project_root
from sluice_cli.seeding import redeliver

HEADER = "order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"
COUNTRIES = ("DE", "FR", "ES", "IT", "NL", "US", "GB")
T0 = datetime(2026, 9, 1, tzinfo=UTC)


def register(subparsers: Any) -> None:
    """Add ``load``."""
    p = subparsers.add_parser(
        "load",
        help="a burst of uploads on a local cloud of its own; checks every promise and prints throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--files", type=int, default=300, help="distinct raw keys (default 300)")
    p.add_argument("--shape", choices=("hourly", "month", "both"), default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the pipeline")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


@dataclass
class Upload:
    """One object version put in the raw bucket."""

    key: str
    version_id: str
    ids: list[str]
    malformed: bool
    at: float


@dataclass
class LoadReport:
    """What a load run measured and which checks failed."""

    files: int
    uploads: int
    duplicate_deliveries: int
    runs: int
    seconds: float  # from the first upload until the cloud was idle (aggregates settled)
    files_per_minute: float  # uploads per minute over `seconds`
    lag_p50: float
    lag_p95: float
    lag_max: float
    peak_rss_mib: float
    curated_rows: int
    runs_seconds: float = 0.0  # from the first upload to the end of the last run
    runs_per_minute: float = 0.0  # uploads per minute over `runs_seconds`: the pipeline's own pace
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


class Orders:
    """Order files with ids unique across the whole load."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.next_id = 0

    def file(self, rows: int, shape: str, malformed: bool = False) -> tuple[bytes, list[str]]:
        """CSV bytes and the ids of its rows (a malformed file has a header the contract refuses)."""
        hour = T0 + timedelta(hours=self.rnd.randrange(24 * 30))
        lines = [HEADER.replace("customer_id", "client") if malformed else HEADER]
        ids = []
        for _ in range(rows):
            oid = f"O-{self.next_id:06d}"
            self.next_id += 1
            at = hour + timedelta(minutes=self.rnd.randrange(60))
            if shape == "month":
                at = T0 + timedelta(hours=self.rnd.randrange(24 * 30), minutes=self.rnd.randrange(60))
            qty, price = self.rnd.randint(1, 9), self.rnd.randint(100, 9999)
            lines.append(
                f"{oid},{at:%Y-%m-%dT%H:%M:%SZ},C-{self.rnd.randrange(500):04d},{self.rnd.choice(COUNTRIES)},web,"
                f"{qty},{price // 100}.{price % 100:02d},{qty * price // 100}.{qty * price % 100:02d},true"
            )
            ids.append(oid)
        return ("\n".join(lines) + "\n").encode(), ids


def _peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of process `pid` and its children, in MiB (Linux)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        status = Path(f"/proc/{p}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


def _shapes(shape: str) -> Iterator[str]:
    while True:
        yield from (("hourly", "month") if shape == "both" else (shape,))


def upload_burst(conn: Connection, files: int, shape: str, seed: int) -> tuple[list[Upload], int]:
    """Put the files (and second versions, duplicate deliveries) in the raw bucket; returns uploads and duplicates."""
    s3, bucket = conn.client("s3"), conn.resource("RawBucket")
    orders = Orders(seed)
    plan = []
    for i, kind in zip(range(files), _shapes(shape), strict=False):
        rows = orders.rnd.choice((20, 80, 300, 1200))
        malformed = i % 20 == 19
        plan.append((f"orders/load/{kind}/file-{i:04d}.csv", *orders.file(rows, kind, malformed), malformed, i))
        if i % 10 == 9 and not malformed:  # a new version, uploaded right after the first
            plan.append((plan[-1][0], *orders.file(orders.rnd.choice((20, 300)), kind), False, i))

    def put(item: tuple[str, bytes, list[str], bool, int]) -> Upload:
        key, data, ids, malformed, _ = item
        version = s3.put_object(Bucket=bucket, Key=key, Body=data)["VersionId"]
        return Upload(key, str(version), ids, malformed, time.time())

    with ThreadPoolExecutor(8) as pool:
        uploads = list(pool.map(put, plan))
    duplicates = 0
    for upload in uploads[::7]:  # EventBridge and SQS deliver at least once
        redeliver(conn, upload.key, upload.version_id)
        duplicates += 1
    return uploads, duplicates


def check(conn: Connection, uploads: list[Upload], report: LoadReport) -> None:
    """Every promise of the module docstring; failures go to ``report.failures``."""
    live_ids = _check_runs(conn, uploads, report)
    _check_data(conn, live_ids, report)


def _check_runs(conn: Connection, uploads: list[Upload], report: LoadReport) -> list[str]:
    """One ended run per upload, the newest upload of each key live; returns the ids readers should see."""
    from sluice.adapters.runs_table import DynamoRunTable

    with conn.environment():
        runs = DynamoRunTable(conn.resource("RunsTable")).recent_runs(100_000)
    raw = conn.resource("RawBucket")
    by_upload: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        source = r.get("source") or {}
        if str(source.get("key", "")).startswith("orders/load/"):
            by_upload.setdefault((source["key"], str(source.get("version_id"))), []).append(r)
    report.runs = sum(len(v) for v in by_upload.values())
    for upload in uploads:
        mine = by_upload.get((upload.key, upload.version_id), [])
        if len(mine) != 1 or mine[0]["status"] not in ("SUCCEEDED", "SUPERSEDED", "FAILED"):
            report.failures.append(f"{upload.key} version {upload.version_id}: runs {[r['status'] for r in mine]}")
    live_ids: list[str] = []
    s3 = conn.client("s3")
    for upload in uploads:
        versions = s3.list_object_versions(Bucket=raw, Prefix=upload.key)["Versions"]
        if not any(v["IsLatest"] and v["VersionId"] == upload.version_id for v in versions if v["Key"] == upload.key):
            continue  # an older version of its key: checked above, superseded or not
        mine = by_upload.get((upload.key, upload.version_id), [])
        status = mine[0]["status"] if mine else "none"
        want = "FAILED" if upload.malformed else "SUCCEEDED"
        if status != want:
            report.failures.append(f"s3://{raw}/{upload.key}: its newest upload is {status}, not {want}")
        if not upload.malformed:
            live_ids += upload.ids
    return live_ids


def _check_data(conn: Connection, live_ids: list[str], report: LoadReport) -> None:
    """Curated rows are the live uploads', once; dead-letter queues are empty; aggregates are exact."""
    from sluice_cli.query_cmd import query

    _, rows = query(conn, "select order_id from orders where starts_with(order_id, 'O-')")
    seen = [r[0] for r in rows]
    report.curated_rows = len(seen)
    if len(seen) != len(set(seen)):
        report.failures.append(f"{len(seen) - len(set(seen))} order ids are visible twice")
    if sorted(seen) != sorted(live_ids):
        report.failures.append(f"curated rows {len(seen)} are not the live uploads' {len(live_ids)}")
    sqs = conn.client("sqs")
    for queue in ("IngestDeadLetterQueue", "AggregateDeadLetterQueue"):
        depth = sqs.get_queue_attributes(QueueUrl=conn.resource(queue), AttributeNames=["ApproximateNumberOfMessages"])
        if int(depth["Attributes"]["ApproximateNumberOfMessages"]):
            report.failures.append(f"{queue} holds messages")
    streamed, truth = _aggregates(conn), _group_by(conn)
    if streamed != truth:
        wrong = [k for k in set(streamed) | set(truth) if streamed.get(k) != truth.get(k)]
        report.failures.append(f"aggregates differ from the curated data in {len(wrong)} items, e.g. {wrong[:3]}")


def _aggregates(conn: Connection) -> dict[tuple[str, str], tuple[int, Decimal]]:
    from sluice_cli.aggregates_cmd import fetch_aggregates

    out = {}
    for row in fetch_aggregates(conn, dataset="orders"):
        if row.values.count:
            amount = row.values.measures["amount"].sum
            out[(str(row.bucket_start), str(row.group["country"]))] = (row.values.count, Decimal(str(amount)))
    return out


def _group_by(conn: Connection) -> dict[tuple[str, str], tuple[int, Decimal]]:
    from sluice_cli.query_cmd import query

    _, rows = query(
        conn,
        "select cast(floor(epoch(ordered_at) / 3600) * 3600 as bigint), country, count(*), sum(amount) "
        "from orders group by all",
    )
    return {
        (datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), c): (n, Decimal(str(s))) for b, c, n, s in rows
    }


def run_load(conn: Connection, wait_idle: Any, pid: int, *, files: int, shape: str, seed: int) -> LoadReport:
    """Upload the burst, wait with `wait_idle()`, check; the local cloud's process is `pid`."""
    began = time.time()
    uploads, duplicates = upload_burst(conn, files, shape, seed)
    wait_idle()
    seconds = time.time() - began
    report = LoadReport(
        files=files,
        uploads=len(uploads),
        duplicate_deliveries=duplicates,
        runs=0,
        seconds=round(seconds, 1),
        files_per_minute=round(len(uploads) / seconds * 60, 1),
        lag_p50=0.0,
        lag_p95=0.0,
        lag_max=0.0,
        peak_rss_mib=round(_peak_rss_mib(pid), 1),
        curated_rows=0,
    )
    check(conn, uploads, report)
    ends = _run_ends(conn, uploads)
    lags = [end - upload.at for upload, end in ends]
    if ends:
        report.runs_seconds = round(max(end for _, end in ends) - began, 1)
        report.runs_per_minute = round(len(uploads) / max(report.runs_seconds, 1e-3) * 60, 1)
        report.lag_p50 = round(statistics.median(lags), 1)
        report.lag_p95 = round(statistics.quantiles(lags, n=20)[-1] if len(lags) > 1 else lags[0], 1)
        report.lag_max = round(max(lags), 1)
    return report


def _run_ends(conn: Connection, uploads: list[Upload]) -> list[tuple[Upload, float]]:
    """Each upload whose run ended, with the time it ended (epoch seconds)."""
    from sluice.adapters.runs_table import DynamoRunTable

    with conn.environment():
        table = DynamoRunTable(conn.resource("RunsTable"))
        ended = {}
        for upload in uploads:
            for r in table.runs_by_source(f"s3://{conn.resource('RawBucket')}/{upload.key}"):
                if r.get("source", {}).get("version_id") == upload.version_id and r.get("finished_at"):
                    ended[(upload.key, upload.version_id)] = datetime.fromisoformat(r["finished_at"]).timestamp()
    return [(u, ended[(u.key, u.version_id)]) for u in uploads if (u.key, u.version_id) in ended]


def run(args: argparse.Namespace) -> int:
    """Start a local cloud, run the load, print the report; exit 1 if a check failed."""
    from localcloud.remote import RemoteCloud

    root = project_root()
    with RemoteCloud.spawn(root, stack_name="sluice-load", workers_per_function=4) as cloud:
        conn = Connection(cloud.endpoint, cloud.resources)
        report = run_load(
            conn,
            lambda: cloud.wait_idle(timeout=args.timeout),
            cloud.pid,
            files=args.files,
            shape=args.shape,
            seed=args.seed,
        )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(
            f"{report.uploads} uploads of {report.files} keys (+{report.duplicate_deliveries} duplicate deliveries): "
            f"every run ended {report.runs_seconds:.0f} s after the first upload ({report.runs_per_minute:.0f} "
            f"files/min), lag upload -> run end p50 {report.lag_p50:.0f} s, p95 {report.lag_p95:.0f} s, max "
            f"{report.lag_max:.0f} s; the stream's aggregates settled at {report.seconds:.0f} s "
            f"({report.files_per_minute:.0f} files/min end to end); peak RSS of the local cloud "
            f"{report.peak_rss_mib:.0f} MiB; {report.curated_rows:,} curated rows"
        )
        for failure in report.failures:
            print(f"FAILED: {failure}")
    return 1 if report.failures else 0
