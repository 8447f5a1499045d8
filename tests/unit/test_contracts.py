"""Dataset contracts: schema validation with clear messages, and key → dataset resolution."""

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
