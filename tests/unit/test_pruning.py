"""Statistics that help engines: min/max on every column (text too), so DuckDB and pyarrow skip row groups.

A file is converted by the real engine into many row groups, its rows clustered by a text column
and numbered in order; a filtered query must then read only the row groups that can match.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.unit.conftest import build_contract, convert_bytes

GROUPS = 10
ROWS = 10_000


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    contract = build_contract(
        [
            {"name": "n", "type": "int64", "required": True},
            {"name": "customer", "required": True},
            {"name": "city"},
            {"name": "at", "type": "date"},
        ]
    )
    cities = ["Zürich", "Aachen", "Köln", "Berlin"]  # text in no order: min/max still written, just less useful
    lines = [f"{i},C-{i // (ROWS // GROUPS):04d},{cities[i % 4]},2026-{1 + i * 12 // ROWS:02d}-01" for i in range(ROWS)]
    data = ("n,customer,city,at\n" + "\n".join(lines) + "\n").encode()
    out = convert_bytes(
        data, contract, tmp_path_factory.mktemp("pruning"), row_group_rows=ROWS // GROUPS, split_unpartitioned=False
    )
    [file] = out.result.outputs
    return file.path


def test_every_column_has_min_max_statistics(written):
    meta = pq.ParquetFile(written).metadata
    assert meta.num_row_groups == GROUPS
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            stats = meta.row_group(g).column(c).statistics
            assert stats is not None and stats.has_min_max, (g, meta.schema.column(c).name)
    first = meta.row_group(0).column(1).statistics
    assert (first.min, first.max) == ("C-0000", "C-0000")


@pytest.mark.parametrize(
    ("where", "expression", "groups"),
    [
        ("customer = 'C-0005'", pc.field("customer") == "C-0005", 1),
        ("n between 2500 and 3500", (pc.field("n") >= 2500) & (pc.field("n") <= 3500), 2),
        ("customer >= 'C-0008'", pc.field("customer") >= "C-0008", 2),
    ],
)
def test_duckdb_and_pyarrow_skip_row_groups(written, where, expression, groups):
    plan = duckdb.sql(f"explain analyze select sum(n) from '{written}' where {where}").fetchall()[0][1]
    scanned = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    assert scanned is not None, plan
    assert (int(scanned.group(1)), int(scanned.group(2))) == (groups, GROUPS)
    [fragment] = ds.dataset(written, format="parquet").get_fragments()
    assert len(fragment.split_by_row_group(filter=expression)) == groups
    # and the answer is still right
    expected = ds.dataset(written, format="parquet").to_table().filter(expression).num_rows
    assert duckdb.sql(f"select count(*) from '{written}' where {where}").fetchall()[0][0] == expected > 0
