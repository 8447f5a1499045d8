"""Dataset contracts: schema validation with clear messages, and key → dataset resolution."""

from decimal import Decimal

import pytest

from sluice.contracts import load_contracts, parse_contract, resolve_dataset
from sluice.errors import ContractError, UnknownDatasetError


def contract(**over):
    base = {"dataset": "sales", "match": {"prefix": "sales/"}, "columns": [{"name": "id", "type": "int64"}]}
    base.update(over)
    return parse_contract(base, "sales.yaml")


def test_shipped_contracts_load():
    [orders] = load_contracts("contracts")
    assert orders.dataset == "orders"
    assert orders.column("amount").decimal_precision_scale == (12, 2)
    assert orders.partition[0].transform == "date"


def test_types_are_normalised_and_checked():
    c = contract(columns=[{"name": "a", "type": "Decimal( 10, 2)"}, {"name": "b", "type": "TIMESTAMP"}])
    assert [col.type for col in c.columns] == ["decimal(10,2)", "timestamp"]
    with pytest.raises(ContractError, match=r"sales.yaml: invalid contract: columns.0.type: .*unknown type 'money'"):
        contract(columns=[{"name": "a", "type": "money"}])
    with pytest.raises(ContractError, match="unknown type"):
        contract(columns=[{"name": "a", "type": "decimal(5,7)"}])


def test_every_problem_is_listed():
    with pytest.raises(ContractError) as info:
        parse_contract({"dataset": "Bad Name", "match": {}, "columns": []}, "x.yaml")
    message = str(info.value)
    assert "dataset" in message and "match" in message and "columns" in message


def test_references_must_exist():
    with pytest.raises(ContractError, match="partition 'day' derives from unknown column 'ts'"):
        contract(partition=[{"name": "day", "source": "ts", "transform": "date"}])
    with pytest.raises(ContractError, match="aggregates refer to unknown column 'ts'"):
        contract(aggregates={"time_column": "ts"})
    with pytest.raises(ContractError, match="duplicate column names: id"):
        contract(columns=[{"name": "id"}, {"name": "id"}])
    with pytest.raises(ContractError, match="not a valid regular expression"):
        contract(columns=[{"name": "id", "pattern": "("}])


def test_dialect_aliases():
    c = contract(dialect={"encoding": "Windows-1252", "delimiter": "\\t"})
    assert (c.dialect.encoding, c.dialect.delimiter) == ("cp1252", "\t")
    with pytest.raises(ContractError, match=r"encoding .ebcdic. is not supported"):
        contract(dialect={"encoding": "ebcdic"})


def test_resolution_longest_prefix_glob_and_unknown():
    general = contract()
    special = contract(dataset="sales_eu", match={"prefix": "sales/eu/"})
    globbed = contract(dataset="logs", match={"glob": "*/logs/*.csv"})
    cs = [general, special, globbed]
    assert resolve_dataset("sales/eu/2024.csv", cs).dataset == "sales_eu"
    assert resolve_dataset("sales/us/2024.csv", cs).dataset == "sales"
    assert resolve_dataset("a/b/logs/x.csv", cs).dataset == "logs"
    with pytest.raises(UnknownDatasetError, match=r"no dataset contract matches key 'other/x\.csv'"):
        resolve_dataset("other/x.csv", cs)
    with pytest.raises(UnknownDatasetError, match="matches several contracts equally"):
        resolve_dataset("sales/x.csv", [general, contract(dataset="sales2")])


# ------------------------------------------------------------------ contracts that cannot surprise
def _yaml_contract(tmp_path, columns: str):
    from sluice.contracts import load_contract

    path = tmp_path / "c.yaml"
    path.write_text(f"dataset: x\nmatch: {{prefix: x/}}\ncolumns:\n{columns}")
    return load_contract(path)


def test_an_unquoted_no_in_a_text_in_list_is_refused_with_its_line_and_the_fix(tmp_path):
    with pytest.raises(ContractError) as info:
        _yaml_contract(tmp_path, "  - {name: id}\n  - {name: country, in: [DE, NO, FR]}\n")
    message = str(info.value)
    assert "line 5: column 'country' (string): `in` value NO was read as false (a boolean)" in message
    assert 'quote it: "NO"' in message
    ok = _yaml_contract(tmp_path, '  - {name: country, in: [DE, "NO", FR]}\n')
    assert ok.column("country").in_ == ("DE", "NO", "FR")


@pytest.mark.parametrize(
    ("column", "found"),
    [
        ("{name: code, in: [007, A1]}", "`in` value 007 was read as a number"),
        ("{name: d, type: date, in: [yes]}", "`in` value yes was read as true (a boolean)"),
        ("{name: q, type: int64, min: '1'}", "`min` value 1 was read as text, not of type int64"),
        ("{name: q, type: int64, max: 1.5}", "`max` value 1.5 was read as a number, not of type int64"),
        ("{name: ok, type: bool, in: [1]}", "write true or false"),
        ("{name: at, type: date, min: 2024-13-01x}", "`min` value 2024-13-01x was read as text"),
    ],
)
def test_rule_values_must_have_the_column_type(tmp_path, column, found):
    with pytest.raises(ContractError, match="line 4: ") as info:
        _yaml_contract(tmp_path, f"  - {column}\n")
    assert found in str(info.value)


def test_rule_values_of_the_right_type_pass(tmp_path):
    c = _yaml_contract(
        tmp_path,
        "  - {name: p, type: 'decimal(10,2)', min: 0, max: '99.99', in: [1.5, '2.10']}\n"
        "  - {name: d, type: date, min: 2020-01-01, max: '2030-12-31'}\n"
        "  - {name: f, type: float64, min: 0, max: 1.5}\n"
        "  - {name: b, type: bool, in: [true, false]}\n",
    )
    assert Decimal(str(c.column("p").max)) == Decimal("99.99")


def test_a_value_listed_in_in_is_never_null(make_contract, run_convert):
    c = make_contract([{"name": "id"}, {"name": "region", "in": ["NA", "EU", "N/A"]}])
    out = run_convert(b"id,region\n1,NA\n2,EU\n3,\n4,N/A\n5,NULL\n", c)
    assert [r["region"] for r in out.rows] == ["NA", "EU", None, "N/A", None]
    other = make_contract([{"name": "id"}, {"name": "note"}])
    assert [r["note"] for r in run_convert(b"id,note\n1,NA\n", other).rows] == [None]  # the default tokens


def test_null_tokens_are_set_per_contract(make_contract, run_convert):
    c = make_contract([{"name": "id"}, {"name": "v", "type": "int64"}], dialect={"null_values": ["-", ""]})
    out = run_convert(b"id,v\n1,-\n2,\n3,7\n", c)
    assert [r["v"] for r in out.rows] == [None, None, 7]
    assert out.result.rows_rejected == 0
