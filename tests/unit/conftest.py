"""Helpers for the transform-engine tests: build contracts, run `convert` on bytes, read the results back."""

from __future__ import annotations

import csv
import io
import itertools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from sluice.contracts import Contract, parse_contract
from sluice.engine.infer import infer_contract
from sluice.engine.partitioning import WriterOptions
from sluice.engine.transform import ConvertOptions, ConvertResult, convert

_counter = itertools.count()


def build_contract(columns: list[dict[str, Any]] | list[str], **over: Any) -> Contract:
    """A contract over `columns` (names alone mean string columns); `over` sets top-level keys."""
    cols = [{"name": c} if isinstance(c, str) else c for c in columns]
    dialect = over.pop("dialect", {})
    data = {"dataset": "t", "match": {"prefix": "t/"}, "columns": cols, "dialect": dialect, **over}
    return parse_contract(data, "test.yaml")


class Trickle(io.RawIOBase):
    """A non-seekable stream that hands out at most `step` bytes per read (like a network body)."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@dataclass
class Converted:
    result: ConvertResult
    rows: list[dict[str, Any]]
    rejected: list[dict[str, str]]
    staging: Path

    def column(self, name: str) -> list[Any]:
        return [r[name] for r in self.rows]


def read_rows(result: ConvertResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for out in sorted(result.outputs, key=lambda o: o.key):
        table = pq.read_table(out.path)
        assert table.num_rows == out.rows
        rows.extend(table.to_pylist())
    return rows


def read_rejected(result: ConvertResult) -> list[dict[str, str]]:
    if result.rejected_path is None:
        return []
    with result.rejected_path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def convert_options(**options: Any) -> ConvertOptions:
    """`ConvertOptions` from flat keyword arguments: those naming a `WriterOptions` field go to ``writer``."""
    writer = {f.name for f in fields(WriterOptions)}
    return ConvertOptions(
        **{k: v for k, v in options.items() if k not in writer},
        writer=WriterOptions(**{k: v for k, v in options.items() if k in writer}),
    )


def convert_bytes(
    data: bytes,
    contract: Contract,
    tmp_path: Path,
    *,
    step: int | None = None,
    observers: Any = (),
    progress: Any = None,
    **options: Any,
) -> Converted:
    """Convert `data` (through a non-seekable trickle when `step` is given) and read everything back."""
    staging = tmp_path / f"staging-{next(_counter)}"
    source: Any = io.BufferedReader(Trickle(data, step)) if step else io.BytesIO(data)
    result = convert(
        source,
        contract,
        run_id="run-1",
        source_name="s3://raw/t/file.csv (version v1)",
        staging_dir=staging,
        observers=observers,
        options=convert_options(**options),
        progress=progress,
    )
    assert result.rows_in == result.rows_out + result.rows_rejected
    converted = Converted(result, read_rows(result), read_rejected(result), staging)
    assert len(converted.rows) == result.rows_out
    assert len(converted.rejected) == result.rows_rejected
    return converted


def infer_and_convert(data: bytes, tmp_path: Path, name: str = "file.csv") -> tuple[Contract, Converted]:
    """What `sluice contract infer` then `sluice convert` do with `data`: the contract and everything read back.

    Small parse blocks (4 KiB), so that inputs of a few KiB already cross block boundaries.
    """
    inference = infer_contract(io.BytesIO(data), source_name=name, file_stem=name.rsplit(".", 1)[0])
    contract = parse_contract(inference.contract, "inferred")
    return contract, convert_bytes(data, contract, tmp_path, block_size=4096)


@pytest.fixture
def make_contract() -> Any:
    """`make_contract(columns, **top_level)`: a contract (plain names are string columns)."""
    return build_contract


@pytest.fixture
def run_convert(tmp_path: Path) -> Any:
    """`run_convert(data, contract, step=None, observers=(), progress=None, **ConvertOptions)` -> Converted."""

    def run(data: bytes, contract: Contract, **kw: Any) -> Converted:
        return convert_bytes(data, contract, tmp_path, **kw)

    return run


@pytest.fixture
def orders_contract() -> Contract:
    from sluice.contracts import load_contract

    return load_contract(REPO / "contracts" / "orders.yaml")


REPO = Path(__file__).parents[2]
# The external corpus of real-world CSVs (shared/corpus beside the checkout, or SLUICE_CORPUS): an
# extra. A fresh clone has nothing beside it; its tests then skip, for this one reason.
CORPUS = Path(os.environ.get("SLUICE_CORPUS") or REPO.parent / "shared" / "corpus")
CORPUS_ABSENT = f"external corpus not found at {CORPUS} (shared/corpus beside the checkout, or set SLUICE_CORPUS)"


def require_corpus() -> None:
    """Skip the calling test when the corpus is absent; fail it instead when SLUICE_REQUIRE_CORPUS is set (CI)."""
    if (CORPUS / "manifest.json").is_file():
        return
    if os.environ.get("SLUICE_REQUIRE_CORPUS"):
        pytest.fail(f"{CORPUS_ABSENT}, and SLUICE_REQUIRE_CORPUS is set", pytrace=False)
    pytest.skip(CORPUS_ABSENT)
