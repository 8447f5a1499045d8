"""Contract rules, vectorised: parsing of every type, null tokens, and the first broken rule per row."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.contracts import Dialect
from sluice.engine.rules import SeenValues, Validator, apply_nulls, parse_values, value_keys
from sluice.errors import ContractError


def check(make_contract, column, values, **over):
    """Validate one column of text values; returns (typed valid values, {row: rule})."""
    c = make_contract([column], **over)
    v = Validator(c)
    table, rejects = v.validate(pa.table({c.columns[0].name: pa.array(values, pa.string())}))
    return table.column(0).to_pylist(), dict(zip(rejects.rows.tolist(), rejects.rules, strict=True))


@pytest.mark.parametrize(
    ("type_", "good", "expected", "bad"),
    [
        (
            "int64",
            ["1", "-20", "01", "9223372036854775807"],
            [1, -20, 1, 2**63 - 1],
            ["1.0", "+1", " 1", "9223372036854775808", "1e3", "x"],
        ),
        ("float64", ["1.5", "-2", "1e3", ".5", "inf"], [1.5, -2.0, 1000.0, 0.5, float("inf")], ["1,5", "x", " 1"]),
        (
            "decimal(6,2)",
            ["1.5", "-0.25", "1234.5", "1.230"],
            [Decimal("1.50"), Decimal("-0.25"), Decimal("1234.50"), Decimal("1.23")],
            ["1.234", "12345.6", "1,5", "x"],
        ),
        ("bool", ["true", "FALSE", "1", "n"], [True, False, True, False], ["maybe", "2"]),
        (
            "date",
            ["2026-11-01", "2024-02-29"],
            [dt.date(2026, 11, 1), dt.date(2024, 2, 29)],
            ["2026-02-30", "2026-1-5", "01/11/2026", "20261101"],
        ),
    ],
)
def test_types_parse_or_reject_each_value(make_contract, type_, good, expected, bad):
    typed, rejected = check(make_contract, {"name": "c", "type": type_}, good + bad)
    assert typed == expected
    assert rejected == {len(good) + i: "c.type" for i in range(len(bad))}


def test_timestamps_are_utc_with_or_without_an_offset(make_contract):
    utc = dt.UTC
    typed, rejected = check(
        make_contract,
        {"name": "ts", "type": "timestamp"},
        [
            "2026-11-02T04:06:00Z",
            "2026-11-02T04:06:00+01:00",
            "2026-11-02 04:06:00",
            "2026-11-02",
            "2026-11-02T04:06:00.123456Z",
            "nope",
            "2026-13-02T00:00:00Z",
            "2026-11-02T04:06:00.1234567Z",
        ],
    )
    assert typed == [
        dt.datetime(2026, 11, 2, 4, 6, tzinfo=utc),
        dt.datetime(2026, 11, 2, 3, 6, tzinfo=utc),
        dt.datetime(2026, 11, 2, 4, 6, tzinfo=utc),
        dt.datetime(2026, 11, 2, tzinfo=utc),
        dt.datetime(2026, 11, 2, 4, 6, 0, 123456, tzinfo=utc),
    ]
    assert rejected == {5: "ts.type", 6: "ts.type", 7: "ts.type"}


def test_null_tokens_and_required(make_contract):
    typed, rejected = check(make_contract, {"name": "n", "type": "int64", "required": True}, ["1", "", "NA", "null"])
    assert typed == [1] and rejected == {1: "n.required", 2: "n.required", 3: "n.required"}
    typed, rejected = check(
        make_contract, {"name": "n", "type": "int64"}, ["1", "", "none"], dialect={"null_values": ["", "none"]}
    )
    assert typed == [1, None, None] and rejected == {}
    raw = pa.array(["a", "NA"])
    assert apply_nulls(raw, ("NA",)).to_pylist() == ["a", None]
    assert apply_nulls(raw, ()).to_pylist() == ["a", "NA"]


def test_a_null_token_that_parses_is_still_null(make_contract):
    typed, _ = check(make_contract, {"name": "n", "type": "int64"}, ["0", "5"], dialect={"null_values": ["0"]})
    assert typed == [None, 5]


def test_min_max_in_and_pattern(make_contract):
    col = {"name": "q", "type": "int64", "min": 1, "max": 10, "in": [1, 2, 3, 11]}
    typed, rejected = check(make_contract, col, ["1", "0", "11", "5", ""])
    assert typed == [1, None] and rejected == {1: "q.min", 2: "q.max", 3: "q.in"}
    col = {"name": "p", "type": "decimal(10,2)", "min": "0.005"}
    typed, rejected = check(make_contract, col, ["0.00", "0.01"])
    assert typed == [Decimal("0.01")] and rejected == {0: "p.min"}
    col = {"name": "d", "type": "date", "min": "2026-01-01", "max": "2026-12-31"}
    assert check(make_contract, col, ["2025-12-31", "2026-06-01"])[1] == {0: "d.min"}
    col = {"name": "t", "type": "timestamp", "max": "2026-01-01T00:00:00Z"}
    assert check(make_contract, col, ["2026-01-01T00:00:01Z", "2025-01-01"])[1] == {0: "t.max"}
    col = {"name": "s", "pattern": "^O-[0-9]{3}$", "in": ["O-001", "O-002", "O-12"]}
    assert check(make_contract, col, ["O-001", "O-12", "O-003", ""])[1] == {1: "s.pattern", 2: "s.in"}


def test_patterns_re2_cannot_run_fall_back_to_python(make_contract):
    col = {"name": "s", "pattern": r"^(?!tmp).+$"}
    assert check(make_contract, col, ["tmpfile", "real"])[1] == {0: "s.pattern"}


def test_the_first_broken_rule_in_column_order_is_reported(make_contract):
    c = make_contract([{"name": "a", "type": "int64", "min": 5}, {"name": "b", "required": True}])
    table, rejects = Validator(c).validate(pa.table({"a": ["1", "x", "7"], "b": ["", "", ""]}))
    assert rejects.rules == ["a.min", "a.type", "b.required"]
    assert rejects.values == ["1", "x", ""]
    assert rejects.columns == ["a", "a", "b"]
    assert table.num_rows == 0


def test_rules_that_do_not_fit_the_type_are_contract_errors(make_contract):
    with pytest.raises(ContractError, match="`min` value soon was read as text, not of type date"):
        Validator(make_contract([{"name": "d", "type": "date", "min": "soon"}]))
    with pytest.raises(ContractError, match="`in` value a was read as text, not of type int64"):
        Validator(make_contract([{"name": "n", "type": "int64", "in": ["a"]}]))
    with pytest.raises(ContractError, match="min '2024-13-01' does not fit type date"):  # the right shape, no date
        Validator(make_contract([{"name": "d", "type": "date", "min": "2024-13-01"}]))


def test_unique_state_spans_batches_and_ignores_nulls(make_contract):
    v = Validator(make_contract([{"name": "k", "unique": True}]))
    _, r1 = v.validate(pa.table({"k": ["a", "b", "a", "", ""]}))
    _, r2 = v.validate(pa.table({"k": ["c", "b", "long-" * 30, "é"]}))
    _, r3 = v.validate(pa.table({"k": ["long-" * 30, "é", "d"]}))
    assert r1.rows.tolist() == [2] and r2.rows.tolist() == [1] and r3.rows.tolist() == [0, 1]
    assert v.unique_bytes > 0


def test_value_keys_depend_only_on_the_value():
    words = ["a", "abcdefgh", "abcdefghi", "x" * 64, "x" * 65, "ümlaut", ""]
    alone = [int(value_keys(pa.array([w]))[0]) for w in words]
    together = value_keys(pa.array(words)).tolist()
    shuffled = value_keys(pa.array(list(reversed(words)))).tolist()
    assert alone == together == list(reversed(shuffled))
    assert len(set(together)) == len(words)
    ints = value_keys(pa.array([1, 2, 1], pa.int64()))
    assert ints[0] == ints[2] != ints[1]


def test_seen_values_merges_runs():
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(0, 2**62, 50_000, dtype=np.int64)).astype(np.uint64)
    seen = SeenValues()
    for i in range(0, len(keys), 3000):
        seen.add(keys[i : i + 3000])
    assert seen.contains(keys).all()
    assert not seen.contains(keys + np.uint64(2**62)).any()


def test_parse_values_is_the_shared_parser():
    d = Dialect()
    assert parse_values(pa.array(["1", None]), "int64", d).to_pylist() == [1, None]
    assert parse_values(pa.array(["yes", "off"]), "bool", d).to_pylist() == [True, None]


def test_key_maker_gives_ids_with_a_shared_prefix_exact_ordered_keys():
    from sluice.engine.rules import KeyMaker

    maker = KeyMaker()
    first = maker.keys(pa.array([f"O-{i:010d}" for i in range(1000)]))
    assert bool(np.all(first[1:] > first[:-1]))  # sequential ids -> increasing keys
    # later values: with the prefix, without it, longer, non-ASCII, and texts whose bytes could alias
    later = [
        "O-0000001000",
        "O-12345678",
        "12345678",
        "87654321",
        "O-9",
        "O-00123456789",
        "Ö-0000000001",
        "O-0000001000",
    ]
    keys = maker.keys(pa.array(later)).tolist()
    assert keys[0] == keys[-1] and len(set(keys[:-1])) == len(later) - 1
    assert keys[0] > int(first[-1])


def test_unique_is_exact_with_prefixed_keys_across_batches():
    from tests.unit.conftest import build_contract

    contract = build_contract([{"name": "id", "unique": True}], max_reject_ratio=1.0)
    v = Validator(contract)
    ids = [f"O-{i:010d}" for i in range(3000)]
    batches = [ids[:1000], [*ids[1000:2000], "O-0000000005", "x", "x"], [*ids[2000:], "O-0000002999", "O-1"]]
    rejected = []
    for batch in batches:
        _, rejects = v.validate(pa.table({"id": pa.array(batch)}))
        rejected.append([batch[r] for r in rejects.rows.tolist()])
    assert rejected == [[], ["O-0000000005", "x"], ["O-0000002999"]]


def test_seen_values_stop_merging_at_the_run_cap(monkeypatch):
    monkeypatch.setattr(SeenValues, "MAX_RUN", 4000)
    rng = np.random.default_rng(11)
    keys = np.unique(rng.integers(0, 2**62, 30_000, dtype=np.int64)).astype(np.uint64)
    rng.shuffle(keys)
    seen = SeenValues()
    for i in range(0, len(keys), 1000):
        assert not seen.contains(keys[i : i + 1000]).any()
        seen.add(keys[i : i + 1000])
    assert all(run.size <= 4000 for run in seen._runs)
    assert seen.contains(keys).all()
    probe = np.setdiff1d(keys + np.uint64(1), keys)
    assert not seen.contains(probe).any()


def test_numbered_ids_are_exact_and_take_almost_no_memory_when_sequential():
    from tests.unit.conftest import build_contract

    v = Validator(build_contract([{"name": "id", "unique": True}], max_reject_ratio=1.0))
    for start in range(0, 200_000, 20_000):
        batch = pa.table({"id": pa.array([f"O-{i:010d}" for i in range(start, start + 20_000)])})
        _, rejects = v.validate(batch)
        assert len(rejects) == 0
    assert v.unique_bytes < 64  # one interval instead of 8 bytes per id
    again = ["O-0000000042", "O-42", "O-042", "O-0000199999", "O-0000200000", "O-0000200000", "P-0000000001"]
    _, rejects = v.validate(pa.table({"id": pa.array(again)}))
    assert [again[r] for r in rejects.rows.tolist()] == ["O-0000000042", "O-0000199999", "O-0000200000"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["", "NA", "N/A", "NULL", "null", "Na", "NL", "N", "x", "na", "NAB", "é", " NA"]), max_size=40
    ),
    st.integers(0, 5),
    st.lists(st.sampled_from(["", "NA", "N/A", "NULL", "null", "-", "é"]), max_size=4),
)
def test_null_tokens_are_found_by_the_byte_filter_as_by_a_lookup(values, start, tokens):
    raw = pa.array(["pad"] * start + values, pa.string()).slice(start)  # an offset into the buffers
    want = [None if v in tokens else v for v in values]
    got = apply_nulls(raw, tuple(tokens))
    got.validate(full=True)
    assert got.to_pylist() == want
    assert got.null_count == sum(v is None for v in want)


def test_fixed_width_patterns_with_nulls_and_other_widths(make_contract):
    values = ["AB-12", "", "AB-1", "ab-12", "AB-123", "AB-99", "NA", "ÄB-12"]
    typed, rejected = check(make_contract, {"name": "c", "pattern": "^[A-Z]{2}-[0-9]{2}$"}, values)
    assert rejected == {2: "c.pattern", 3: "c.pattern", 4: "c.pattern", 7: "c.pattern"}
    assert typed == ["AB-12", None, "AB-99", None]
