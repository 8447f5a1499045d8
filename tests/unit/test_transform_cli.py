"""`sluice convert` and `sluice contract ...` on local files: JSON summary, files in place, clean refusals."""

import json

import pyarrow.parquet as pq
import yaml

from sluice_cli.main import main
from tests.unit.conftest import REPO

SAMPLE = REPO / "samples/orders/orders-2026-11-01.csv"
CONTRACT = REPO / "contracts/orders.yaml"


def test_convert_prints_a_summary_and_lays_out_the_files(tmp_path, capsys):
    assert main(["convert", str(SAMPLE), "--contract", str(CONTRACT), "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (245, 240, 5)
    assert summary["run_id"].startswith("orders-orders-2026-11-01-")
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in summary["output_files"]) == 240
    assert all(p.startswith(str(tmp_path / "orders" / "order_date=")) for p in summary["output_files"])
    qdir = tmp_path / "_quarantine" / "orders" / summary["run_id"]
    assert sorted(summary["quarantine_files"]) == [str(qdir / "rejected.csv"), str(qdir / "report.json")]
    assert summary["rejects_by_rule"]["row.fields"] == 1 and summary["blank_lines"] == 0
    assert not list(tmp_path.glob(".staging-*"))
    # same file, same run id, same names: a rerun overwrites
    assert main(["convert", str(SAMPLE), "--contract", str(CONTRACT), "--out", str(tmp_path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["output_files"] == summary["output_files"]


def test_refusals_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,name\n1,x\n")
    assert main(["convert", str(bad), "--contract", str(CONTRACT), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sluice: error: ") and err.count("\n") == 1 and "missing" in err
    assert main(["convert", str(tmp_path / "nope.csv"), "--contract", str(CONTRACT), "--out", str(tmp_path)]) == 2
    assert "No such file" in capsys.readouterr().err
    assert not list((tmp_path / "o").rglob("*.parquet"))


def test_threshold_refusal_keeps_the_quarantine(tmp_path, capsys):
    strict = tmp_path / "strict.yaml"
    data = yaml.safe_load(CONTRACT.read_text())
    data["max_reject_ratio"] = 0.0
    strict.write_text(yaml.safe_dump(data))
    assert main(["convert", str(SAMPLE), "--contract", str(strict), "--out", str(tmp_path / "o")]) == 2
    assert "max_reject_ratio" in capsys.readouterr().err
    assert list((tmp_path / "o" / "_quarantine").rglob("report.json"))
    assert not list((tmp_path / "o").rglob("*.parquet"))


def test_infer_then_convert_then_check(tmp_path, capsys):
    assert main(["contract", "infer", str(SAMPLE), "--dataset", "orders_guess"]) == 0
    text = capsys.readouterr().out
    contract = tmp_path / "guess.yaml"
    contract.write_text(text)
    assert main(["contract", "check", str(contract)]) == 0
    assert "ok (orders_guess v1, 9 columns)" in capsys.readouterr().out
    assert main(["convert", str(SAMPLE), "--contract", str(contract), "--out", str(tmp_path / "o")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_in"] == 245 and summary["rows_in"] == summary["rows_out"] + summary["rows_rejected"]
    assert main(["contract", "schema"]) == 0
    assert "dialect" in json.loads(capsys.readouterr().out)["properties"]


def test_infer_refusal_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\n")
    assert main(["contract", "infer", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and err.count("\n") == 1


def test_contract_glue_prints_a_resource_per_contract(tmp_path, capsys):
    from sluice.contracts import load_contract
    from sluice.pipeline.catalog import glue_table

    orders = REPO / "contracts" / "orders.yaml"
    assert main(["contract", "glue", str(orders)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"OrdersGlueTable": glue_table(load_contract(orders))}
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: Bad Name\n")
    assert main(["contract", "glue", str(broken)]) == 2
    assert "broken.yaml" in capsys.readouterr().err


def test_convert_shows_progress_on_a_terminal_or_when_asked(tmp_path, capsys, monkeypatch):
    from sluice_cli import convert_cmd

    contract = str(REPO / "contracts" / "orders.yaml")
    assert main(["convert", str(SAMPLE), "-c", contract, "-o", str(tmp_path / "a"), "--block-size-mib", "1"]) == 0
    assert capsys.readouterr().err == ""  # auto, and stderr is not a terminal here
    monkeypatch.setattr(convert_cmd, "throttled", lambda hook, _seconds: hook)  # every chunk, for the test
    assert main(["convert", str(SAMPLE), "-c", contract, "-o", str(tmp_path / "b"), "--progress", "always"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\n")
    last = err.strip().split("\r")[-1]
    assert "100.0% of" in last and "245 rows (5 quarantined)" in last and "finishing" in last
