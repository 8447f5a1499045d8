"""`sluice tune` on a small generated file at two memory sizes: real pinned subprocess conversions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sluice import prices
from sluice.tuning import GIB, gb_seconds
from sluice_cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "orders.yaml"
ROWS = 20_000


def _orders(path: Path, rows: int) -> Path:
    """An orders CSV of `rows` valid rows (order ids unique, one day of timestamps)."""
    lines = ["order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"]
    countries = ("DE", "NL", "FR", "US", "GB")
    for i in range(rows):
        q = 1 + i % 5
        lines.append(
            f"O-{100000 + i},2026-11-02T{i % 24:02d}:{i % 60:02d}:00Z,C-{i % 97:04d},{countries[i % 5]},web,"
            f"{q},10.50,{q * 10.5:.2f},true"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tune_measures_each_memory_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _orders(tmp_path / "orders-tune.csv", ROWS)
    code = main(
        ["tune", str(data), "--contract", str(CONTRACT), "--memory", "1769,3538", "--quiet-wait", "0", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    results = report["results"]
    assert [r["memory_mb"] for r in results] == [1769, 3538]
    local = len(os.sched_getaffinity(0))
    assert [r["cpus_pinned"] for r in results] == [1, min(2, local)]
    assert [r["threads"] for r in results] == [1, min(2, local)]  # the engine's thread count, as on Lambda
    for r in results:
        assert r["seconds"] > 0 and r["init_seconds"] > 0 and r["background_cpus"] >= 0
        assert 50 < r["peak_rss_mib"] < r["memory_mb"]
        assert r["gb_seconds"] == pytest.approx(gb_seconds(r["memory_mb"], r["seconds"]), abs=0.01)
        cost = r["gb_seconds"] * prices.LAMBDA_GB_SECOND["x86_64"] + prices.LAMBDA_REQUEST
        assert r["usd_per_1000_files"]["x86_64"] == pytest.approx(1000 * cost, rel=1e-2)
        assert r["usd_per_gib"]["x86_64"] == pytest.approx(cost * GIB / data.stat().st_size, rel=1e-2)
        assert r["usd_per_gib"]["arm64"] < r["usd_per_gib"]["x86_64"]
    extra = report["comparisons"]
    assert extra["file_bytes"] == data.stat().st_size
    assert extra["glue_job_per_file"] == pytest.approx(2 * 60 / 3600 * prices.GLUE_DPU_HOUR)  # the minimum
    assert extra["firehose_json_ratio"] > 1
    assert not list(Path("/tmp").glob("sluice-tune-*/**/*.parquet"))  # outputs removed


def test_tune_table_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _orders(tmp_path / "orders-small.csv", 200)
    assert main(["tune", str(data), "-c", str(CONTRACT), "--memory", "1769", "--quiet-wait", "0"]) == 0
    out = capsys.readouterr().out
    assert "1,769" in out and "list prices as of" in out and "Glue" in out and "Firehose" in out
    assert main(["tune", str(data), "-c", str(CONTRACT), "--memory", "64"]) == 2
    assert "128 to 10240" in capsys.readouterr().err
    assert main(["tune", str(tmp_path / "nope.csv"), "-c", str(CONTRACT)]) == 2
