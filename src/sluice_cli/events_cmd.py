"""``sluice events render``: the events of ``events/`` with concrete resource names.

The event files name resources by ``${LogicalId}`` placeholders, which ``sluice invoke`` fills in
from the local cloud. ``sam local invoke`` (it needs a container runtime such as Docker) takes an
event as it is: this writes every event with its placeholders filled in, from the running local
cloud or from a deployed CloudFormation stack, and beside them ``env.json``, each function's
deployed environment in the shape ``sam local invoke --env-vars`` reads (sam cannot resolve the
template's ``!Ref`` to resources by itself and would leave bucket and table names empty).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.errors import SluiceError
from sluice_cli.connection import Connection, project_root, running
from sluice_cli.invoke_cmd import DEFAULT_EVENTS, function_ids
from sluice_cli.seeding import placeholders, read_event

ENV_FILE = "env.json"


@dataclass(frozen=True)
class Deployment:
    """Where the physical names come from, and the names: every resource's, and the functions'."""

    source: str
    resources: dict[str, str]
    functions: dict[str, str]


def register(subparsers: Any) -> None:
    """Add ``events render``."""
    events = subparsers.add_parser("events", help="the events of events/ with concrete resource names")
    actions = events.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render",
        help="write events/*.json with their ${LogicalId} placeholders filled in, and env.json (for sam local invoke)",
    )
    render.add_argument("--out", type=Path, help="folder to write (default: .sluice/events in the project)")
    render.add_argument(
        "--stack",
        metavar="NAME",
        help="take the names from this deployed CloudFormation stack (credentials and region from the usual "
        "AWS settings: AWS_PROFILE, AWS_REGION, ...); default: the running local cloud",
    )
    render.set_defaults(func=run)


def local_deployment(conn: Connection, root: Path) -> Deployment:
    """The names of the template's resources on a local cloud."""
    functions = {fid: conn.resources[fid] for fid in function_ids(root) if fid in conn.resources}
    return Deployment(f"the local cloud at {conn.endpoint}", dict(conn.resources), functions)


def stack_deployment(cloudformation: Any, stack: str) -> Deployment:
    """The names of a deployed stack's resources (``ListStackResources``: every page, not only 100).

    Raises
    ------
    SluiceError
        The stack cannot be read (it does not exist, no credentials, no region).

    """
    from botocore.exceptions import BotoCoreError, ClientError

    resources: dict[str, str] = {}
    functions: dict[str, str] = {}
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            for item in page["StackResourceSummaries"]:
                physical = item.get("PhysicalResourceId")
                if not physical:
                    continue
                resources[item["LogicalResourceId"]] = physical
                if item["ResourceType"] == "AWS::Lambda::Function":
                    functions[item["LogicalResourceId"]] = physical
    except (BotoCoreError, ClientError) as exc:
        raise SluiceError(f"cannot read the resources of stack {stack!r}: {exc}") from exc
    return Deployment(f"stack {stack}", resources, functions)


def function_environments(lambda_client: Any, deployment: Deployment) -> dict[str, dict[str, str]]:
    """``{LogicalId: {VAR: value}}``: each function's environment as deployed, values as strings."""
    from botocore.exceptions import BotoCoreError, ClientError

    result: dict[str, dict[str, str]] = {}
    for fid, name in sorted(deployment.functions.items()):
        try:
            config = lambda_client.get_function_configuration(FunctionName=name)
        except (BotoCoreError, ClientError) as exc:
            raise SluiceError(f"cannot read the configuration of {fid} ({name}) in {deployment.source}: {exc}") from exc
        variables = config.get("Environment", {}).get("Variables", {})
        result[fid] = {k: str(v) for k, v in variables.items()}  # Lambda's are strings; moto keeps numbers
    return result


def render(deployment: Deployment, lambda_client: Any, events_dir: Path, out: Path) -> list[Path]:
    """Write every event of `events_dir` with its placeholders filled in, and ``env.json``, to `out`.

    Nothing is written unless every placeholder names a resource of `deployment`.

    Returns
    -------
    list[Path]
        The files written, ``env.json`` last.

    """
    events = {path.name: read_event(path, deployment.resources) for path in sorted(events_dir.glob("*.json"))}
    missing = sorted(f"${{{lid}}} in {name}" for name, event in events.items() for lid in placeholders(event))
    if missing:
        raise SluiceError(f"{deployment.source} has no resource for {', '.join(missing)}")
    env = function_environments(lambda_client, deployment)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, event in events.items():
        (out / name).write_text(json.dumps(event, indent=2) + "\n")
        written.append(out / name)
    (out / ENV_FILE).write_text(json.dumps(env, indent=2) + "\n")
    return [*written, out / ENV_FILE]


def run(args: argparse.Namespace) -> int:
    """Render from the running local cloud or from ``--stack``; prints how to use the result."""
    root = project_root()
    out = args.out or root / ".sluice" / "events"
    if args.stack:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            cloudformation, lambda_client = boto3.client("cloudformation"), boto3.client("lambda")
        except BotoCoreError as exc:
            raise SluiceError(f"cannot reach AWS for stack {args.stack!r}: {exc}") from exc
        deployment = stack_deployment(cloudformation, args.stack)
    else:
        conn = running(root)
        deployment = local_deployment(conn, root)
        lambda_client = conn.client("lambda")
    written = render(deployment, lambda_client, root / "events", out)
    print(f"wrote {len(written) - 1} events and {ENV_FILE} ({len(deployment.functions)} functions) to {out}")
    print(f"from {deployment.source}; for example (needs Docker):")
    event = out / Path(DEFAULT_EVENTS["ValidateFunction"]).name
    print(f"  sam local invoke ValidateFunction -e {event} --env-vars {out / ENV_FILE}")
    return 0
