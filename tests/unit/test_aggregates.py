"""Partial aggregates: exact values, mergeable sketches, Arrow and row-event paths, record formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.aggregates.partials import PartialAggregator
from sluice.aggregates.records import (
    BATCH_BYTES,
    PartialBatch,
    PoisonRecordError,
    RowsUpdate,
    batch_records,
    combine_partials,
    decode_record,
    encode_record,
    partial_from_json,
    prepare_publication,
    source_id,
)
from sluice.aggregates.sketches import EXACT_LIMIT, DistinctSketch, SketchError
from sluice.aggregates.spec import AggregateSpec, fold_row, parse_row
from sluice.aggregates.values import ItemKey, Values
from sluice.contracts import load_contract, parse_contract
from sluice.engine.rules import contract_schema
from sluice.errors import ContractError

ORDERS_V1 = load_contract("contracts/orders.yaml")
# The sample contract with optional measures and dimension, so nulls are exercised too.
ORDERS = parse_contract(
    {
        **ORDERS_V1.model_dump(by_alias=True, exclude_none=True),
        "columns": [
            c.model_dump(by_alias=True, exclude_none=True)
            | ({"required": False} if c.name in ("country", "amount", "quantity") else {})
            for c in ORDERS_V1.columns
        ],
    }
)
SCHEMA = contract_schema(ORDERS)


def order(
    i: int,
    when: datetime,
    country: str | None = "DE",
    amount: str | None = "10.00",
    customer: str = "C-1",
    quantity: int | None = 1,
) -> dict:
    return {
        "order_id": f"O-{i:06d}",
        "ordered_at": when,
        "customer_id": customer,
        "country": country,
        "channel": "web",
        "quantity": quantity,
        "unit_price": Decimal("1.00"),
        "amount": None if amount is None else Decimal(amount),
        "paid": True,
    }


def as_event_row(row: dict) -> dict:
    """The same row as an external producer would put it on the stream (JSON types)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
        elif isinstance(v, Decimal):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def fold_rows(rows: list[dict]) -> dict[ItemKey, Values]:
    spec = AggregateSpec.of(ORDERS)
    items: dict[ItemKey, Values] = {}
    for row in rows:
        parsed = parse_row(spec, as_event_row(row))
        fold_row(spec, items.setdefault(parsed.key, spec.new_values()), parsed)
    return items


T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ROWS = [
    order(1, T0 + timedelta(minutes=5), "DE", "10.50", "C-1", 2),
    order(2, T0 + timedelta(minutes=59, seconds=59), "DE", "0.01", "C-2", 1),
    order(3, T0 + timedelta(hours=1), "DE", "99.99", "C-1", 3),
    order(4, T0 + timedelta(minutes=30), "FR", None, "C-3", None),
    order(5, T0 + timedelta(minutes=31), "FR", "5.00", "C-3", 4),
    order(6, datetime(1969, 12, 31, 23, 30, tzinfo=UTC), "US", "1.00", "C-9", 1),
    order(7, T0, None, "2.00", "C-8", 1),
]


# ---------------------------------------------------------------------------------------- sketches
def test_sketch_is_exact_up_to_the_limit_then_estimates_within_a_few_percent():
    sketch = DistinctSketch()
    for i in range(EXACT_LIMIT):
        sketch.add(f"customer-{i}")
        sketch.add(f"customer-{i}")
    assert sketch.exact and sketch.estimate() == EXACT_LIMIT
    for i in range(100_000):
        sketch.add(f"customer-{i}")
    assert not sketch.exact
    assert abs(sketch.estimate() - 100_000) / 100_000 < 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 400), max_size=200), min_size=1, max_size=6), st.randoms())
def test_sketch_of_a_union_does_not_depend_on_how_it_was_merged(parts, rnd):
    whole = DistinctSketch()
    for part in parts:
        for v in part:
            whole.add(str(v))
    sketches = []
    for part in parts:
        s = DistinctSketch()
        for v in part:
            s.add(str(v))
        sketches.append(s)
    rnd.shuffle(sketches)
    merged = DistinctSketch()
    for s in sketches:
        merged.update(DistinctSketch.decode(s.encode()))
    assert merged.encode() == whole.encode()
    assert merged.estimate() == whole.estimate()
    if len({v for p in parts for v in p}) <= EXACT_LIMIT:
        assert merged.exact and merged.estimate() == len({v for p in parts for v in p})


def test_sketch_encoding_is_compact_and_bounded():
    sketch = DistinctSketch()
    for i in range(50_000):
        sketch.add(str(i))
    text = sketch.encode()
    assert text.startswith("h12:") and len(text) <= sketch.encoded_size_bound()
    assert len(text) < 4096  # zlib packs the 4096 registers
    assert DistinctSketch.decode(text) == sketch


@pytest.mark.parametrize("text", ["", "x:***", "h12:AAAA", "h9:" + "A" * 8, "x:" + "A" * 2000])
def test_undecodable_sketches_are_rejected(text):
    with pytest.raises(SketchError):
        DistinctSketch.decode(text)


# ---------------------------------------------------------------------------------------- values
values_strategy = st.builds(
    lambda rows: rows,
    st.lists(
        st.tuples(st.sampled_from(["DE", "FR"]), st.decimals("-1000", "1000", places=2), st.integers(0, 50)),
        max_size=30,
    ),
)


def values_of(rows) -> Values:
    spec = AggregateSpec.of(ORDERS)
    values = spec.new_values()
    for country, amount, customer in rows:
        parsed = parse_row(
            spec,
            {
                "ordered_at": "2026-11-01T10:00:00Z",
                "customer_id": f"C-{customer}",
                "country": country,
                "quantity": 1,
                "amount": str(amount),
            },
        )
        fold_row(spec, values, parsed)
    return values


@settings(max_examples=80, deadline=None)
@given(st.lists(values_strategy, min_size=1, max_size=5), st.randoms())
def test_merging_values_is_exact_in_any_order(chunks, rnd):
    whole = values_of([r for c in chunks for r in c])
    parts = [values_of(c) for c in chunks]
    rnd.shuffle(parts)
    merged = Values()
    for p in parts:
        merged.merge(Values.from_json(json.loads(json.dumps(p.to_json()))))
    assert merged.to_json() == whole.to_json()


def test_decimal_sums_stay_exact_beyond_float_precision():
    values = Values.from_json({"count": 1, "measures": {"a": {"n": 1, "sum": "99999999999999999999999999.99"}}})
    for _ in range(10):
        values.merge(Values.from_json({"count": 1, "measures": {"a": {"n": 1, "sum": "0.01"}}}))
    assert values.to_json()["measures"]["a"]["sum"] == "100000000000000000000000000.09"
    tenth = Values()
    for _ in range(10):
        tenth.merge(Values.from_json({"count": 1, "measures": {"a": {"n": 1, "sum": "0.1"}}}))
    assert tenth.to_json()["measures"]["a"]["sum"] == "1.0"


def test_an_op_tracked_on_one_side_only_is_dropped_not_guessed():
    with_sum = Values.from_json({"count": 2, "measures": {"a": {"n": 2, "sum": "3", "max": "2"}}})
    without = Values.from_json({"count": 1, "measures": {"a": {"n": 1, "max": "5"}}})
    with_sum.merge(without)
    assert with_sum.to_json()["measures"]["a"] == {"n": 3, "max": "5"}
    empty = Values.from_json({"count": 0})
    with_sum.merge(empty)
    assert with_sum.count == 3


# ---------------------------------------------------------------------------------------- Arrow vs row events
def test_arrow_aggregator_matches_folding_rows_one_by_one():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    agg = PartialAggregator(ORDERS, "run-1")
    agg(table.slice(0, 3))
    agg(table.slice(3).to_batches()[0])
    expected = fold_rows(ROWS)
    assert agg.rows == len(ROWS)
    assert {k: v.to_json() for k, v in agg.items().items()} == {k: v.to_json() for k, v in expected.items()}


def test_records_are_compact_deterministic_and_exact():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    one, two = PartialAggregator(ORDERS, "run-1"), PartialAggregator(ORDERS, "run-1")
    one(table)
    for i in range(table.num_rows):
        two(table.slice(i, 1))
    records = one.records()
    assert records == two.records()
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert {r["n"] for r in records} == {len(records)}
    de_10 = next(r for r in records if r["group"] == {"country": "DE"} and r["bucket"] == "2026-11-01T10:00:00Z")
    assert de_10["count"] == 2 and de_10["bucket_seconds"] == 3600
    assert de_10["measures"]["amount"] == {"n": 2, "sum": "10.51", "min": "0.01", "max": "10.50"}
    assert de_10["measures"]["quantity"] == {"n": 2, "sum": "3"}
    assert DistinctSketch.decode(de_10["distinct"]["customer_id"]).estimate() == 2
    fr = next(r for r in records if r["group"] == {"country": "FR"})
    assert fr["count"] == 2 and fr["measures"]["amount"]["n"] == 1 and fr["measures"]["amount"]["sum"] == "5.00"
    before_1970 = next(r for r in records if r["group"] == {"country": "US"})
    assert before_1970["bucket"] == "1969-12-31T23:00:00Z"
    assert any(r["group"] == {"country": None} for r in records)
    assert all(len(encode_record(r)) < 1024 for r in records)
    assert records[-1]["bucket"] is not None  # no null-time rows here; they would sort last


def test_float_and_timestamp_measures():
    contract = parse_contract(
        {
            "dataset": "sensors",
            "match": {"prefix": "sensors/"},
            "columns": [{"name": "at", "type": "timestamp"}, {"name": "temp", "type": "float64"}],
            "aggregates": {
                "time_column": "at",
                "bucket_seconds": 60,
                "measures": [{"column": "temp"}, {"column": "at", "ops": ["min", "max"]}],
            },
        }
    )
    rows = [{"at": T0 + timedelta(seconds=s), "temp": t} for s, t in ((1, 0.1), (2, 0.2), (3, None), (61, 1e-7))]
    agg = PartialAggregator(contract, "r")
    agg(pa.Table.from_pylist(rows, schema=pa.schema([("at", pa.timestamp("us", tz="UTC")), ("temp", pa.float64())])))
    first, second = agg.records()
    assert first["measures"]["temp"] == {"n": 2, "sum": "0.3", "min": "0.1", "max": "0.2"}
    assert first["measures"]["at"] == {
        "n": 3,
        "kind": "text",
        "min": "2026-11-01T10:00:01.000000Z",
        "max": "2026-11-01T10:00:03.000000Z",
    }
    assert second["measures"]["temp"]["sum"] == "0.0000001"


def test_contract_asking_to_sum_a_text_column_is_refused():
    contract = parse_contract(
        {
            "dataset": "bad",
            "match": {"prefix": "bad/"},
            "columns": [{"name": "at", "type": "date"}, {"name": "who", "type": "string"}],
            "aggregates": {"time_column": "at", "measures": [{"column": "who", "ops": ["sum"]}]},
        }
    )
    with pytest.raises(ContractError, match="cannot be summed"):
        PartialAggregator(contract, "r")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", "1.005", "more than 2 decimals"),
        ("amount", "abc", "is not a decimal"),
        ("amount", 1.5, "expected a decimal"),
        ("customer_id", None, "required"),
        ("quantity", "two", "expected an integer"),
        ("quantity", True, "expected an integer"),
        ("ordered_at", "yesterday", "Invalid isoformat"),
        ("country", 7, "expected a string"),
    ],
)
def test_row_events_of_the_wrong_type_are_rejected_with_the_column(field, value, reason):
    row = as_event_row(ROWS[0]) | {field: value}
    with pytest.raises(ValueError, match=reason) as info:
        parse_row(AggregateSpec.of(ORDERS), row)
    assert field in str(info.value)


def test_row_event_decimals_are_normalised_to_the_contract_scale():
    spec = AggregateSpec.of(ORDERS)
    a = parse_row(spec, as_event_row(ROWS[0]) | {"amount": "10.5"})
    b = parse_row(spec, as_event_row(ROWS[0]) | {"amount": Decimal("10.50")})  # a JSON number, read exactly
    assert a == b and a.measures[0] == Decimal("10.50") and str(a.measures[0]) == "10.50"


# ---------------------------------------------------------------------------------------- stream records
def test_stream_records_decode_partials_and_rows():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    agg = PartialAggregator(ORDERS, "run-1")
    agg(table)
    record = agg.records()[0]
    update = decode_record(encode_record(record))
    assert not isinstance(update, RowsUpdate)
    assert update.run_id == "run-1" and update.seq == 0 and update.src == "run:run-1"
    assert update.values.to_json() == {k: record[k] for k in ("count", "measures", "distinct")}
    rows = decode_record(json.dumps({"dataset": "orders", "row": {"x": 1}}).encode())
    assert isinstance(rows, RowsUpdate) and rows.rows == ({"x": 1},)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b'{"v": 2, "dataset": "orders", "rows": [{}]}',
        b'{"type": "gossip", "dataset": "orders"}',
        b'{"type": "rows", "dataset": "Orders!", "rows": [{}]}',
        b'{"type": "rows", "dataset": "orders", "rows": []}',
        b'{"type": "partial", "dataset": "orders", "run_id": "r", "seq": -1, "bucket_seconds": 60, "count": 1}',
        b'{"type": "partial", "dataset": "orders", "run_id": "r", "seq": 0, "bucket_seconds": 60, '
        b'"bucket": "2026-11-01T10:00:30Z", "count": 1}',
        b'{"type": "partial", "dataset": "orders", "run_id": "r", "seq": 0, "bucket_seconds": 60, "count": 1, '
        b'"measures": {"a": {"n": 2, "sum": "1"}}}',
        b'{"type": "partial", "dataset": "orders", "run_id": "r", "seq": 0, "bucket_seconds": 60, "count": 1, '
        b'"measures": {"a": {"n": 1, "sum": true}}}',
        b'{"type": "partial", "dataset": "orders", "run_id": "r", "seq": 0, "bucket_seconds": 60, "count": 1, '
        b'"distinct": {"c": "x:!!"}}',
        b'{"type": "partials", "records": []}',
        b'{"type": "partials", "records": [{"type": "rows", "dataset": "orders", "rows": [{}]}]}',
        b'{"type": "partials", "records": [{"dataset": "orders", "run_id": "r", "seq": 0, "bucket_seconds": 7, '
        b'"bucket": "2026-11-01T10:00:30Z", "count": 1}]}',
    ],
)
def test_poison_records_are_recognised(data):
    with pytest.raises(PoisonRecordError):
        decode_record(data)


def test_a_run_of_thousands_of_items_travels_in_a_few_batches_that_decode_to_the_same_partials():
    """Fails if each item is its own stream record (4,704 puts for a month-spread file) or a batch loses one."""
    rows = [
        {**ROWS[0], "ordered_at": datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=h), "country": c}
        for h in range(24 * 31)
        for c in ("DE", "FR", "NL", "US", "GB", "IT")
    ]
    agg = PartialAggregator(ORDERS, "run-1")
    agg(pa.Table.from_pylist(rows, schema=SCHEMA))
    records = prepare_publication(agg.records(), run_id="run-1", contract_version=1, src="s", order="c1")
    assert len(records) == 24 * 31 * 6
    batches = batch_records(records)
    assert 1 < len(batches) <= len(records) * 400 // BATCH_BYTES + 1
    assert all(len(b) <= BATCH_BYTES for b in batches)
    decoded = []
    for data in batches:
        batch = decode_record(data)
        assert isinstance(batch, PartialBatch)
        decoded += batch.updates
    assert decoded == [partial_from_json(r) for r in records]
    huge = {**records[0], "group": {"country": "X" * BATCH_BYTES}}
    alone = batch_records([records[1], huge, records[2]])
    assert len(alone) == 3 and isinstance(decode_record(alone[1]), PartialBatch)


def test_publication_merges_items_stamps_the_source_and_withdraws_superseded_items():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    v1, v2a, v2b = PartialAggregator(ORDERS, "v1"), PartialAggregator(ORDERS, "v2"), PartialAggregator(ORDERS, "v2")
    v1(table)
    v2a(table.slice(0, 2))  # a fanned-out run: two ranges with the same items
    v2b(table.slice(1, 1))
    records = prepare_publication(
        [*v2a.records(), *v2b.records()],
        run_id="v2",
        contract_version=1,
        src=source_id("raw", "orders/a.csv"),
        order="2026-11-02T00:00:00+00:00",
        superseded=[v1.records()],
    )
    assert [r["seq"] for r in records] == list(range(len(records))) == list(range(records[0]["n"]))
    assert {r["src"] for r in records} == {source_id("raw", "orders/a.csv")}
    assert {r["ord"] for r in records} == {"2026-11-02T00:00:00+00:00"} and {r["run_id"] for r in records} == {"v2"}
    live = [r for r in records if r["count"]]
    withdrawn = [r for r in records if not r["count"]]
    assert len(live) == 1 and live[0]["count"] == 3  # rows 0, 1 and 1 again (the two ranges overlap here)
    assert len(withdrawn) == len(v1.records()) - 1
    assert all(partial_from_json(r).values.count == 0 for r in withdrawn)


def test_item_keys_round_trip_and_partition_keys_stay_short():
    key = ItemKey("orders", 3600, 0, (("country", "DE"), ("n", 1), ("x", None)))
    assert ItemKey.from_id(key.id) == key
    assert key.partition_key == 'orders#["DE",1,null]'
    long = ItemKey("orders", 60, 0, (("country", "x" * 400),))
    assert len(long.partition_key) <= 256 and long.partition_key.startswith("orders#")


def test_partials_of_a_fanned_out_run_combine_into_those_of_the_whole_file():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    whole = PartialAggregator(ORDERS, "run-1")
    whole(table)
    parts = []
    for lo, hi in ((0, 2), (2, 5), (5, 7)):
        part = PartialAggregator(ORDERS, "run-1")
        part(table.slice(lo, hi - lo))
        parts.append(part.records())
    assert combine_partials(reversed(parts), run_id="run-1", contract_version=1) == whole.records()
