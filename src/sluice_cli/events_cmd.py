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
from pathlib import Path
from typing import Any

from sluice.errors import SluiceError
from sluice_cli.connection import Connection, add_target_arguments, connect, project_root
from sluice_cli.invoke_cmd import DEFAULT_EVENTS, function_ids
from sluice_cli.seeding import placeholders, read_event

ENV_FILE = "env.json"


def register(subparsers: Any) -> None:
    """Add ``events render``."""
    events = subparsers.add_parser("events", help="the events of events/ with concrete resource names")
    actions = events.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    render_parser = actions.add_parser(
        "render",
        help="write events/*.json with their ${LogicalId} placeholders filled in, and env.json (for sam local invoke)",
    )
    render_parser.add_argument("--out", type=Path, help="folder to write (default: .sluice/events in the project)")
    add_target_arguments(render_parser)  # default: the running local cloud
    render_parser.set_defaults(func=run)


def function_environments(conn: Connection, root: Path) -> dict[str, dict[str, str]]:
    """``{LogicalId: {VAR: value}}``: the environment of each of the template's functions, as deployed."""
    from botocore.exceptions import BotoCoreError, ClientError

    lambda_client = conn.client("lambda")
    result: dict[str, dict[str, str]] = {}
    for fid in function_ids(root):
        if fid not in conn.resources:
            continue
        try:
            config = lambda_client.get_function_configuration(FunctionName=conn.resources[fid])
        except (BotoCoreError, ClientError) as exc:
            raise SluiceError(f"cannot read the configuration of {fid} ({conn.resources[fid]}): {exc}") from exc
        variables = config.get("Environment", {}).get("Variables", {})
        result[fid] = {k: str(v) for k, v in variables.items()}  # Lambda's are strings; moto keeps numbers
    return result


def render(conn: Connection, root: Path, out: Path) -> list[Path]:
    """Write every event of ``events/`` with its placeholders filled in from `conn`, and ``env.json``, to `out`.

    Nothing is written unless every placeholder names a resource of `conn`.

    Returns
    -------
    list[Path]
        The files written, ``env.json`` last.

    """
    events = {path.name: read_event(path, conn.resources) for path in sorted((root / "events").glob("*.json"))}
    missing = sorted(f"${{{lid}}} in {name}" for name, event in events.items() for lid in placeholders(event))
    if missing:
        where = "the local cloud" if conn.local else "the stack"
        raise SluiceError(f"{where} has no resource for {', '.join(missing)}")
    env = function_environments(conn, root)
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
    conn = connect(args, root)
    written = render(conn, root, out)
    source = f"stack {args.stack}" if args.stack else f"the local cloud at {conn.endpoint}"
    print(f"wrote {len(written) - 1} events and {ENV_FILE} to {out} from {source}; for example (needs Docker):")
    event = out / Path(DEFAULT_EVENTS["ValidateFunction"]).name
    print(f"  sam local invoke ValidateFunction -e {event} --env-vars {out / ENV_FILE}")
    return 0
