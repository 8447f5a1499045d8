"""Property: the same file gives the same Parquet and the same quarantine whatever the chunking.

Random files mix every shape of the acceptance table (docs/engine.md), null tokens, rows that
break a rule and rows the parser sets aside, at random places. Each is converted once in one
chunk on one thread (the reference), then at a random block size and thread count, and as a
fan-out over random byte ranges: the Parquet files must be byte-identical (a fan-out writes one
file per range, so there the rows are compared, in file order), and the quarantine too.

``SLUICE_FUZZ=N`` runs N examples instead of the CI's 500.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.contracts import Contract, parse_contract
from sluice.engine.transform import ConvertOptions, convert
from sluice.errors import InputRejectedError, RejectThresholdError
from sluice.pipeline.fanout import FanoutSettings, merge_run, plan_run
from sluice.pipeline.landing import land_range, land_run
from sluice.pipeline.payloads import RangeTask, SourceObject, ValidateResult
from sluice.uris import s3_uri
from tests.fakes import MemoryStore
from tests.unit.test_acceptance import SHAPES

EXAMPLES = int(os.environ.get("SLUICE_FUZZ", "500"))
KEY = "t/file.csv"
BUCKETS = {"curated_bucket": "curated", "quarantine_bucket": "quarantine", "work_bucket": "work"}
MERGE = {"quarantine_bucket": "quarantine", "work_bucket": "work"}
RANGE = {"curated_bucket": "curated", "work_bucket": "work"}
STAGED = "staging/run-1/"  # where a run's Parquet waits for its commit
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "required": True, "pattern": "^[A-Z][0-9]{2}$"},
    {"name": "n", "type": "int64", "min": -100},
    {"name": "x", "type": "float64"},
    {"name": "amount", "type": "decimal(10,2)", "max": 100000},
    {"name": "flag", "type": "bool"},
    {"name": "day", "type": "date"},
    {"name": "at", "type": "timestamp"},
    {"name": "grp", "in": ["a", "b", "c", "d"]},
]
TYPE_OF = {c["name"]: c.get("type", "string") for c in COLUMNS}
TYPICAL = {
    "id": st.from_regex(r"[A-Z][0-9]{2}", fullmatch=True),
    "n": st.integers(-200, 10**6).map(str),
    "x": st.floats(allow_nan=False, width=32).map(repr),
    "amount": st.decimals(0, 200000, places=2).map(str),
    "flag": st.sampled_from(["true", "false"]),
    "day": st.dates().map(lambda d: d.isoformat()),
    "at": st.datetimes().map(lambda t: t.isoformat(sep="T") + "Z"),
    "grp": st.sampled_from(["a", "b", "c", "d", "e"]),
}


def contract(partitioned: bool, max_reject_ratio: float) -> Contract:
    data: dict[str, Any] = {
        "dataset": "t",
        "match": {"prefix": "t/"},
        "columns": COLUMNS,
        "max_reject_ratio": max_reject_ratio,
    }
    if partitioned:
        data["partition"] = [{"name": "g", "source": "grp"}]
    return parse_contract(data, "t.yaml")


def quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(ch in value for ch in ',"\r\n') else value


@st.composite
def cell(draw: Any, name: str) -> str:
    kind = draw(st.sampled_from(["typical"] * 6 + ["shape", "null", "text"]))
    if kind == "typical":
        return str(draw(TYPICAL[name]))
    if kind == "null":
        return draw(st.sampled_from(["", "NULL", "NA"]))
    key = TYPE_OF[name]
    if kind == "shape" and key in SHAPES:
        accepted, rejected = SHAPES[key]
        return str(draw(st.sampled_from(accepted + rejected)))
    return str(draw(st.text(alphabet='ab,"é 1-', max_size=5)))


@st.composite
def csv_files(draw: Any) -> bytes:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(c["name"] for c in COLUMNS)]
    for _ in range(draw(st.integers(0, 60))):
        row = [quoted(draw(cell(c["name"]))) for c in COLUMNS]
        broken = draw(st.sampled_from([None] * 12 + ["short", "long", "quote", "nul", "bytes", "blank"]))
        if broken == "short":
            row = row[:-1]
        elif broken == "long":
            row.append("extra")
        elif broken == "quote":
            row[0] = 'A1"x'
        elif broken == "nul":
            row[2] = "1\x00"
        elif broken == "blank":
            lines.append("")
        text = ",".join(row)
        lines.append(text + ("\udcff" if broken == "bytes" else ""))
    body = eol.join(lines) + (eol if draw(st.booleans()) else "")
    return body.encode("utf-8", "surrogateescape")


def outcome(data: bytes, c: Contract, staging: Path, **options: Any) -> tuple[Any, ...]:
    """What a conversion leaves: every Parquet file's bytes, the quarantine's bytes, the counts."""
    shutil.rmtree(staging, ignore_errors=True)
    try:
        result = convert(
            io.BytesIO(data),
            c,
            run_id="run-1",
            source_name="file.csv",
            staging_dir=staging,
            options=ConvertOptions(**options),
        )
    except RejectThresholdError:
        return ("too many rejects",)  # where an early stop happens may depend on the chunking
    except InputRejectedError as exc:
        return ("rejected", str(exc))
    files = {o.key: o.path.read_bytes() for o in result.outputs}
    quarantine = [p.read_bytes() if p else None for p in (result.rejected_path, result.report_path)]
    summary = {k: v for k, v in result.to_summary().items() if k not in ("outputs", "rejected_path", "report_path")}
    return ("ok", files, quarantine, summary)


def validated(data: bytes) -> ValidateResult:
    return ValidateResult(
        run_id="run-1",
        dataset="t",
        contract_version=1,
        source=SourceObject(bucket="raw", key=KEY, version_id="v1", etag="e", size=len(data)),
        mode="fanout",
        started_at="2026-11-23T10:00:00.000+00:00",
    )


def rows_by_partition(store: MemoryStore) -> dict[str, list[dict[str, Any]]]:
    """Staged rows per partition directory, files in order (a fan-out numbers them by range)."""
    files = sorted(
        (k.rsplit("/", 1)[0], int(k.rsplit("-", 1)[1].split(".")[0]), v)
        for (b, k), v in store.objects.items()
        if b == "work" and k.startswith(STAGED)
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for directory, _, body in files:
        rows.setdefault(directory, []).extend(pq.read_table(io.BytesIO(body)).to_pylist())
    return rows


def quarantine_objects(store: MemoryStore) -> dict[str, bytes]:
    return {k: v for (b, k), v in store.objects.items() if b == "quarantine"}


def pipeline(data: bytes, c: Contract, root: Path, range_bytes: int | None) -> tuple[Any, ...]:
    """Land the file on one worker (`range_bytes` None) or fanned out over ranges of that size."""
    shutil.rmtree(root, ignore_errors=True)
    store = MemoryStore()
    store.put("raw", KEY, data)
    try:
        if range_bytes is None:
            result = dict(land_run(validated(data), c, store, staging_root=root, **BUCKETS))
        else:
            planned = plan_run(validated(data), c, store, work_bucket="work", settings=FanoutSettings(range_bytes, 4))
            plan = planned["plan"]
            base = {k: planned[k] for k in ("run_id", "dataset", "contract_version", "source", "started_at")}  # type: ignore[literal-required]
            for r in store.get_json(s3_uri(plan["bucket"], plan["key"])):
                task = RangeTask(**base, plan=plan, range=r)  # type: ignore[typeddict-item]
                land_range(task, c, store, **RANGE, staging_root=root / "ranges")
            result = dict(merge_run(planned, c, store, staging_root=root / "merge", **MERGE))
    except RejectThresholdError:
        return ("too many rejects",)
    except InputRejectedError:
        return ("rejected",)  # a range's message names the range
    counts = {k: result[k] for k in ("rows_in", "rows_out", "rows_rejected", "bytes_in")}
    return ("ok", counts, repr(rows_by_partition(store)), quarantine_objects(store))  # repr: NaN equals NaN


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("chunking")


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    data=csv_files(),
    partitioned=st.booleans(),
    ratio=st.sampled_from([1.0, 1.0, 0.3]),
    block=st.integers(16, 2048),
    threads=st.integers(1, 4),
    cuts=st.integers(2, 6),
)
def test_the_answer_does_not_depend_on_the_chunking(scratch, data, partitioned, ratio, block, threads, cuts):
    c = contract(partitioned, ratio)
    reference = outcome(data, c, scratch / "one", block_size=1 << 20, threads=1)
    chunked = outcome(data, c, scratch / "chunked", block_size=block, threads=threads)
    assert chunked == reference
    one = pipeline(data, c, scratch / "single", None)
    fanned = pipeline(data, c, scratch / "fan", max(1, len(data) // cuts))
    assert fanned == one
    if reference[0] == "ok":
        assert one[0] == "ok" and one[1]["rows_out"] == reference[3]["rows_out"]


def test_a_chunk_of_exponents_and_one_bad_row_keeps_every_exponent(tmp_path):
    """The issue's case: whether `1e3` was a decimal depended on a bad row elsewhere in its chunk."""
    rows = [f"A{i % 100:02d},1,1.5,{i % 9 + 1}e3,true,2024-01-01,2024-01-01T05Z,a" for i in range(3000)]
    rows[1700] = rows[1700].replace(",1,", ",x,", 1)  # one plainly bad value
    data = ("\n".join([",".join(c["name"] for c in COLUMNS), *rows]) + "\n").encode()
    c = contract(False, 1.0)
    results = [outcome(data, c, tmp_path / str(b), block_size=b, threads=2) for b in (1 << 12, 1 << 14, 1 << 20)]
    assert all(r == results[0] for r in results)
    assert results[0][3]["rows_out"] == 2999 and results[0][3]["rejects_by_rule"] == {"n.type": 1}


def test_pyarrow_can_read_what_the_fuzz_files_are_made_of():
    """Guard for the generator: the typical values are valid, so most rows load."""
    assert pa.array(["2024-01-01T05:00:00Z"]).cast(pa.timestamp("us", tz="UTC")).null_count == 0
    assert json.dumps(SHAPES)
