"""`sluice query --from DIR` over `sluice convert` output: typed partitions, versions by name, quarantine, formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from sluice_cli.main import main

V1: dict[str, Any] = {
    "dataset": "sales",
    "version": 1,
    "match": {"prefix": "sales/"},
    "columns": [
        {"name": "id", "type": "int64", "required": True},
        {"name": "day", "type": "date", "required": True},
        {"name": "paid", "type": "bool"},
        {"name": "price", "type": "decimal(10,2)", "min": 0},
    ],
    "partition": [
        {"name": "y", "source": "day", "transform": "year"},
        {"name": "paid_p", "source": "paid"},
        {"name": "price_p", "source": "price"},
    ],
}
V2 = {**V1, "version": 2, "columns": [*V1["columns"], {"name": "coupon", "type": "string"}]}


def _convert(tmp_path: Path, contract: dict[str, Any], name: str, text: str, out: Path) -> None:
    cpath = tmp_path / f"{name}.yaml"
    cpath.write_text(yaml.safe_dump(contract))
    data = tmp_path / f"{name}.csv"
    data.write_text(text)
    assert main(["convert", str(data), "--contract", str(cpath), "--out", str(out)]) == 0


@pytest.fixture
def landed(tmp_path, capsys) -> tuple[Path, Path]:
    """v1 and v2 files in one convert folder; the contracts folder holds v2 (the newest)."""
    out = tmp_path / "out"
    _convert(tmp_path, V1, "v1", "id,day,paid,price\n1,2025-03-01,true,1.50\n2,2026-01-02,false,-1\n", out)
    _convert(tmp_path, V2, "v2", "coupon,id,day,paid,price\nX1,3,2026-05-05,,2\n", out)
    capsys.readouterr()
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "sales.yaml").write_text(yaml.safe_dump(V2))
    return out, contracts


def _json(capsys, out: Path, contracts: Path, sql: str) -> list[dict[str, Any]]:
    assert main(["query", "--from", str(out), "--contracts", str(contracts), "--format", "json", sql]) == 0
    result: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return result


def test_one_table_across_versions_with_typed_partitions(landed, capsys):
    out, contracts = landed
    rows = _json(
        capsys,
        out,
        contracts,
        "select id, y, paid_p, price_p, coupon, typeof(y) t, typeof(price_p) tp from sales order by id",
    )
    assert rows == [
        {"id": 1, "y": 2025, "paid_p": True, "price_p": "1.50", "coupon": None, "t": "BIGINT", "tp": "DECIMAL(10,2)"},
        {"id": 3, "y": 2026, "paid_p": None, "price_p": "2.00", "coupon": "X1", "t": "BIGINT", "tp": "DECIMAL(10,2)"},
    ]
    assert _json(capsys, out, contracts, "select count(*) n from sales where y = 2026 and price_p > 1.9") == [{"n": 1}]


def test_the_quarantine_is_a_table(landed, capsys):
    out, contracts = landed
    rows = _json(capsys, out, contracts, 'select line, rule, "column", value from sales_rejected')
    assert rows == [{"line": 3, "rule": "price.min", "column": "price", "value": "-1"}]


def test_csv_and_parquet_output(landed, capsys, tmp_path):
    out, contracts = landed
    base = ["query", "--from", str(out), "--contracts", str(contracts)]
    assert main([*base, "--format", "csv", "select id, coupon from sales order by id"]) == 0
    assert capsys.readouterr().out == "id,coupon\n1,\n3,X1\n"
    target = tmp_path / "r.parquet"
    assert main([*base, "--format", "parquet", "--out", str(target), "select id from sales order by id"]) == 0
    assert pq.read_table(target).column("id").to_pylist() == [1, 3]
    assert main([*base, "select count(*) from sales"]) == 0
    assert "2" in capsys.readouterr().out


def test_a_bad_query_or_folder_is_one_line(landed, capsys, tmp_path):
    out, contracts = landed
    assert main(["query", "--from", str(out), "--contracts", str(contracts), "select nope from sales"]) == 2
    assert "query failed" in capsys.readouterr().err
    assert main(["query", "--from", str(tmp_path / "none"), "--contracts", str(contracts), "select 1"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_an_s3_uri_is_read_like_a_folder(landed, capsys, monkeypatch):
    """`--from s3://bucket/prefix` (here a local moto server; AWS_ENDPOINT_URL is honoured)."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    capsys.readouterr()  # the server's start-up line
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for k, v in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="curated")
        out, contracts = landed
        for f in (out / "sales").rglob("*.parquet"):
            s3.upload_file(str(f), "curated", f"exports/{f.relative_to(out).as_posix()}")
        rows = _json_from(capsys, "s3://curated/exports", contracts, "select id, y, coupon from sales order by id")
        assert rows == [{"id": 1, "y": 2025, "coupon": None}, {"id": 3, "y": 2026, "coupon": "X1"}]
    finally:
        server.stop()


def _json_from(capsys, source: str, contracts: Path, sql: str) -> list[dict[str, Any]]:
    assert main(["query", "--from", source, "--contracts", str(contracts), "--format", "json", sql]) == 0
    captured = capsys.readouterr()
    assert captured.out.lstrip().startswith("["), (captured.out[:500], captured.err[:500])
    result: list[dict[str, Any]] = json.loads(captured.out)
    return result
