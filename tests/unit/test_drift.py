"""Schema drift: headers matched by name under the contract's `drift` policy, and contract versions."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from sluice.contracts import load_contract
from sluice.engine.drift import compatibility
from sluice.errors import InputRejectedError
from sluice_cli.main import main
from tests.unit.conftest import REPO, build_contract, convert_bytes

COLUMNS = [
    {"name": "id", "type": "int64", "required": True},
    {"name": "amount", "type": "decimal(10,2)", "required": True},
    {"name": "note"},
]


def _rows(out):
    return [{k: r[k] for k in sorted(r)} for r in out.rows]


def test_a_reordered_header_is_matched_by_name(tmp_path):
    c = build_contract(COLUMNS)
    out = convert_bytes(b"note,amount,id\nhi,1.50,1\n,2,2\n", c, tmp_path)
    assert [(r["id"], str(r["amount"]), r["note"]) for r in out.rows] == [(1, "1.50", "hi"), (2, "2.00", None)]
    assert pq.read_schema(out.result.outputs[0].path).names == ["id", "amount", "note"]  # the contract's order


def test_letter_case_is_matched_only_when_the_contract_says_so(tmp_path):
    data = b"ID,Amount,NOTE\n1,1.50,x\n"
    with pytest.raises(InputRejectedError, match='missing "id", "amount", "note"'):
        convert_bytes(data, build_contract(COLUMNS), tmp_path)
    out = convert_bytes(data, build_contract(COLUMNS, drift={"case_insensitive": True}), tmp_path)
    assert out.rows[0]["id"] == 1 and out.rows[0]["note"] == "x"


@pytest.mark.parametrize("policy", ["reject", "drop", "keep"])
def test_an_extra_column_under_each_policy(tmp_path, policy):
    c = build_contract(COLUMNS, drift={"extra_columns": policy})
    data = b"id,coupon,amount,note\n1,SUMMER,1.50,a\n2,,3,b\n"
    if policy == "reject":
        with pytest.raises(InputRejectedError, match='unexpected "coupon"'):
            convert_bytes(data, c, tmp_path)
        return
    out = convert_bytes(data, c, tmp_path)
    names = pq.read_schema(out.result.outputs[0].path).names
    if policy == "drop":
        assert names == ["id", "amount", "note"]
        assert [r["note"] for r in out.rows] == ["a", "b"]
    else:
        assert names == ["id", "amount", "note", "coupon"]  # kept as text, after the contract's columns
        assert [r["coupon"] for r in out.rows] == ["SUMMER", None]
        assert ("coupon", "string") in out.result.schema


def test_a_missing_optional_column_is_null_when_the_contract_says_so(tmp_path):
    data = b"amount,id\n1.50,1\n"
    with pytest.raises(InputRejectedError, match='missing "note"'):
        convert_bytes(data, build_contract(COLUMNS), tmp_path)
    out = convert_bytes(data, build_contract(COLUMNS, drift={"missing_columns": "null"}), tmp_path)
    assert out.rows == [{"id": 1, "amount": out.rows[0]["amount"], "note": None}]
    with pytest.raises(InputRejectedError, match='missing "amount"'):  # a required column is never optional
        convert_bytes(b"id,note\n1,x\n", build_contract(COLUMNS, drift={"missing_columns": "null"}), tmp_path)


def test_an_additive_version_keeps_old_files_readable_with_new_ones(tmp_path):
    """v1 files and v2 files (a new optional column) read as one table by DuckDB, pyarrow and pandas."""
    v1 = build_contract(COLUMNS, version=1)
    v2 = build_contract([*COLUMNS, {"name": "channel", "in": ["web", "app"]}], version=2)
    assert compatibility(v1, v2) == []
    root = tmp_path / "curated"
    for contract, data, run in (
        (v1, b"id,amount,note\n1,1.50,a\n", "r1"),
        (v2, b"channel,id,amount,note\napp,2,2,b\n", "r2"),
    ):
        out = convert_bytes(data, contract, tmp_path / run)
        [o] = out.result.outputs
        (root / "t").mkdir(parents=True, exist_ok=True)
        o.path.rename(root / "t" / f"{run}.parquet")
    want = [(1, None), (2, "app")]
    rel = duckdb.sql(f"select id, channel from read_parquet('{root}/t/*.parquet', union_by_name=true) order by id")
    assert rel.fetchall() == want
    schema = pa.unify_schemas([pq.read_schema(p) for p in sorted((root / "t").glob("*.parquet"))])
    table = ds.dataset(root / "t", schema=schema).to_table().sort_by("id")
    assert list(zip(table["id"].to_pylist(), table["channel"].to_pylist(), strict=True)) == want
    frame = pd.read_parquet(root / "t", schema=schema).sort_values("id")
    assert frame["channel"].tolist()[1] == "app" and pd.isna(frame["channel"].tolist()[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"columns": [COLUMNS[1], COLUMNS[2]]}, "required column 'id' is removed"),
        ({"columns": [{**COLUMNS[0], "type": "string"}, *COLUMNS[1:]]}, "changes type int64 -> string"),
        (
            {"columns": [COLUMNS[0], {**COLUMNS[1], "type": "decimal(8,2)"}, COLUMNS[2]]},
            "decimal(10,2) -> decimal(8,2)",
        ),
        ({"columns": [*COLUMNS, {"name": "x", "required": True}]}, "new column 'x' is required"),
        ({"version": 1}, "version 1 does not follow 1"),
        ({"partition": [{"name": "p", "source": "note"}]}, "the partitioning changes"),
    ],
)
def test_incompatible_versions_are_refused(change, message):
    old = build_contract(COLUMNS, version=1)
    new = build_contract(change.pop("columns", COLUMNS), **{"version": 2, **change})
    problems = compatibility(old, new)
    assert any(message in p for p in problems), problems


def test_compatible_changes_pass():
    old = build_contract(COLUMNS, version=1)
    wider = [COLUMNS[0], {**COLUMNS[1], "type": "decimal(12,3)"}, {"name": "note", "required": False}, {"name": "y"}]
    assert compatibility(old, build_contract(wider, version=2)) == []


def test_contract_check_old_new_refuses_with_the_migration(tmp_path, capsys):
    old = yaml.safe_load((REPO / "contracts/orders.yaml").read_text())
    new = {**old, "version": 2, "columns": [c for c in old["columns"] if c["name"] != "channel"]}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    assert main(["contract", "check", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")]) == 1
    err = capsys.readouterr().err
    assert "required column 'channel' is removed" in err and "first make it optional" in err
    added = {**old, "version": 2, "columns": [*old["columns"], {"name": "coupon", "type": "string"}]}
    (tmp_path / "added.yaml").write_text(yaml.safe_dump(added))
    assert main(["contract", "check", str(tmp_path / "old.yaml"), str(tmp_path / "added.yaml")]) == 0
    assert load_contract(tmp_path / "added.yaml").version == 2
