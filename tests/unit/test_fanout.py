"""Fan-out with the in-memory fakes: planning line-aligned ranges, landing them, merging the parts.

The reference everywhere is the single-worker path (``land_run``) on the same bytes: a fan-out
must produce exactly its rows, quarantine, counts and aggregates.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Contract, load_contracts
from sluice.errors import InputRejectedError, RejectThresholdError
from sluice.pipeline import fanout
from sluice.pipeline.fanout import (
    FanoutIncompleteError,
    FanoutSettings,
    line_offsets,
    merge_run,
    plan_ranges,
    plan_run,
    read_file_head,
    shift_message,
)
from sluice.pipeline.landing import land_range, land_run
from sluice.pipeline.layout import part_manifest_key, range_output_key
from sluice.pipeline.payloads import PlanResult, RangeTask, SourceObject, ValidateResult
from sluice.pipeline.preflight import fanout_blocker, validate_run
from sluice.uris import s3_uri
from tests import fanout_data
from tests.fakes import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
KEY = "fanout_orders/big.csv"
BUCKETS = {"curated_bucket": "curated", "quarantine_bucket": "quarantine", "work_bucket": "work"}
MERGE = {"quarantine_bucket": "quarantine", "work_bucket": "work"}
RANGE = {"curated_bucket": "curated", "work_bucket": "work"}


def validated(data: bytes, key: str = KEY, run_id: str = "run-1") -> ValidateResult:
    return ValidateResult(
        run_id=run_id,
        dataset=fanout_data.DATASET,
        contract_version=1,
        source=SourceObject(bucket="raw", key=key, version_id="v1", etag="e", size=len(data)),
        mode="fanout",
        started_at="2026-11-23T10:00:00.000+00:00",
    )


def range_tasks(store: MemoryStore, planned: PlanResult) -> list[RangeTask]:
    plan = planned["plan"]
    ranges = store.get_json(s3_uri(plan["bucket"], plan["key"]))
    base = {k: planned[k] for k in ("run_id", "dataset", "contract_version", "source", "started_at")}  # type: ignore[literal-required]
    return [RangeTask(**base, plan=plan, range=r) for r in ranges]  # type: ignore[typeddict-item]


def fan_out(
    data: bytes, contract: Contract, tmp_path: Path, range_bytes: int, *, order_seed: int | None = None
) -> tuple[MemoryStore, PlanResult, dict[str, Any]]:
    """Plan, land every range (in a shuffled order when `order_seed` is given), merge."""
    store = MemoryStore()
    store.put("raw", KEY, data)
    planned = plan_run(validated(data), contract, store, work_bucket="work", settings=FanoutSettings(range_bytes, 4))
    tasks = range_tasks(store, planned)
    if order_seed is not None:
        random.Random(order_seed).shuffle(tasks)
    for task in tasks:
        land_range(task, contract, store, **RANGE, staging_root=tmp_path / "ranges")
    result = merge_run(planned, contract, store, staging_root=tmp_path / "merge", **MERGE)
    return store, planned, dict(result)


def single(data: bytes, contract: Contract, tmp_path: Path) -> tuple[MemoryStore, dict[str, Any]]:
    store = MemoryStore()
    store.put("raw", KEY, data)
    result = land_run(validated(data), contract, store, staging_root=tmp_path / "single", **BUCKETS)
    return store, dict(result)


def staged(store: MemoryStore) -> dict[str, bytes]:
    """The Parquet a run staged for its commit, by curated key."""
    prefix = "staging/run-1/"
    return {k[len(prefix) :]: v for (b, k), v in sorted(store.objects.items()) if b == "work" and k.startswith(prefix)}


def curated_rows(store: MemoryStore) -> list[dict[str, Any]]:
    """Rows of the files the commit would publish (no commit here: see test_commit.py)."""
    tables = [pq.read_table(io.BytesIO(v)) for v in staged(store).values()]
    if not tables:
        return []
    rows = pa.concat_tables(tables).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def work_json(store: MemoryStore, key: str) -> Any:
    return json.loads(store.objects[("work", key)])


def assert_same_run(fan: MemoryStore, fan_result: dict[str, Any], one: MemoryStore, one_result: dict[str, Any]) -> None:
    counts = ("rows_in", "rows_out", "rows_rejected", "bytes_in")
    assert {k: fan_result[k] for k in counts} == {k: one_result[k] for k in counts}
    assert fan_result["quarantine_uri"] == one_result["quarantine_uri"]
    fan_manifest, one_manifest = work_json(fan, "runs/run-1/manifest.json"), work_json(one, "runs/run-1/manifest.json")
    for key in ("rows_in", "rows_out", "rows_rejected", "bytes_in", "blank_lines", "rejects_by_rule", "schema"):
        assert fan_manifest[key] == one_manifest[key], key
    assert set(fan_manifest) >= set(one_manifest)
    assert curated_rows(fan) == curated_rows(one)
    partitions = {json.dumps(o["partition"]) for o in fan_manifest["outputs"]}
    assert partitions == {json.dumps(o["partition"]) for o in one_manifest["outputs"]}
    quarantine = sorted(k for b, k in one.objects if b == "quarantine")
    assert sorted(k for b, k in fan.objects if b == "quarantine") == quarantine
    for key in quarantine:  # rejected.csv byte for byte (file-wide _line, messages), report.json too
        assert fan.objects[("quarantine", key)] == one.objects[("quarantine", key)], key
    if "partials_uri" in one_result:
        assert work_json(fan, "runs/run-1/partials.json") == work_json(one, "runs/run-1/partials.json")
    assert not [k for b, k in fan.objects if b == "work" and k.startswith("parts/")], "staged parts are deleted"


# ---------------------------------------------------------------------------------------- planning
def source_of(data: bytes) -> SourceObject:
    return SourceObject(bucket="raw", key=KEY, version_id="v1", size=len(data))


def cut(data: bytes, range_bytes: int, data_start: int = 0) -> list[bytes]:
    store = MemoryStore()
    store.put("raw", KEY, data)
    ranges = plan_ranges(store, source_of(data), len(data), data_start, range_bytes)
    assert [r["index"] for r in ranges] == list(range(len(ranges)))
    assert ranges[0]["start"] == data_start and ranges[-1]["end"] == len(data)
    for a, b in itertools.pairwise(ranges):
        assert a["end"] == b["start"] and a["start"] < a["end"]
        assert data[b["start"] - 1 : b["start"]] == b"\n", "every range starts on a line"
    pieces = [data[r["start"] : r["end"]] for r in ranges]
    assert b"".join(pieces) == data[data_start:], "no byte lost or read twice"
    return pieces


@pytest.mark.parametrize("range_bytes", [1, 5, 17, 64, 100, 1000, 10**6])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ranges_start_on_lines_and_cover_every_byte_once(range_bytes, newline):
    data = fanout_data.orders_csv(40, newline=newline)
    header = len(fanout_data.HEADER) + len(newline)
    pieces = cut(data, range_bytes, header)
    if range_bytes >= len(data):
        assert len(pieces) == 1
    if newline == "\r\n":
        assert all(p.endswith(b"\r\n") for p in pieces), "a CRLF is never split"
    assert len(pieces) <= max(1, -(-len(data) // range_bytes))


def test_target_on_a_line_start_is_a_boundary_and_long_lines_swallow_targets():
    data = b"aaaa\nbbbb\n" + b"c" * 50 + b"\nd\n"
    assert cut(data, 5) == [b"aaaa\n", b"bbbb\n", b"c" * 50 + b"\n", b"d\n"]


def test_tiny_last_range_is_kept_and_no_range_is_empty():
    data = b"x" * 99 + b"\n" + b"y\n"  # the target 100 falls on the last line's start
    assert cut(data, 100) == [b"x" * 99 + b"\n", b"y\n"]
    data = b"x" * 99 + b"\n" + b"yz"  # no final newline, target inside the last line
    assert cut(data, 101) == [data]


def test_cr_only_files_get_one_range():
    data = fanout_data.orders_csv(60, newline="\r")
    assert len(cut(data, 50, len(fanout_data.HEADER) + 1)) == 1


def test_no_lf_near_a_target_stops_cutting(monkeypatch):
    monkeypatch.setattr(fanout, "MAX_SCAN", 30)
    monkeypatch.setattr(fanout, "WINDOW", 10)
    data = b"a\n" + b"b" * 100 + b"\nc\n"
    assert cut(data, 2) == [b"a\n", data[2:]]


def test_small_windows_extend_until_a_line_break(monkeypatch):
    monkeypatch.setattr(fanout, "WINDOW", 3)
    data = b"a\n" + b"b" * 20 + b"\n" + b"c" * 7 + b"\nd\n"
    assert cut(data, 4) == [b"a\n" + b"b" * 20 + b"\n", b"c" * 7 + b"\n", b"d\n"]


def test_header_end_found_like_convert_reads_it(monkeypatch):
    monkeypatch.setattr(fanout, "WINDOW", 7)  # the header spans several ranged reads
    contract = fanout_data.contract(dialect={"skip_rows": 2})
    body = fanout_data.orders_csv(3, header=False)
    data = b"exported by shop\r\nat 10:00\r\n\r\n\n" + fanout_data.HEADER.encode() + b"\r\n" + body
    store = MemoryStore()
    store.put("raw", KEY, data)
    head = read_file_head(store, source_of(data), len(data), contract)
    assert head.cells == tuple(fanout_data.HEADER.split(","))
    assert (head.lines, head.leading_blank_lines) == (5, 2)
    assert data[head.data_start :] == body


def test_header_with_bom_and_without_header():
    store = MemoryStore()
    data = b"\xef\xbb\xbf" + fanout_data.orders_csv(3)
    store.put("raw", KEY, data)
    head = read_file_head(store, source_of(data), len(data), fanout_data.contract())
    assert data[head.data_start :] == fanout_data.orders_csv(3)[len(fanout_data.HEADER) + 1 :]
    body = fanout_data.orders_csv(3, header=False)
    store.put("raw", KEY, b"\xef\xbb\xbf" + body)
    no_header = fanout_data.contract(dialect={"header": False})
    head = read_file_head(store, source_of(b"\xef\xbb\xbf" + body), len(body) + 3, no_header)
    assert (head.cells, head.lines, head.data_start) == ((), 0, 3)


def test_header_mismatch_is_rejected_by_plan():
    data = fanout_data.orders_csv(3).replace(b"customer_id", b"customer", 1)
    store = MemoryStore()
    store.put("raw", KEY, data)
    with pytest.raises(InputRejectedError, match="header does not match"):
        plan_run(validated(data), fanout_data.contract(), store, work_bucket="work", settings=FanoutSettings())


def test_plan_writes_the_items_and_passes_the_run_on(monkeypatch):
    monkeypatch.setattr(fanout, "WINDOW", 512)
    data = fanout_data.orders_csv(200)
    store = MemoryStore()
    store.put("raw", KEY, data)
    run = validated(data)
    planned = plan_run(run, fanout_data.contract(), store, work_bucket="work", settings=FanoutSettings(2000, 3))
    assert {k: planned[k] for k in run} == run  # type: ignore[literal-required]
    plan = planned["plan"]
    items = work_json(store, "plans/run-1/ranges.json")
    assert plan["ranges"] == len(items) >= 4 and plan["max_concurrency"] == 3
    assert plan["header"] == fanout_data.HEADER.split(",") and plan["header_lines"] == 1
    assert items[0] == {"index": 0, "start": plan["header_bytes"], "end": items[1]["start"]}
    reads = [r for r in store.range_reads if r[0] == "raw"]
    assert sum(end - start for _, _, start, end in reads) < len(data) / 2, "plan reads a little of the file"


# ---------------------------------------------------------------------------------------- fan-out == single worker
@pytest.mark.parametrize("range_bytes", [700, 4096, 30_000])
def test_fanout_yields_exactly_the_single_worker_run(tmp_path, range_bytes):
    data = fanout_data.orders_csv(1500)
    contract = fanout_data.contract()
    fan, planned, fan_result = fan_out(data, contract, tmp_path, range_bytes, order_seed=range_bytes)
    one, one_result = single(data, contract, tmp_path)
    assert planned["plan"]["ranges"] == -(-len(data) // range_bytes) or range_bytes == 30_000
    assert one_result["rows_rejected"] > 50
    assert_same_run(fan, fan_result, one, one_result)
    assert not [k for b, k in fan.objects if b == "curated"], "nothing is visible before the commit"
    keys = sorted(staged(fan))
    assert all(k.rsplit("/", 1)[-1].startswith("run-1-") for k in keys)
    assert len({k.rsplit("-", 1)[-1] for k in keys}) > 1, "files named per range: <run_id>-<index>.parquet"


@pytest.mark.parametrize(
    ("over", "options"),
    [
        ({"dialect": {"encoding": "cp1252"}}, {"encoding": "cp1252"}),
        ({"dialect": {"header": False, "skip_rows": 1}}, {"header": False, "preamble": "orders export\n"}),
        ({"dialect": {"skip_rows": 1}}, {"preamble": "orders export\n", "newline": "\r\n", "final_newline": False}),
        ({"aggregates": None, "partition": []}, {"blank_every": 5}),
    ],
)
def test_fanout_matches_single_worker_across_dialects(tmp_path, over, options):
    data = fanout_data.orders_csv(400, **options)
    contract = fanout_data.contract(**over)
    fan, _, fan_result = fan_out(data, contract, tmp_path, 900)
    one, one_result = single(data, contract, tmp_path)
    assert_same_run(fan, fan_result, one, one_result)


@pytest.mark.parametrize(
    "options",
    [
        {"blank_every": 3},
        {"blank_every": 2, "newline": "\r\n", "final_newline": False},
        {"bad_every": 2, "blank_every": 4, "newline": "\r\n"},
    ],
)
def test_every_cut_of_a_small_file_matches_the_single_worker(tmp_path, options):
    data = (
        fanout_data.orders_csv(24, **options)
        .replace(b"paid\n", b"paid\n\n\n", 1)
        .replace(b"paid\r\n", b"paid\r\n\r\n", 1)
    )
    contract = fanout_data.contract(max_reject_ratio=1.0)
    one, one_result = single(data, contract, tmp_path)
    for range_bytes in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987):
        fan, _, fan_result = fan_out(data, contract, tmp_path / str(range_bytes), range_bytes)
        assert_same_run(fan, fan_result, one, one_result)


def test_rejected_lines_are_physical_lines_of_the_file(tmp_path):
    data = fanout_data.orders_csv(300, blank_every=7)
    fan, _, _ = fan_out(data, fanout_data.contract(), tmp_path, 500)
    text = data.decode().split("\n")
    rejected = fan.objects[("quarantine", "fanout_orders/run-1/rejected.csv")].decode()
    rows = list(csv.DictReader(io.StringIO(rejected, newline="")))
    assert rows and all(text[int(r["_line"]) - 1] == r["_text"] for r in rows)
    assert all(f"line {r['_line']}" in r["_message"] for r in rows)


# ---------------------------------------------------------------------------------------- merge
def test_line_offsets_and_messages():
    assert line_offsets(1, [10, 0, 5, 3]) == [1, 11, 11, 16]
    assert shift_message("s3://b/k line 3, column x: bad", "s3://b/k", 3, 42) == "s3://b/k line 42, column x: bad"
    assert shift_message("other text", "s3://b/k", 3, 42) == "other text"
    assert range_output_key("d/p=1/r-0.parquet", "r", 7) == "d/p=1/r-7.parquet"
    with pytest.raises(ValueError):
        range_output_key("d/p=1/x-0.parquet", "r", 7)


def planned_and_landed(tmp_path: Path, data: bytes, contract: Contract) -> tuple[MemoryStore, PlanResult]:
    store = MemoryStore()
    store.put("raw", KEY, data)
    planned = plan_run(validated(data), contract, store, work_bucket="work", settings=FanoutSettings(1000, 4))
    for task in range_tasks(store, planned):
        land_range(task, contract, store, **RANGE, staging_root=tmp_path)
    return store, planned


def test_merge_refuses_a_missing_part(tmp_path):
    store, planned = planned_and_landed(tmp_path, fanout_data.orders_csv(200), fanout_data.contract())
    del store.objects[("work", part_manifest_key("run-1", 2))]
    with pytest.raises(FanoutIncompleteError, match=r"1 of \d+ byte ranges left no part \(ranges 2\)"):
        merge_run(planned, fanout_data.contract(), store, staging_root=tmp_path, **MERGE)
    assert not [k for b, k in store.objects if b in ("curated", "quarantine")]
    assert ("work", "runs/run-1/manifest.json") not in store.objects, "no manifest: the run cannot commit"


def test_merge_applies_the_threshold_to_the_whole_file(tmp_path):
    data = fanout_data.orders_csv(200, bad_every=4)  # 25 % of rows are bad; each range alone may be fine
    contract = fanout_data.contract()
    store, planned = planned_and_landed(tmp_path, data, contract)
    with pytest.raises(RejectThresholdError) as info:
        merge_run(planned, contract, store, staging_root=tmp_path, **MERGE)
    assert "s3://quarantine/fanout_orders/run-1/report.json" in str(info.value)
    assert not [k for b, k in store.objects if b == "curated"]
    assert not [k for b, k in store.objects if b == "work" and k.startswith("parts/")]
    with pytest.raises(RejectThresholdError) as single_info:
        single(data, contract, tmp_path)
    one = MemoryStore()
    one.put("raw", KEY, data)
    with pytest.raises(RejectThresholdError):
        land_run(validated(data), contract, one, staging_root=tmp_path / "s", **BUCKETS)
    for key in ("fanout_orders/run-1/rejected.csv", "fanout_orders/run-1/report.json"):
        assert store.objects[("quarantine", key)] == one.objects[("quarantine", key)]
    same = ". Nothing was loaded"
    assert str(info.value).split(same)[0] == str(single_info.value).split(same)[0]


def test_merge_twice_returns_the_same_result(tmp_path):
    store, planned = planned_and_landed(tmp_path, fanout_data.orders_csv(300), fanout_data.contract())
    first = merge_run(planned, fanout_data.contract(), store, staging_root=tmp_path, **MERGE)
    files = staged(store)
    again = merge_run(planned, fanout_data.contract(), store, staging_root=tmp_path, **MERGE)
    assert {**again, "duration_ms": 0} == {**first, "duration_ms": 0}
    assert staged(store) == files


def test_merge_after_a_partial_cleanup_finishes_it(tmp_path):
    store, planned = planned_and_landed(tmp_path, fanout_data.orders_csv(300), fanout_data.contract())
    parts = {k: v for k, v in store.objects.items() if k[0] == "work" and k[1].startswith("parts/")}
    first = merge_run(planned, fanout_data.contract(), store, staging_root=tmp_path, **MERGE)
    store.objects.update(dict(list(parts.items())[:3]))  # the previous attempt died while deleting
    again = merge_run(planned, fanout_data.contract(), store, staging_root=tmp_path, **MERGE)
    assert again["rows_in"] == first["rows_in"]
    assert not [k for b, k in store.objects if b == "work" and k.startswith("parts/")]


def test_a_retried_range_replaces_its_part(tmp_path):
    data = fanout_data.orders_csv(300)
    contract = fanout_data.contract()
    store, planned = planned_and_landed(tmp_path, data, contract)
    task = range_tasks(store, planned)[1]
    stale = "staging/run-1/fanout_orders/order_date=1999-01-01/run-1-1.parquet"
    store.put("work", stale, b"stale")
    store.put("work", "parts/run-1/1/rejected.csv", b"stale")
    land_range(task, contract, store, **RANGE, staging_root=tmp_path)
    assert ("work", stale) not in store.objects
    result = merge_run(planned, contract, store, staging_root=tmp_path, **MERGE)
    one, one_result = single(data, contract, tmp_path)
    assert_same_run(store, dict(result), one, one_result)


@pytest.mark.parametrize("cut_after_quoted_break", [False, True])
def test_a_file_both_paths_reject_fails_the_fanout_naming_the_range(tmp_path, cut_after_quoted_break):
    data = fanout_data.with_quoted_line_break(100, 50)
    contract = fanout_data.contract()
    with pytest.raises(InputRejectedError, match="quoted value contains a line break"):
        single(data, contract, tmp_path)
    store = MemoryStore()
    store.put("raw", KEY, data)
    quoted_break = data.index(b'"C-0001\n') + len(b'"C-0001\n')
    range_bytes = quoted_break if cut_after_quoted_break else 1000
    planned = plan_run(validated(data), contract, store, work_bucket="work", settings=FanoutSettings(range_bytes, 4))
    if cut_after_quoted_break:  # Plan cannot see quotes: a range starts inside the record
        assert quoted_break in [t["range"]["start"] for t in range_tasks(store, planned)]
    failed = []
    for task in range_tasks(store, planned):
        try:
            land_range(task, contract, store, **RANGE, staging_root=tmp_path)
        except InputRejectedError as exc:
            failed.append(task["range"]["index"])
            assert f"byte range {task['range']['index'] + 1} of {planned['plan']['ranges']}" in str(exc)
    assert len(failed) == 1
    with pytest.raises(FanoutIncompleteError, match=rf"\(ranges {failed[0]}\)"):
        merge_run(planned, contract, store, staging_root=tmp_path, **MERGE)


# ---------------------------------------------------------------------------------------- the decision
def test_only_splittable_contracts_fan_out():
    assert fanout_blocker(fanout_data.contract()) is None
    assert "newlines_in_values" in str(fanout_blocker(fanout_data.contract(dialect={"newlines_in_values": True})))
    assert "utf-16" in str(fanout_blocker(fanout_data.contract(dialect={"encoding": "utf-16"})))
    orders = {c.dataset: c for c in load_contracts(ROOT / "contracts")}["orders"]
    assert "order_id" in str(fanout_blocker(orders))


def test_validate_fans_out_big_splittable_files_only():
    data = fanout_data.orders_csv(50)
    store = MemoryStore()
    store.put("raw", KEY, data)
    run = {"run_id": "r", "dataset": "x", "source": {"bucket": "raw", "key": KEY}, "received_at": "now"}
    contracts = (fanout_data.contract(),)
    assert validate_run(run, contracts, store, len(data) - 1)["mode"] == "fanout"  # type: ignore[arg-type]
    assert validate_run(run, contracts, store, len(data))["mode"] == "single"  # type: ignore[arg-type]
    unique = fanout_data.contract(columns=[{"name": "order_id", "unique": True}], partition=[], aggregates=None)
    assert fanout_blocker(unique) is not None


def test_compressed_files_never_fan_out():
    import gzip

    data = gzip.compress(fanout_data.orders_csv(50))
    store = MemoryStore()
    store.put("raw", KEY + ".gz", data)
    run = {"run_id": "r", "dataset": "x", "source": {"bucket": "raw", "key": KEY + ".gz"}, "received_at": "now"}
    assert validate_run(run, (fanout_data.contract(),), store, 1)["mode"] == "single"  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["drop", "keep"])
def test_fanout_matches_single_worker_on_a_reordered_header_with_an_extra_column(tmp_path, policy):
    """Each range reads its columns by the plan's header, as the single worker does (sluice.engine.drift)."""
    rows = list(csv.reader(io.StringIO(fanout_data.orders_csv(300).decode(), newline="")))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, cells in enumerate(r for r in rows if r):
        writer.writerow([*cells[1:], cells[0], "extra" if i == 0 else f"x{i}"])
    data = out.getvalue().encode()
    contract = fanout_data.contract(drift={"extra_columns": policy})
    fan, _, fan_result = fan_out(data, contract, tmp_path, 700)
    one, one_result = single(data, contract, tmp_path)
    assert_same_run(fan, fan_result, one, one_result)
    landed = curated_rows(one)
    assert landed and ("extra" in landed[0]) == (policy == "keep")
