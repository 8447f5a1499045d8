"""One acceptance rule per type: the table of docs/engine.md, value by value, whatever the batch around it.

A batch whose values all cast at once takes Arrow's whole-batch cast (the fast path); a batch with
one bad value takes the per-value shapes (the slow path). Both must give every value the answer
the table documents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.contracts import Dialect, parse_contract
from sluice.engine.rules import Validator, parse_values

DOC = Path(__file__).parents[2] / "docs" / "engine.md"
GARBAGE = "not a value"


def documented_shapes() -> dict[str, tuple[list[str], list[str]]]:
    """``{type: (accepted, rejected)}`` from the acceptance table of docs/engine.md."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| type | accepted | rejected |") :].split("\n\n", 1)[0]
    shapes: dict[str, tuple[list[str], list[str]]] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        type_ = cells[0].strip("`")
        shapes[type_] = (re.findall(r"`([^`]*)`", cells[1]), re.findall(r"`([^`]*)`", cells[2]))
    return shapes


SHAPES = documented_shapes()


def test_the_table_covers_every_type():
    assert set(SHAPES) == {"int64", "float64", "decimal(10,2)", "bool", "date", "timestamp"}
    assert all(accepted and rejected for accepted, rejected in SHAPES.values())


def validate(type_: str, values: list[str], validator: Validator | None = None) -> list[Any]:
    """Each value typed, or the string ``"rejected"``, through the engine's Validator."""
    contract = parse_contract(
        {"dataset": "t", "match": {"prefix": "t/"}, "columns": [{"name": "c", "type": type_}]}, "t.yaml"
    )
    v = validator or Validator(contract)
    checked = v.check(pa.table({"c": pa.array(values, pa.string())}))
    typed = checked.typed[0].to_pylist()
    return ["rejected" if checked.first[i] >= 0 else typed[i] for i in range(len(values))]


def same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)  # NaN is NaN


@pytest.mark.parametrize("type_", sorted(SHAPES))
def test_each_documented_shape_gets_one_answer_in_a_clean_and_in_a_mixed_batch(type_):
    accepted, rejected = SHAPES[type_]
    clean = validate(type_, accepted)  # every value valid: the whole-batch cast
    assert "rejected" not in clean, dict(zip(accepted, clean, strict=True))
    mixed = validate(type_, [*accepted, *rejected, GARBAGE])  # the per-value path
    assert all(same(a, b) for a, b in zip(clean, mixed, strict=False)), list(zip(accepted, clean, mixed, strict=False))
    assert mixed[len(accepted) :] == ["rejected"] * (len(rejected) + 1), dict(
        zip(rejected, mixed[len(accepted) :], strict=False)
    )
    for value, expected in [*zip(accepted, clean, strict=True), *((r, "rejected") for r in rejected)]:
        alone = validate(type_, [value] * 3)  # a batch of nothing but this shape
        assert all(same(a, expected) for a in alone), (value, alone, expected)


def test_a_validator_that_went_the_slow_way_keeps_the_same_answers():
    """After a bad value a column skips the whole-batch cast for the rest of the file: same answers."""
    for type_, (accepted, rejected) in SHAPES.items():
        contract = parse_contract(
            {"dataset": "t", "match": {"prefix": "t/"}, "columns": [{"name": "c", "type": type_}]}, "t.yaml"
        )
        v = Validator(contract)
        validate(type_, [GARBAGE], v)
        again, fresh = validate(type_, accepted, v), validate(type_, accepted)
        assert all(same(a, b) for a, b in zip(again, fresh, strict=True))
        assert validate(type_, rejected, v) == ["rejected"] * len(rejected)


ALPHABETS = {
    "int64": "0123456789-+xXeE. ,aF",
    "float64": "0123456789-+eE. ,infatyINFATYx",
    "decimal(10,2)": "0123456789-+eE. ,naif",
    "date": "0123456789-T Z:",
    "timestamp": "0123456789-T :.Z+z",
}


@st.composite
def values_of(draw: Any, type_: str) -> str:
    accepted, rejected = SHAPES[type_]
    if draw(st.booleans()):  # a documented shape, mutated a little
        base = draw(st.sampled_from(accepted + rejected))
        cut = draw(st.integers(0, len(base)))
        return base[:cut] + draw(st.text(ALPHABETS[type_], max_size=3)) + base[cut + draw(st.integers(0, 2)) :]
    return draw(st.text(ALPHABETS[type_], max_size=14))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), type_=st.sampled_from(sorted(ALPHABETS)))
def test_any_value_gets_the_answer_it_gets_alone(data, type_):
    """Property: a value's outcome is the one it gets alone, in a batch of its own kind and beside garbage."""
    value = data.draw(values_of(type_))
    alone = parse_values(pa.array([value]), type_, Dialect()).to_pylist()[0]
    uniform = parse_values(pa.array([value, value]), type_, Dialect()).to_pylist()
    beside = parse_values(pa.array([value, GARBAGE]), type_, Dialect()).to_pylist()[0]
    assert same(uniform[0], alone) and same(uniform[1], alone) and same(beside, alone), (value, alone, uniform, beside)
    engine = validate(type_, [value, value])[0]
    if value in Dialect().null_values:  # the engine reads null tokens first
        assert engine is None
    else:
        assert same(engine, "rejected" if alone is None else alone), (value, engine, alone)
