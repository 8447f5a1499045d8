"""``sluice rerun``: run an upload through the pipeline again (after a failure, or a fixed contract)."""

from __future__ import annotations

import argparse
import json
from typing import Any, cast

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.sfn import StepFunctions
from sluice.contracts import load_contracts
from sluice.errors import SluiceError
from sluice.pipeline.ingest import UNKNOWN_DATASET, rerun, run_input_for
from sluice.pipeline.payloads import SourceObject
from sluice.uris import split_uri
from sluice_cli.connection import Connection, add_target_arguments, connect, project_root


def register(subparsers: Any) -> None:
    """Add ``rerun``."""
    p = subparsers.add_parser(
        "rerun",
        help="run an upload again: a run id, or s3://bucket/key (its current version)",
        description="Start a new run of an upload. Use it when a run failed (fix the contract, then rerun), "
        "when cleanup marked it stuck, or when its Publish failed. The new run commits only if its version "
        "is not older than the key's live one, so rerunning an old version never replaces newer data. "
        "Without --stack it talks to the running local cloud (`sluice local up`).",
    )
    p.add_argument("target", metavar="RUN_ID|s3://BUCKET/KEY")
    add_target_arguments(p)
    p.set_defaults(func=run)


def _source_of_key(conn: Connection, uri: str) -> SourceObject:
    bucket, key = split_uri(uri)
    try:
        head = conn.client("s3").head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise SluiceError(f"{uri}: cannot read the object ({exc})") from exc
    return SourceObject(
        bucket=bucket,
        key=key,
        version_id=head.get("VersionId"),
        etag=str(head.get("ETag", "")).strip('"') or None,
        size=int(head.get("ContentLength", 0)),
    )


def run(args: argparse.Namespace) -> int:
    """Start the rerun; print its run id."""
    conn = connect(args)
    with conn.environment():
        if args.target.startswith("s3://"):
            source = _source_of_key(conn, args.target)
            dataset = run_input_for(source, load_contracts(project_root() / "contracts"))["dataset"]
        else:
            record = DynamoRunTable(conn.resource("RunsTable")).get_run(args.target)
            if record is None or not record.get("source"):
                raise SluiceError(f"no run {args.target!r} in the runs table (see `sluice runs`)")
            source = cast(SourceObject, dict(record["source"]))
            dataset = str(record.get("dataset") or UNKNOWN_DATASET)
            if dataset == UNKNOWN_DATASET:  # a contract may claim the key now
                dataset = run_input_for(source, load_contracts(project_root() / "contracts"))["dataset"]
        started = rerun(source, dataset, StepFunctions(), conn.resource("PipelineStateMachine"))
    print(json.dumps({"run_id": started.run_id, "key": started.key, "dataset": dataset, "started": started.started}))
    return 0
