"""``sluice local``: run the embedded local cloud and talk to it."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import urllib.request
from datetime import UTC, datetime
from typing import Any

from sluice.errors import SluiceError
from sluice_cli.connection import STATE_FILE, project_root, running
from sluice_cli.display import make_console


def register(subparsers: Any) -> None:
    """Add ``local up``, ``local resources``, ``local tick``."""
    local = subparsers.add_parser("local", help="the embedded local cloud (moto + Lambda bridge)")
    sub = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="run the local cloud in the foreground (Ctrl-C stops it)")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument("--build", action="store_true", help="run the `sam build` artifact instead of the sources")
    up.add_argument("--seed", action="store_true", help="upload the sample files once it is up")
    up.set_defaults(func=up_cmd)
    res = sub.add_parser("resources", help="endpoint and physical names of the running local cloud")
    res.add_argument("--json", action="store_true")
    res.set_defaults(func=resources_cmd)
    tick = sub.add_parser(
        "tick",
        help="fire the scheduled functions (cleanup) now, or as if at another time",
        description="Fire every scheduled function once. With --at, its Scheduled Event carries that time and "
        "the function acts as if it were then: e.g. see what cleanup does once its grace period is over.",
    )
    tick.add_argument("--at", metavar="ISO", help="the time the functions see, e.g. 2026-12-05T03:15:00Z")
    tick.add_argument("--dry-run", action="store_true", help="cleanup returns its plan and changes nothing")
    tick.add_argument("--max-actions", type=int, metavar="N", help="cleanup stops after N actions (resumes next tick)")
    tick.set_defaults(func=tick_cmd)


def up_cmd(args: argparse.Namespace) -> int:
    """Start the local cloud and block until interrupted."""
    from localcloud import LocalCloud
    from sluice_cli.connection import Connection
    from sluice_cli.seeding import upload_samples

    console = make_console(stderr=True)
    root = project_root()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with console.status("starting the local cloud (moto + Lambda bridge) and deploying template.yaml…"):
        cloud = LocalCloud(root, port=args.port, artifact="build" if args.build else "source").start()
    try:
        cloud.write_state(root / STATE_FILE)
        conn = Connection(cloud.endpoint, cloud.resources)
        if args.seed:
            keys = upload_samples(conn, root)
            console.print(f"uploaded {len(keys)} sample files to s3://{conn.resource('RawBucket')}/")
        console.print(f"[green]local cloud up[/] at [bold]{cloud.endpoint}[/] ({len(cloud.resources)} resources)")
        console.print(
            f"  aws --endpoint-url {cloud.endpoint} s3 cp samples/orders/orders-2026-11-01.csv "
            f"s3://{conn.resource('RawBucket')}/orders/"
        )
        console.print('  sluice runs | sluice query "select count(*) from orders" | sluice local tick')
        console.print("Ctrl-C to stop. State lives in memory: it is gone when the local cloud stops (reseed: --seed).")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        (root / STATE_FILE).unlink(missing_ok=True)
        cloud.stop()
    return 0


def resources_cmd(args: argparse.Namespace) -> int:
    """Print the running local cloud's endpoint and resources."""
    conn = running()
    if args.json:
        print(json.dumps({"endpoint": conn.endpoint, "resources": conn.resources}, indent=2))
    else:
        print(f"endpoint: {conn.endpoint}")
        for logical, physical in sorted(conn.resources.items()):
            print(f"  {logical:32} {physical}")
    return 0


def tick_cmd(args: argparse.Namespace) -> int:
    """Ask the running local cloud to fire its schedules; print what the functions returned."""
    conn = running()
    body: dict[str, Any] = {}
    detail = cleanup_detail(dry_run=args.dry_run, max_actions=args.max_actions)
    if detail:
        body["detail"] = detail
    if args.at:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            raise SluiceError(f"--at {args.at!r} is not an ISO 8601 time (e.g. 2026-12-05T03:15:00Z)") from None
        body["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
    req = urllib.request.Request(f"{conn.endpoint}/_sluice/tick", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=900) as resp:
        print(json.dumps(json.loads(resp.read()), indent=2))
    return 0


def cleanup_detail(*, dry_run: bool = False, max_actions: int | None = None) -> dict[str, Any]:
    """The Scheduled Event's ``detail`` the cleanup reads (empty: a normal pass)."""
    detail: dict[str, Any] = {}
    if dry_run:
        detail["dry_run"] = True
    if max_actions is not None:
        detail["max_actions"] = max_actions
    return detail
