"""``sluice invoke FN -e EVENT``: ``sam local invoke`` without Docker.

Runs the function's real handler with its environment from template.yaml on the local cloud:
the running one (``sluice local up``) or, when none runs, a fresh one seeded with the sample
files, where the pipeline steps before FN first run with their own events from ``events/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from sluice.errors import SluiceError
from sluice_cli.connection import Connection, NoLocalCloudError, project_root, running
from sluice_cli.display import make_console
from sluice_cli.seeding import load_event, upload_samples

# The state machine's tasks in order, each with its event: a step's event refers to what the steps
# before it wrote (run "orders-sample-0001"), so on a fresh cloud they run first. This is the
# fan-out branch (Plan, Transform of one byte range, Merge), which runs every pipeline function;
# the single-worker Transform takes events/transform.json (`sluice invoke transform -e ...`).
PIPELINE = (
    ("ValidateFunction", "events/validate.json"),
    ("PlanFunction", "events/plan.json"),
    ("TransformFunction", "events/transform-range.json"),
    ("MergeFunction", "events/merge.json"),
    ("SummarizeFunction", "events/summarize.json"),
    ("PublishFunction", "events/publish.json"),
)
# The event each function is invoked with when `-e` is not given.
DEFAULT_EVENTS = {
    **dict(PIPELINE),
    "StartFunction": "events/s3.json",
    "RecordFailureFunction": "events/record-failure.json",
    "AggregateFunction": "events/kinesis.json",
    "CleanupFunction": "events/schedule.json",
}


def register(subparsers: Any) -> None:
    """Add ``invoke``."""
    p = subparsers.add_parser("invoke", help="run one function's handler with an event (sam local invoke, no Docker)")
    p.add_argument("function", help="logical id (TransformFunction) or short name (transform)")
    p.add_argument(
        "-e",
        "--event",
        type=Path,
        help="event JSON file (${LogicalId} placeholders allowed); default: the function's event in events/",
    )
    p.add_argument("--build", action="store_true", help="run the `sam build` artifact instead of the sources")
    p.set_defaults(func=run)


def function_ids(root: Path) -> list[str]:
    """Logical ids of the template's functions."""
    from cfnlint.decode.cfn_yaml import load

    template = load(str(root / "template.yaml"))
    return [k for k, v in template["Resources"].items() if v.get("Type") == "AWS::Serverless::Function"]


def resolve_function(name: str, root: Path) -> str:
    """The logical id `name` designates (case-insensitive, ``Function`` suffix optional)."""
    wanted = name.lower().replace("_", "").replace("-", "")
    for fid in function_ids(root):
        if wanted in (fid.lower(), fid.lower().removesuffix("function")):
            return fid
    raise SluiceError(f"no function {name!r} in template.yaml; functions: {', '.join(function_ids(root))}")


def invoke(conn: Connection, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    """Invoke through the Lambda API of the local cloud; returns (payload, function error)."""
    resp = conn.client("lambda").invoke(FunctionName=conn.resource(function), Payload=json.dumps(event).encode())
    raw = resp["Payload"].read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    return payload, resp.get("FunctionError")


def _prepare(conn: Connection, root: Path, function: str, console: Console) -> None:
    """On a fresh cloud: upload samples and run the pipeline steps before `function`."""
    keys = upload_samples(conn, root)
    console.print(f"[dim]seeded {len(keys)} sample files into s3://{conn.resource('RawBucket')}/[/]")
    steps = [fid for fid, _ in PIPELINE]
    if function not in steps:
        return
    for fid, event_file in PIPELINE[: steps.index(function)]:
        _, error = invoke(conn, fid, load_event(root / event_file, conn))
        if error:
            raise SluiceError(f"preparing {function}: {fid} with {event_file} failed ({error})")
        console.print(f"[dim]prepared: ran {fid} with {event_file}[/]")


def run(args: argparse.Namespace) -> int:
    """Invoke and print the handler's return value as JSON (exit 1 on a function error)."""
    root = project_root()
    console = make_console(stderr=True)
    function = resolve_function(args.function, root)
    event_file = args.event or (root / DEFAULT_EVENTS[function] if function in DEFAULT_EVENTS else None)
    if event_file is None or not event_file.is_file():
        raise SluiceError(f"event file {event_file} does not exist (pass one with -e)")
    try:
        conn = running(root)
        cloud = None
    except NoLocalCloudError:
        from localcloud import LocalCloud

        with console.status("no local cloud running: starting one for this invoke…"):
            cloud = LocalCloud(root, artifact="build" if args.build else "source").start()
        conn = Connection(cloud.endpoint, cloud.resources)
    try:
        if cloud is not None:
            _prepare(conn, root, function, console)
        payload, error = invoke(conn, function, load_event(event_file, conn))
        if cloud is not None:
            cloud.wait_idle(timeout=300)
    finally:
        if cloud is not None:
            cloud.stop()
    json.dump(payload, sys.stdout, indent=2, default=str)
    print()
    if error:
        console.print(f"[red]{function} failed: {error}[/]")
        return 1
    return 0
