"""``python -m localcloud serve``: run a local cloud in the foreground until SIGTERM/SIGINT.

Used by ``RemoteCloud.spawn`` (the ``local_cloud`` test fixture); ``sluice local up`` is the
friendlier front end. The state file is written once the cloud is ready and removed at exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from localcloud.cloud import LocalCloud
from localcloud.state import DEFAULT_STATE_FILE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localcloud")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local cloud in the foreground")
    serve.add_argument("--project-root", type=Path, default=Path.cwd())
    serve.add_argument("--template", type=Path)
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--stack-name", default="sluice-local")
    serve.add_argument("--region", default="us-east-1")
    serve.add_argument("--artifact", choices=["source", "build"], default="source")
    serve.add_argument("--workers", type=int, default=4)
    serve.add_argument("--log-dir", type=Path)
    serve.add_argument("--state-file", type=Path)
    serve.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until a signal arrives."""
    args = _parser().parse_args(argv)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    state_file: Path = args.state_file or args.project_root / DEFAULT_STATE_FILE
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cloud = LocalCloud(
        args.project_root,
        port=args.port,
        stack_name=args.stack_name,
        region=args.region,
        artifact=args.artifact,
        workers_per_function=args.workers,
        log_dir=args.log_dir,
        template=args.template,
        parameters=parameters,
    )
    try:
        cloud.start()
        cloud.write_state(state_file)
        print(f"local cloud ready at {cloud.endpoint} ({cloud.startup_seconds:.1f} s)", file=sys.stderr, flush=True)
        done.wait()
    finally:
        cloud.stop()
        state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the interpreter's slow teardown of moto's modules (~1 s); all is stopped
