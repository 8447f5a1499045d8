"""What every peer script shares: its command line, the contract's column types, its JSON result line.

Kept free of heavy imports (no sluice, no pyarrow) so it adds nothing to a peer's time or memory.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class PeerArgs:
    source: Path
    out_dir: Path
    types: str
    contract: Path | None
    extra: dict[str, str]


def parse_args(description: str, argv: Sequence[str] | None = None, *, extra: Sequence[str] = ()) -> PeerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("source", type=Path, help="CSV file")
    parser.add_argument("out_dir", type=Path, help="directory for the Parquet output (created)")
    parser.add_argument(
        "--types",
        choices=("infer", "contract"),
        default="infer",
        help="infer: the tool's own type inference (the usual recipe); contract: the contract's column types",
    )
    parser.add_argument("--contract", type=Path, help="contract YAML (needed by --types contract and by sluice)")
    for name in extra:
        parser.add_argument(f"--{name}")
    ns = parser.parse_args(argv)
    if ns.types == "contract" and ns.contract is None:
        parser.error("--types contract needs --contract")
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    values = {name: getattr(ns, name.replace("-", "_")) for name in extra}
    return PeerArgs(ns.source, ns.out_dir, ns.types, ns.contract, {k: v for k, v in values.items() if v is not None})


def contract_columns(path: Path) -> list[tuple[str, str, tuple[int, int] | None]]:
    """``(name, type, (precision, scale) or None)`` for each contract column, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    columns = []
    for col in data["columns"]:
        kind = str(col.get("type", "string")).strip().lower().replace(" ", "")
        m = _DECIMAL.match(kind)
        columns.append(
            (
                col.get("source") or col["name"],
                "decimal" if m else kind,
                (int(m.group(1)), int(m.group(2))) if m else None,
            )
        )
    return columns


class Stopwatch:
    """Seconds since the peer finished importing its engine (the process wall time includes imports)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def report(self, engine: str, **fields: Any) -> None:
        print(json.dumps({"engine": engine, "seconds": round(time.perf_counter() - self.start, 3), **fields}))
        sys.stdout.flush()
