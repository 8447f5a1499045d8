"""The streaming CSV -> Parquet engine: outputs, quarantine, whole-file refusals, partitions, hooks."""

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.errors import ContractError, InputRejectedError, RejectThresholdError

REPO_SAMPLES = "samples/orders"


def orders_bytes(name="orders-2026-11-01.csv"):
    from tests.unit.conftest import REPO

    return (REPO / REPO_SAMPLES / name).read_bytes()


# --------------------------------------------------------------------------- the sample dataset
def test_orders_sample_lands_typed_partitioned_and_quarantined(run_convert, orders_contract):
    out = run_convert(orders_bytes(), orders_contract, step=4096, block_size=1024)
    r = out.result
    assert (r.rows_in, r.rows_out, r.rows_rejected) == (245, 240, 5)
    assert r.rejects_by_rule == {
        "country.in": 1,
        "customer_id.required": 1,
        "ordered_at.type": 1,
        "quantity.min": 1,
        "row.fields": 1,
    }
    assert sorted(o.key for o in r.outputs) == [
        "orders/order_date=2026-11-01/run-1-0.parquet",
        "orders/order_date=2026-11-02/run-1-0.parquet",
    ]
    schema = pq.read_schema(r.outputs[0].path)
    assert schema.names == list(orders_contract.column_names)  # the partition column is in the path only
    assert schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("amount").type == pa.decimal128(12, 2)
    first = next(row for row in out.rows if row["order_id"] == "O-010000")
    assert first["amount"] == Decimal("133.34") and first["paid"] is True and first["quantity"] == 2
    for o in r.outputs:
        days = {t.date().isoformat() for t in pq.read_table(o.path).column("ordered_at").to_pylist()}
        assert days == {o.partition["order_date"]}
    assert [int(x["_line"]) for x in out.rejected] == [21, 56, 91, 131, 171]
    bad_country = out.rejected[0]
    assert bad_country["_rule"] == "country.in" and bad_country["_column"] == "country"
    assert bad_country["_value"] == "XX"
    assert bad_country["_text"] == "O-910001,2026-11-01T09:14:00Z,C-0007,XX,web,2,10.00,20.00,true"
    assert "line 21" in bad_country["_message"] and "s3://raw/t/file.csv (version v1)" in bad_country["_message"]
    assert r.schema[-1] == ("order_date", "date")
    report = json.loads(r.report_path.read_text())
    assert report["rejects_by_rule"] == r.rejects_by_rule
    assert report["examples"]["quantity.min"][0]["line"] == 56
    json.dumps(r.to_summary())


def test_rerun_overwrites_the_same_files(run_convert, orders_contract):
    a = run_convert(orders_bytes(), orders_contract)
    b = run_convert(orders_bytes(), orders_contract)
    assert [o.key for o in a.result.outputs] == [o.key for o in b.result.outputs]
    assert [o.rows for o in a.result.outputs] == [o.rows for o in b.result.outputs]


def test_chunk_size_never_changes_the_result(run_convert, orders_contract):
    data = orders_bytes().replace(b"\n", b"\r\n")
    whole = run_convert(data, orders_contract)
    tiny = run_convert(data, orders_contract, step=3, block_size=100)
    assert whole.rows == tiny.rows
    assert whole.rejected == tiny.rejected


def test_observers_see_valid_typed_rows_without_partition_columns(run_convert, orders_contract):
    seen = []
    out = run_convert(orders_bytes(), orders_contract, observers=[seen.append], block_size=2048)
    assert len(seen) > 1
    assert all(t.schema.names == list(orders_contract.column_names) for t in seen)
    assert sum(t.num_rows for t in seen) == out.result.rows_out == 240


# --------------------------------------------------------------------------- whole-file refusals
def test_header_mismatch_lists_the_differences_and_leaves_nothing(run_convert, make_contract, tmp_path):
    c = make_contract(["id", "name", "price"])
    with pytest.raises(InputRejectedError) as info:
        run_convert(b"id,title,cost,extra\n1,a,2,x\n", c)
    msg = str(info.value)
    assert 'missing "name", "price"' in msg and 'unexpected "title", "cost", "extra"' in msg
    assert "s3://raw/t/file.csv (version v1) line 1" in msg
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("rejected.csv"))


def test_header_names_are_trimmed_and_mapped_through_source(run_convert, make_contract):
    c = make_contract([{"name": "bank", "source": "Bank Name"}, {"name": "city", "source": ""}])
    out = run_convert("Bank Name\u00a0, \r\nFirst,Town\r\n".encode(), c)
    assert out.rows == [{"bank": "First", "city": "Town"}]


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b"\xef\xbb\xbf"])
def test_empty_files_are_rejected(run_convert, make_contract, data):
    with pytest.raises(InputRejectedError, match=r"empty|blank"):
        run_convert(data, make_contract(["a", "b"]))


def test_header_only_file_loads_nothing(run_convert, make_contract):
    out = run_convert(b"a,b\n", make_contract(["a", "b"]))
    assert out.result.rows_in == 0 and out.result.outputs == ()


def test_unterminated_quote_is_rejected_with_its_line(run_convert, make_contract):
    c = make_contract(["a", "b"], dialect={"newlines_in_values": True})
    with pytest.raises(InputRejectedError, match=r"line 3: a quote opened in this record never closes"):
        run_convert(b'a,b\n1,2\n3,"x\n\n5,6\n', c)


def test_quoted_line_break_fails_loudly_when_the_contract_forbids_it(run_convert, make_contract):
    data = b'a,b\n1,2\n3,"multi\nline"\n4,5\n'
    with pytest.raises(InputRejectedError, match=r"line 3: a quoted value contains a line break.*newlines_in_values"):
        run_convert(data, make_contract(["a", "b"]))
    with pytest.raises(InputRejectedError, match="line 3"):
        run_convert(data, make_contract(["a", "b"]), block_size=12)
    ok = run_convert(data, make_contract(["a", "b"], dialect={"newlines_in_values": True}), block_size=12)
    assert ok.column("b") == ["2", "multi\nline", "5"]


def test_reject_threshold_fails_the_run_but_keeps_the_report(run_convert, make_contract, tmp_path):
    c = make_contract([{"name": "n", "type": "int64"}], max_reject_ratio=0.25)
    with pytest.raises(RejectThresholdError, match=r"2 of 4 rows \(50.0%\).*n.type x2"):
        run_convert(b"n\n1\nx\ny\n4\n", c)
    assert not list(tmp_path.rglob("*.parquet"))
    assert list(tmp_path.rglob("report.json"))
    assert run_convert(b"n\n1\nx\n3\n4\n", c).result.rows_rejected == 1


# --------------------------------------------------------------------------- row-level problems
def test_ragged_rows_nul_and_quote_errors_are_quarantined_with_their_lines(run_convert, make_contract):
    data = b'a,b,c\n1,2,3\n4,5\n6,7,8,9\n"x","y","z" junk\n1,\x002,3\n\n7,8,9\n'
    out = run_convert(data, make_contract(["a", "b", "c"]))
    assert out.column("a") == ["1", "7"]
    got = [(int(r["_line"]), r["_rule"], r["_text"]) for r in out.rejected]
    assert got == [
        (3, "row.fields", "4,5"),
        (4, "row.fields", "6,7,8,9"),
        (5, "row.quote", '"x","y","z" junk'),
        (6, "row.nul", "1,\\x002,3"),
    ]
    assert out.result.blank_lines == 1


def test_undecodable_bytes_quarantine_only_their_row(run_convert, make_contract):
    out = run_convert(b"a,b\nok,1\nbad\xff\xfe,2\nok,3\n", make_contract(["a", "b"]))
    assert out.column("b") == ["1", "3"]
    [bad] = out.rejected
    assert (bad["_line"], bad["_rule"], bad["_text"]) == ("3", "row.encoding", "bad\\xff\\xfe,2")


def test_blank_lines_are_values_in_a_one_column_file(run_convert, make_contract):
    out = run_convert(b"col\n1\n\n3\n", make_contract([{"name": "col", "type": "int64"}]))
    assert out.column("col") == [1, None, 3]
    assert out.result.blank_lines == 0


# --------------------------------------------------------------------------- dialects and encodings
@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", "\ufeffname,city\r\nJosé,Zürich\r\n".encode()),
        ("utf-16", "name,city\nJosé,Zürich\n".encode("utf-16")),
        ("utf-16", "name,city\nJosé,Zürich\n".encode("utf-16-be").join([b"\xfe\xff", b""])),
        ("cp1252", "name,city\nJosé\u2013x,Zürich\n".encode("cp1252")),
        ("latin-1", "name,city\nJosé,Zürich\n".encode("latin-1")),
        ("shift_jis", "name,city\n本山,東京\n".encode("shift_jis")),
    ],
)
def test_encodings_are_decoded_explicitly(run_convert, make_contract, encoding, data):
    out = run_convert(data, make_contract(["name", "city"], dialect={"encoding": encoding}), step=5, block_size=16)
    assert len(out.rows) == 1
    assert out.rows[0]["city"] in ("Zürich", "東京")


def test_a_utf8_contract_refuses_a_legacy_header_naming_the_byte(run_convert, make_contract):
    with pytest.raises(InputRejectedError, match=r"line 1: byte\(s\) a0 at offset 9 are not valid utf-8"):
        run_convert("Bank Name\u00a0,City\n".encode("cp1252"), make_contract(["Bank Name", "City"]))
    with pytest.raises(InputRejectedError, match="UTF-16-LE byte order mark but the contract says encoding utf-8"):
        run_convert("a,b\n".encode("utf-16"), make_contract(["a", "b"]))


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings_and_quoting(run_convert, make_contract, eol):
    data = eol.join([b"a,b", b'"x, ""y""",plain', b'"",', b'q"uote,z']) + eol
    out = run_convert(data, make_contract(["a", "b"], dialect={"null_values": []}), step=1, block_size=4)
    assert out.rows == [{"a": 'x, "y"', "b": "plain"}, {"a": "", "b": ""}, {"a": 'q"uote', "b": "z"}]


def test_tab_delimiter_without_quoting_and_backslash_escapes(run_convert, make_contract):
    c = make_contract(["ns", "title"], dialect={"delimiter": "\t", "quote_char": None})
    out = run_convert(b'ns\ttitle\n0\t"!"\n0\t""Quoted"_title\n', c)
    assert out.column("title") == ['"!"', '""Quoted"_title']
    c = make_contract(["a", "b"], dialect={"escape_char": "\\", "double_quote": False})
    out = run_convert(b'a,b\n"say \\"hi\\"",1\n', c)
    assert out.rows == [{"a": 'say "hi"', "b": "1"}]


def test_preamble_lines_are_skipped(run_convert, make_contract):
    c = make_contract(["a", "b"], dialect={"skip_rows": 2})
    out = run_convert(b"Report,\n,\na,b\n1,2\n", c)
    assert out.rows == [{"a": "1", "b": "2"}]


def test_headerless_files_map_columns_by_position(run_convert, make_contract):
    c = make_contract(["x", "y"], dialect={"header": False})
    out = run_convert(b"1,2\n3,4,5\n", c)
    assert out.column("x") == ["1"]
    assert out.rejected[0]["_line"] == "2"


# --------------------------------------------------------------------------- uniqueness across chunks
def test_unique_keeps_the_first_occurrence_across_chunks(run_convert, make_contract):
    c = make_contract([{"name": "id", "unique": True}, {"name": "n", "type": "int64", "unique": True}])
    rows = [f"k{i % 50},{i}" for i in range(120)] + ["", "k7,5000", "k999,5"]
    out = run_convert(("id,n\n" + "\n".join(rows) + "\n").encode(), c, block_size=64)
    assert out.column("id") == [f"k{i}" for i in range(50)]
    dup_lines = [int(r["_line"]) for r in out.rejected if r["_rule"] == "id.unique"]
    assert dup_lines[:2] == [52, 53] and len(dup_lines) == 71
    assert [r["_rule"] for r in out.rejected[-1:]] == ["n.unique"]


# --------------------------------------------------------------------------- partitions
@pytest.mark.parametrize(
    ("transform", "expected"),
    [("date", "d=2026-01-31"), ("month", "d=2026-01"), ("year", "d=2026"), ("identity", "d=2026-01-31T23%3A59%3A00")],
)
def test_partition_transforms(run_convert, make_contract, transform, expected):
    c = make_contract(
        [{"name": "ts", "type": "timestamp"}, "v"], partition=[{"name": "d", "source": "ts", "transform": transform}]
    )
    out = run_convert(b"ts,v\n2026-01-31T23:59:00Z,a\n", c)
    [o] = out.result.outputs
    assert o.key == f"t/{expected}/run-1-0.parquet"


def test_many_partitions_stay_one_file_each_with_a_writer_cap(run_convert, make_contract):
    c = make_contract(
        [{"name": "day", "type": "date"}, {"name": "n", "type": "int64"}],
        partition=[{"name": "p", "source": "day", "transform": "identity"}],
    )
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i % 40) for i in range(2000)]
    data = "day,n\n" + "".join(f"{d},{i}\n" for i, d in enumerate(days))
    out = run_convert(data.encode(), c, block_size=2048, max_open_writers=3, buffer_bytes=4096, row_group_rows=50)
    assert len(out.result.outputs) == 40
    assert len({o.key for o in out.result.outputs}) == 40
    for o in out.result.outputs:
        t = pq.read_table(o.path)
        day = dt.date.fromisoformat(o.partition["p"])
        assert set(t.column("day").to_pylist()) == {day}
        assert t.column("n").to_pylist() == sorted(t.column("n").to_pylist())
    assert sorted(out.column("n")) == list(range(2000))
    assert not list(out.staging.rglob("*.arrow"))


def test_null_partition_values_use_the_hive_default(run_convert, make_contract):
    c = make_contract(["k", "v"], partition=[{"name": "p", "source": "k"}])
    out = run_convert(b"k,v\n,1\na/b,2\n", c)
    assert sorted(o.key for o in out.result.outputs) == [
        "t/p=__HIVE_DEFAULT_PARTITION__/run-1-0.parquet",
        "t/p=a%2Fb/run-1-0.parquet",
    ]
    assert sorted(o.partition["p"] for o in out.result.outputs) == ["__HIVE_DEFAULT_PARTITION__", "a/b"]


def test_partition_transform_must_fit_the_column(run_convert, make_contract):
    c = make_contract(["k"], partition=[{"name": "p", "source": "k", "transform": "month"}])
    with pytest.raises(ContractError, match="needs a date or timestamp column"):
        run_convert(b"k\nx\n", c)


# --------------------------------------------------------------------------- pandas hook
def _hook_module(tmp_path, monkeypatch, body):
    (tmp_path / "sluice_test_hooks.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("sluice_test_hooks", None)
    importlib.invalidate_caches()


def test_pandas_hook_derives_columns_and_its_dropped_rows_are_quarantined(
    run_convert, make_contract, tmp_path, monkeypatch
):
    _hook_module(
        tmp_path,
        monkeypatch,
        ("def derive(df):\n    df = df[df['n'] != 2].copy()\n    df['double'] = df['n'] * 2\n    return df\n"),
    )
    seen = []
    c = make_contract([{"name": "n", "type": "int64"}], transform="sluice_test_hooks:derive")
    out = run_convert(b"n\n1\n2\n3\nx\n", c, observers=[seen.append])
    assert out.rows == [{"n": 1, "double": 2}, {"n": 3, "double": 6}]
    assert [(r["_line"], r["_rule"]) for r in out.rejected] == [("3", "row.transform"), ("5", "n.type")]
    assert seen[0].schema.names == ["n"]
    assert out.result.schema == (("n", "int64"), ("double", "int64"))


def test_a_failing_hook_is_reported_not_crashed(run_convert, make_contract, tmp_path, monkeypatch):
    _hook_module(tmp_path, monkeypatch, "def boom(df):\n    raise KeyError('nope')\n")
    c = make_contract(["n"], transform="sluice_test_hooks:boom")
    with pytest.raises(InputRejectedError, match=r"transform hook sluice_test_hooks:boom .* raised KeyError"):
        run_convert(b"n\n1\n", c)
    with pytest.raises(ContractError, match="cannot import transform module"):
        run_convert(b"n\n1\n", make_contract(["n"], transform="no_such_module_xyz:f"))


# --------------------------------------------------------------------------- byte ranges
def test_a_byte_range_converts_with_the_header_supplied(run_convert, orders_contract):
    data = orders_bytes()
    lines = data.splitlines(keepends=True)
    start = sum(map(len, lines[:100]))
    part = data[start:]
    out = run_convert(part, orders_contract, header=tuple(orders_contract.column_names), first_line=101)
    assert out.result.rows_in == 245 - 99
    assert [int(r["_line"]) for r in out.rejected] == [131, 171]


# --------------------------------------------------------------------------- chunks in parallel
def _orders_with_problems() -> bytes:
    lines = orders_bytes().splitlines(keepends=True)
    body = lines[1:] * 6  # the repeats break order_id.unique
    body[30] = b'O-1,"2026-11-01T09:14:00Z" junk,C-1,DE,web,2,10.00,20.00,true\n'  # row.quote
    body[400] = b"O-2,2026-11-01T09:14:00Z,C-1,DE,web\n"  # row.fields
    body[900] = b"O-3,2026-11-01T09:14:00Z,C-1,DE,web,\x002,10.00,20.00,true\n"  # row.nul
    return lines[0] + b"".join(body)


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_parallel_chunks_give_exactly_the_sequential_answer(run_convert, orders_contract, threads):
    data = _orders_with_problems()
    contract = orders_contract.model_copy(update={"max_reject_ratio": 1.0})
    one = run_convert(data, contract, block_size=700, threads=1)
    many = run_convert(data, contract, block_size=700, threads=threads)
    assert one.result.rows_rejected > 3  # the injected problems and the repeated ids
    assert many.rows == one.rows  # same rows, same order in every partition file
    assert many.rejected == one.rejected  # same lines, rules, values and texts, in file order
    assert many.result.rejects_by_rule == one.result.rejects_by_rule
    assert [(o.key, o.rows) for o in many.result.outputs] == [(o.key, o.rows) for o in one.result.outputs]


@pytest.mark.parametrize("threads", [1, 4])
def test_the_first_problem_in_file_order_is_the_one_reported(run_convert, make_contract, threads):
    rows = [f"{i},x{i}" for i in range(400)]
    rows[50] = '50,"a quoted'  # the quoted line break at line 52 ...
    rows[51] = 'break"'
    rows[300] = '300,"never closes'  # ... comes before this one
    data = ("a,b\n" + "\n".join(rows) + "\n").encode()
    with pytest.raises(InputRejectedError, match=r"line 52: a quoted value contains a line break"):
        run_convert(data, make_contract(["a", "b"]), block_size=64, threads=threads)


def test_unpartitioned_output_is_split_over_the_encoding_threads(run_convert, make_contract):
    c = make_contract([{"name": "n", "type": "int64"}, "s"])
    data = ("n,s\n" + "".join(f"{i},v{i % 7}\n" for i in range(5000))).encode()
    split = run_convert(data, c, block_size=512, row_group_rows=600, threads=3)
    assert sorted(o.key for o in split.result.outputs) == [f"t/run-1-{n}.parquet" for n in range(3)]
    assert sorted(split.column("n")) == list(range(5000))
    single = run_convert(data, c, block_size=512, row_group_rows=600, threads=3, split_unpartitioned=False)
    assert [o.key for o in single.result.outputs] == ["t/run-1-0.parquet"]
    assert single.column("n") == list(range(5000))
    small = run_convert(b"n,s\n1,a\n", c, threads=3)
    assert [o.key for o in small.result.outputs] == ["t/run-1-0.parquet"]


def test_ragged_rows_are_quarantined_without_the_precise_parser(run_convert, make_contract, monkeypatch):
    from sluice.engine import csvsource

    def refuse(*_a, **_k):
        raise AssertionError("the precise parser ran")

    monkeypatch.setattr(csvsource.CsvReader, "_parse_slow", refuse)
    data = b'a,b,c\n1,2,3\n\n4,5\n6,"7,x",8\n9,10,11,12\n13,14,15\n'
    out = run_convert(data, make_contract(["a", "b", "c"]))
    assert out.column("a") == ["1", "6", "13"]
    got = [(int(r["_line"]), r["_rule"], r["_value"], r["_text"]) for r in out.rejected]
    assert got == [(4, "row.fields", "2", "4,5"), (6, "row.fields", "4", "9,10,11,12")]
    assert out.result.blank_lines == 1


# --------------------------------------------------------------------------- line breaks in values, in parallel
def _notes(n: int, *, bare_quote_at: int | None = None) -> bytes:
    """A file of records with quoted line breaks, blank lines and bad rows; optionally one bare quote."""
    rows = ["id,qty,note"]
    for i in range(n):
        if i % 7 == 0:
            rows.append(f'{i},{i % 50},"line one\nline two, with a comma"')
        elif i % 11 == 0:
            rows.append(f'{i},{i % 50},"said ""hi""\r\nthen left"')
        elif i % 13 == 0:
            rows.append(f"{i},many,plain")  # qty.type
        elif i % 17 == 0:
            rows.append("")  # a blank line
        elif i == bare_quote_at:
            rows.append(f'{i},1,a 5" screen')  # a quote inside an unquoted value: irregular quoting
        else:
            rows.append(f"{i},{i % 50},plain {i}")
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("bare_quote_at", [None, 180, 640])
@pytest.mark.parametrize("threads", [2, 3])
def test_line_breaks_in_values_parse_in_parallel_with_the_sequential_answer(
    run_convert, make_contract, monkeypatch, threads, bare_quote_at
):
    from sluice.engine import csvsource

    c = make_contract(
        ["id", {"name": "qty", "type": "int64"}, "note"], dialect={"newlines_in_values": True}, max_reject_ratio=1.0
    )
    data = _notes(900, bare_quote_at=bare_quote_at)
    one = run_convert(data, c, block_size=600, threads=1)
    handed_back: list[int] = []
    unread = csvsource.CsvReader.unread
    monkeypatch.setattr(
        csvsource.CsvReader, "unread", lambda self, rest, line: (handed_back.append(line), unread(self, rest, line))
    )
    many = run_convert(data, c, block_size=600, threads=threads)
    assert one.result.rows_in > 700 and one.result.rows_rejected > 30
    assert "line one\nline two, with a comma" in one.column("note")
    assert many.rows == one.rows
    assert many.rejected == one.rejected
    assert many.result.blank_lines == one.result.blank_lines > 0
    if bare_quote_at is None:
        assert handed_back == []  # regular quoting: every piece was a whole number of records
    else:
        assert len(handed_back) == 1  # from the irregular piece on, one chunk at a time
        bare_line = data[: data.index(f'{bare_quote_at},1,a 5"'.encode())].count(b"\n") + 1
        assert abs(handed_back[0] - bare_line) < 60  # in the piece (600 bytes) that holds the bare quote


@pytest.mark.parametrize(
    ("memory", "cpus", "expected"), [(None, 2, 2), ("1769", 2, 1), ("1024", 2, 1), ("3538", 2, 2), ("10240", 6, 6)]
)
def test_threads_follow_the_lambda_vcpu_share(monkeypatch, memory, cpus, expected):
    from sluice.engine import transform

    monkeypatch.setattr(transform.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    if memory is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    assert transform.available_cpus() == expected
    assert transform.ConvertOptions().thread_count == min(expected, 4)


# --------------------------------------------------------------------------- progress
@pytest.mark.parametrize("threads", [1, 2])
def test_progress_is_reported_after_every_chunk(run_convert, make_contract, threads):
    from sluice.engine.transform import Progress

    c = make_contract([{"name": "n", "type": "int64"}, "s"], max_reject_ratio=1.0)
    data = ("n,s\n" + "".join(f"{i if i % 100 else 'x'},v{i}\n" for i in range(3000))).encode()
    seen: list[Progress] = []
    out = run_convert(data, c, block_size=1024, threads=threads, progress=seen.append)
    assert len(seen) > 20  # one report per chunk of ~1 KiB
    assert [p.bytes_read for p in seen] == sorted(p.bytes_read for p in seen) and seen[-1].bytes_read == len(data)
    assert [p.rows_in for p in seen] == sorted(p.rows_in for p in seen)
    assert (seen[-1].rows_in, seen[-1].rows_rejected) == (out.result.rows_in, out.result.rows_rejected) == (3000, 30)
    assert all(p.seconds >= 0 for p in seen)


def test_throttled_reports_at_most_once_per_interval():
    from sluice.engine.transform import Progress, throttled

    now = [100.0]
    heard: list[int] = []
    report = throttled(lambda p: heard.append(p.rows_in), 5.0, clock=lambda: now[0])
    for t, rows in [(101, 1), (104.9, 2), (105, 3), (106, 4), (109.9, 5), (110.1, 6), (130, 7)]:
        now[0] = t
        report(Progress(0, rows, 0, 0.0))
    assert heard == [3, 6, 7]
