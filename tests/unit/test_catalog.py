"""The Glue table derived from a contract, and the template's tables kept equal to it."""

import pytest

from localcloud.deploy import load_template
from sluice.contracts import load_contract
from sluice.pipeline.catalog import glue_table, hive_type, logical_id
from tests.unit.conftest import REPO


def test_the_template_glue_tables_are_the_ones_the_contracts_give():
    resources = load_template(REPO / "template.yaml")["Resources"]
    tables = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Glue::Table"}
    assert tables, "template.yaml has no Glue table"
    for path in sorted((REPO / "contracts").glob("*.yaml")):
        contract = load_contract(path)
        lid = logical_id(contract.dataset)
        if lid in tables:
            assert tables[lid] == glue_table(contract), f"{lid} differs from `sluice contract glue {path.name}`"
    assert "OrdersGlueTable" in tables


def test_types_and_names():
    assert [hive_type(t) for t in ("string", "int64", "float64", "bool", "date", "timestamp", "decimal(12,2)")] == [
        "string",
        "bigint",
        "double",
        "boolean",
        "date",
        "timestamp",
        "decimal(12,2)",
    ]
    assert logical_id("orders_daily_v2") == "OrdersDailyV2GlueTable"


@pytest.mark.parametrize(
    ("partition", "key_type", "projection"),
    [
        ({"name": "m", "source": "at", "transform": "month"}, "string", {"type": "date", "format": "yyyy-MM"}),
        ({"name": "y", "source": "at", "transform": "year"}, "bigint", {"type": "integer", "range": "1970,2100"}),
        (
            {"name": "c", "source": "country", "transform": "identity"},
            "string",
            {"type": "enum", "values": "DE,FR,__HIVE_DEFAULT_PARTITION__"},
        ),
        ({"name": "s", "source": "shop", "transform": "identity"}, "string", {"type": "injected"}),
    ],
)
def test_each_partition_kind_is_projected(make_contract, partition, key_type, projection):
    c = make_contract(
        [{"name": "at", "type": "timestamp"}, {"name": "country", "in": ["DE", "FR"]}, "shop"], partition=[partition]
    )
    table = glue_table(c)["Properties"]["TableInput"]
    name = partition["name"]
    assert table["PartitionKeys"] == [{"Name": name, "Type": key_type}]
    for k, v in projection.items():
        assert table["Parameters"][f"projection.{name}.{k}"] == v
    assert table["Parameters"]["storage.location.template"] == {
        "Fn::Sub": f"s3://${{CuratedBucket}}/t/{name}=${{!{name}}}/"
    }
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["at", "country", "shop"]


def test_an_unpartitioned_dataset_has_no_projection(make_contract):
    table = glue_table(make_contract(["a"]))["Properties"]["TableInput"]
    assert "PartitionKeys" not in table and table["Parameters"] == {"classification": "parquet"}
