"""``sluice cleanup [--dry-run]``: run the deployed Cleanup function now and print what it did (or would do)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from localcloud.events import scheduled_event
from sluice.errors import SluiceError
from sluice_cli.connection import Connection, running
from sluice_cli.local_cmd import cleanup_detail


def register(subparsers: Any) -> None:
    """Add ``cleanup``."""
    p = subparsers.add_parser(
        "cleanup",
        help="run the scheduled cleanup now (compaction, orphans, stuck runs); --dry-run prints the plan",
        description="Invoke the stack's Cleanup function with a Scheduled Event, as the nightly schedule does, "
        "and print its report. With --dry-run it changes nothing and the report is the plan. Without --stack it "
        "talks to the running local cloud (`sluice local up`).",
    )
    p.add_argument("--dry-run", action="store_true", help="plan only: change nothing")
    p.add_argument("--max-actions", type=int, metavar="N", help="stop after N actions (the next pass resumes)")
    p.add_argument("--at", metavar="ISO", help="the time the cleanup acts as of (default now)")
    p.add_argument("--stack", help="a deployed stack (AWS credentials as for the AWS CLI)")
    p.add_argument("--profile", help="AWS profile (with --stack)")
    p.add_argument("--region", help="AWS region (with --stack)")
    p.add_argument("--endpoint-url", help="AWS endpoint (with --stack)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Invoke Cleanup; print its report as JSON (exit 1 when the function failed)."""
    if args.stack:
        conn = Connection.for_stack(args.stack, profile=args.profile, region=args.region, endpoint=args.endpoint_url)
    elif args.profile or args.region or args.endpoint_url:
        raise SluiceError("--profile, --region and --endpoint-url go with --stack")
    else:
        conn = running()
    try:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else datetime.now(UTC)
    except ValueError:
        raise SluiceError(f"--at {args.at!r} is not an ISO 8601 time (e.g. 2026-12-05T03:15:00Z)") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    detail = cleanup_detail(dry_run=args.dry_run, max_actions=args.max_actions)
    event = scheduled_event("sluice cleanup (manual)", conn.region, "000000000000", at.timestamp(), detail)
    resp = conn.client("lambda").invoke(FunctionName=conn.resource("CleanupFunction"), Payload=json.dumps(event))
    raw = resp["Payload"].read()
    payload = json.loads(raw) if raw else None
    print(json.dumps(payload, indent=2, default=str))
    return 1 if resp.get("FunctionError") else 0
