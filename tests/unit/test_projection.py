"""The Glue table's partition projection covers every folder the writer actually makes.

Each layout of tests/unit/test_hive_readers.py (with ``in`` lists, so identity partitions are
enums) is written by the real engine; the folders on disk are then matched against the rendered
table's ``projection.*`` parameters, read here as Athena reads them (not through sluice's own
:func:`sluice.pipeline.catalog.projected`). Out-of-range and null dates must make the run warn instead.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.contracts import Contract
from sluice.engine import partitioning
from sluice.pipeline import catalog
from sluice.pipeline.catalog import glue_table, unprojected
from sluice_cli.main import main
from tests.unit.conftest import build_contract, convert_bytes
from tests.unit.test_hive_readers import COLUMNS, LAYOUTS, TEXTS, _csv, _source

IN_LISTS = {
    "s": [t for t in TEXTS if t is not None],
    "k": [-1, 0, 1, 2],
    "b": [True, False],
    "price": [f"{i}.{c:02d}" for i in range(3) for c in range(0, 100, 25)],
}
TODAY = dt.date(2026, 12, 5)


def _athena_bound(text: str, today: dt.date) -> dt.date:
    """A projection range bound as Athena reads it: a date in the format, or NOW[+-]<n>YEARS."""
    m = re.fullmatch(r"NOW(?:([+-])(\d+)YEARS)?", text)
    if m:
        years = int(m.group(2) or 0) * (-1 if m.group(1) == "-" else 1)
        return today.replace(year=today.year + years)
    return dt.date.fromisoformat(text if len(text) == 10 else f"{text}-01")


def _covers(params: dict[str, Any], name: str, folder: str, today: dt.date = TODAY) -> bool:
    kind = params[f"projection.{name}.type"]
    if kind == "injected":
        return True
    if kind == "enum":
        return folder in params[f"projection.{name}.values"].split(",")
    if kind == "integer":
        lo, hi = (int(v) for v in params[f"projection.{name}.range"].split(","))
        return bool(re.fullmatch(r"-?\d+", folder)) and lo <= int(folder) <= hi
    assert kind == "date"
    fmt = params[f"projection.{name}.format"]
    pattern = {"yyyy-MM-dd": r"\d{4}-\d{2}-\d{2}", "yyyy-MM": r"\d{4}-\d{2}"}[fmt]
    if not re.fullmatch(pattern, folder):
        return False
    first, last = (_athena_bound(v, today) for v in params[f"projection.{name}.range"].split(","))
    value = dt.date.fromisoformat(folder if fmt == "yyyy-MM-dd" else f"{folder}-01")
    if fmt == "yyyy-MM":
        first, last = first.replace(day=1), last.replace(day=1)
    return first <= value <= last


def _with_in_lists() -> list[dict[str, Any]]:
    return [{**c, "in": IN_LISTS[c["name"]]} if c["name"] in IN_LISTS else c for c in COLUMNS]


def _folders(root: Path) -> list[dict[str, str]]:
    """Every partition path written under `root`, as ``{name: folder text}`` (escaped, as on disk)."""
    out = []
    for f in sorted(root.rglob("*.parquet")):
        segments = f.relative_to(root).parts[:-1]
        out.append(dict(s.split("=", 1) for s in segments))
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_folder_written_is_covered_by_the_projection(tmp_path, layout):
    contract = build_contract(_with_in_lists(), partition=LAYOUTS[layout][0])
    out = convert_bytes(_csv(_source()), contract, tmp_path, block_size=512)
    assert out.result.rows_rejected == 0
    params = glue_table(contract)["Properties"]["TableInput"]["Parameters"]
    folders = _folders(out.staging / contract.dataset)
    assert folders
    nulls_of_dates = []
    for folder in folders:
        for p in contract.partition:
            if folder[p.name] == partitioning.DEFAULT_PARTITION and p.transform != "identity":
                nulls_of_dates.append(folder)  # a null date has no projected home: the run warns instead
                continue
            assert _covers(params, p.name, folder[p.name]), (p.name, folder[p.name], params)
    rows, warnings = unprojected(contract, ((o.partition, o.rows) for o in out.result.outputs), TODAY)
    assert (rows > 0) == bool(nulls_of_dates) == (len(warnings) > 0)
    assert all(partitioning.DEFAULT_PARTITION in w for w in warnings)


def test_enum_values_are_the_folder_names_the_writer_makes(make_contract, tmp_path):
    """`1.5` in a decimal(10,2) column is folder ``1.50``; `1.0` in a float column ``1``; ``x/y`` is ``x%2Fy``."""
    c = make_contract(
        [
            {"name": "price", "type": "decimal(10,2)", "in": [1.5, 2], "required": True},
            {"name": "rate", "type": "float64", "in": [1.0, 2.5]},
            {"name": "s", "in": ["x/y", "café", "a:b"], "required": True},
            {"name": "ok", "type": "bool", "in": [True, False], "required": True},
        ],
        partition=[
            {"name": "price_p", "source": "price"},
            {"name": "rate_p", "source": "rate"},
            {"name": "s_p", "source": "s"},
            {"name": "ok_p", "source": "ok"},
        ],
    )
    params = glue_table(c)["Properties"]["TableInput"]["Parameters"]
    assert params["projection.price_p.values"] == "1.50,2.00"
    assert params["projection.rate_p.values"] == "1,2.5,__HIVE_DEFAULT_PARTITION__"  # rate may be null
    assert params["projection.s_p.values"] == "x%2Fy,café,a%3Ab"
    assert params["projection.ok_p.values"] == "true,false"
    out = convert_bytes(b"price,rate,s,ok\n1.5,1.0,x/y,true\n2,,caf\xc3\xa9,false\n", c, tmp_path)
    for folder in _folders(out.staging / "t"):
        for name, text in folder.items():
            assert _covers(params, name, text), (name, text)
    # the renderer names values with the writer's function
    assert catalog.folder_values is partitioning.folder_values


def test_ranges_come_from_the_contract_with_a_wide_default(make_contract):
    cols = [{"name": "at", "type": "timestamp", "required": True}]
    default = make_contract(cols, partition=[{"name": "d", "source": "at", "transform": "date"}])
    params = glue_table(default)["Properties"]["TableInput"]["Parameters"]
    assert params["projection.d.range"] == "1970-01-01,NOW+1YEARS"
    narrow = make_contract(
        cols,
        partition=[
            {"name": "y", "source": "at", "transform": "year", "range": [2015, 2030]},
            {"name": "d", "source": "at", "transform": "date", "range": ["2020-01-01", "NOW"]},
        ],
    )
    params = glue_table(narrow)["Properties"]["TableInput"]["Parameters"]
    assert params["projection.y.range"] == "2015,2030" and params["projection.d.range"] == "2020-01-01,NOW"


@pytest.mark.parametrize(
    ("partition", "message"),
    [
        ({"transform": "identity", "range": ["a", "b"]}, "`range` is for date, month and year"),
        ({"transform": "year", "range": ["2015", "soon"]}, "a year range is two integers"),
        ({"transform": "date", "range": ["2015-01", "NOW"]}, "neither yyyy-MM-dd"),
    ],
)
def test_a_bad_range_is_refused(make_contract, partition, message):
    from sluice.errors import ContractError

    with pytest.raises(ContractError, match=message):
        make_contract([{"name": "at", "type": "date"}], partition=[{"name": "p", "source": "at", **partition}])


def test_rows_outside_the_range_warn_in_the_convert_summary(tmp_path, capsys):
    contract: dict[str, Any] = {
        "dataset": "events",
        "match": {"prefix": "events/"},
        "columns": [{"name": "at", "type": "date"}, {"name": "n", "type": "int64"}],
        "partition": [{"name": "d", "source": "at", "transform": "date", "range": ["2020-01-01", "NOW"]}],
    }
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(contract))
    next_year = dt.date.today().replace(month=1, day=1).replace(year=dt.date.today().year + 1)
    data = tmp_path / "e.csv"
    data.write_text(f"at,n\n2019-12-31,1\n2021-05-05,2\n{next_year},3\n,4\n")
    assert main(["convert", str(data), "--contract", str(path), "--out", str(tmp_path / "o")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_out"] == 4 and summary["rows_unprojected"] == 3
    joined = "\n".join(summary["warnings"])
    assert "d=2019-12-31" in joined and f"d={next_year}" in joined and "d=__HIVE_DEFAULT_PARTITION__" in joined
    assert "2021-05-05" not in joined and "widen the partition's `range`" in joined


def test_relative_bounds(make_contract):
    c: Contract = make_contract(
        [{"name": "at", "type": "date"}],
        partition=[{"name": "m", "source": "at", "transform": "month", "range": ["NOW-2YEARS", "NOW+1MONTHS"]}],
    )
    [p] = c.partition
    today = dt.date(2026, 1, 31)
    assert [catalog.projected(p, c, m, today) for m in ("2023-12", "2024-01", "2026-02", "2026-03")] == [
        False,
        True,
        True,
        False,
    ]
