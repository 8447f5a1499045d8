"""Entry point of the ``sluice`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sluice.errors import SluiceError

# Each module adds its commands with `register(subparsers)`; a command sets `func(args) -> int`.
COMMAND_MODULES = (
    "sluice_cli.demo_cmd",
    "sluice_cli.local_cmd",
    "sluice_cli.invoke_cmd",
    "sluice_cli.events_cmd",
    "sluice_cli.runs_cmd",
    "sluice_cli.rerun_cmd",
    "sluice_cli.cleanup_cmd",
    "sluice_cli.redrive_cmd",
    "sluice_cli.load_cmd",
    "sluice_cli.query_cmd",
    "sluice_cli.aggregates_cmd",
    "sluice_cli.convert_cmd",
    "sluice_cli.tune_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Land CSV files as clean, queryable Parquet - and run the whole pipeline locally.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors sluice expects print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SluiceError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
