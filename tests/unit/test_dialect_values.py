"""Dialect options for numbers and padding: a decimal comma (`decimal_point`) and `trim_spaces`."""

import io
from decimal import Decimal

import pyarrow as pa
import yaml

from sluice.contracts import Dialect, parse_contract
from sluice.engine.infer import infer_contract
from sluice.engine.rules import parse_values

COMMA = Dialect(delimiter=";", decimal_point=",")


def test_numbers_with_a_decimal_comma_parse_and_a_point_is_refused():
    text = pa.array(["12,50", "-0,5", "1000", "1.5", "1,2,3", "1.234,56", ",5", None])
    assert parse_values(text, "float64", COMMA).to_pylist() == [12.5, -0.5, 1000.0, None, None, None, 0.5, None]
    assert parse_values(text, "decimal(8,2)", COMMA).to_pylist() == [
        Decimal("12.50"),
        Decimal("-0.50"),
        Decimal("1000.00"),
        None,
        None,
        None,
        Decimal("0.50"),
        None,
    ]
    assert parse_values(pa.array(["1.5", "1,5"]), "float64", Dialect()).to_pylist() == [1.5, None]


def test_convert_with_a_decimal_comma_quarantines_points_and_applies_bounds(run_convert, make_contract):
    c = make_contract(
        ["id", {"name": "price", "type": "decimal(8,2)", "min": 0}, {"name": "qty", "type": "int64"}],
        dialect={"delimiter": ";", "decimal_point": ","},
        max_reject_ratio=1.0,
    )
    out = run_convert(b"id;price;qty\n1;12,50;3\n2;1.234,56;1\n3;-1,00;2\n4;7;1\n", c)
    assert out.column("price") == [Decimal("12.50"), Decimal("7.00")]
    assert out.column("qty") == [3, 1]
    got = [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected]
    assert got == [("3", "price.type", "1.234,56"), ("4", "price.min", "-1,00")]


def _infer(data: bytes):
    inference = infer_contract(io.BytesIO(data), source_name="f.csv", file_stem="eu")
    return parse_contract(yaml.safe_load(inference.to_yaml("f.csv")), "inferred")


def test_infer_finds_a_decimal_comma_and_convert_accepts_the_file(run_convert):
    data = b"id;price;day\n1;12,50;03.11.2023\n2;7,05;25.12.2023\n3;1000;01.01.2024\n"
    contract = _infer(data)
    assert contract.dialect.decimal_point == ","
    assert {c.name: c.type for c in contract.columns} == {"id": "int64", "price": "decimal(18,2)", "day": "date"}
    out = run_convert(data, contract)
    assert out.result.rows_rejected == 0 and out.column("price") == [Decimal("12.50"), Decimal("7.05"), Decimal(1000)]


def test_infer_keeps_the_decimal_point_when_numbers_use_it():
    assert _infer(b"id;price;note\n1;12.50;a,b\n2;7.05;c\n").dialect.decimal_point == "."
    assert _infer(b'id,price\n1,"12,50"\n').dialect.decimal_point == "."  # a comma delimiter: no guessing


# --------------------------------------------------------------------------- trim_spaces
def test_trim_spaces_strips_values_before_the_rules_and_keeps_the_text_for_the_quarantine(run_convert, make_contract):
    c = make_contract(
        ["id", {"name": "qty", "type": "int64", "max": 100}, {"name": "country", "in": ["DE", "FR"]}, "name"],
        dialect={"trim_spaces": True},
        max_reject_ratio=1.0,
    )
    data = b'id,qty,country,name\n1,  42 ,DE ,\t Ann \n2,  ,FR,Bob\n3, 101,DE,Cy\n4,7," ES",Di\n'
    out = run_convert(data, c)
    assert out.rows == [
        {"id": "1", "qty": 42, "country": "DE", "name": "Ann"},
        {"id": "2", "qty": None, "country": "FR", "name": "Bob"},  # blank once trimmed: null
    ]
    got = [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected]
    assert got == [("4", "qty.max", " 101"), ("5", "country.in", " ES")]
    strict = run_convert(data, c.model_copy(update={"dialect": c.dialect.model_copy(update={"trim_spaces": False})}))
    assert {r["_rule"] for r in strict.rejected} >= {"qty.type", "country.in"}  # the default: spaces are data


def test_infer_sets_trim_spaces_only_when_padding_hides_a_type(run_convert):
    data = b"id,qty,when,name\n1,  42 ,2023-11-03,  Ann\n2,7,  2023-11-04 ,Bob \n"
    contract = _infer(data)
    assert contract.dialect.trim_spaces is True
    types = {c.name: c.type for c in contract.columns}
    assert types == {"id": "int64", "qty": "int64", "when": "date", "name": "string"}
    out = run_convert(data, contract)
    assert out.result.rows_rejected == 0 and out.column("name") == ["Ann", "Bob"]
    assert _infer(b"id,name\n1,  Ann\n2,Bob \n").dialect.trim_spaces is False  # padded text alone: kept as written
