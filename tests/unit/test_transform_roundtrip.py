"""Property: every record of a random CSV is in the Parquet or in the quarantine, with equal values and lines."""

import csv
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.engine.quarantine import restore
from tests.unit.conftest import build_contract, convert_bytes

TEXT = st.lists(st.sampled_from([*"ab,;\"'\t \n\r\x0b\x0c\x85\u2028é本|\\", "\r\n"]), max_size=8).map("".join)


@st.composite
def csv_files(draw, multiline=True):
    ncols = draw(st.integers(1, 4))
    value = TEXT if multiline else TEXT.map(lambda s: s.replace("\r", "").replace("\n", ""))
    rows = draw(
        st.lists(
            st.one_of(
                st.lists(value, min_size=ncols, max_size=ncols),
                st.lists(value, min_size=1, max_size=ncols + 2),
            ),
            max_size=40,
        )
    )
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=eol, quoting=quoting)
    names = [f"c{i}" for i in range(ncols)]
    writer.writerow(names)
    header_size = len(buf.getvalue().encode("utf-8"))
    expected_good, expected_bad = [], []
    line = 1 + buf.getvalue().count(eol)
    for row in rows:
        start = buf.tell()
        writer.writerow(row)
        text = buf.getvalue()[start:]
        record_line = line
        line += text.count("\r\n") + text.replace("\r\n", "").count("\r") + text.replace("\r\n", "").count("\n")
        if len(row) == ncols:
            expected_good.append(dict(zip(names, row, strict=True)))
        else:
            expected_bad.append((record_line, text[: -len(eol)]))
    data = buf.getvalue().encode("utf-8")
    block = draw(st.integers(8, 300))
    step = draw(st.integers(1, 64))
    return names, delimiter, data, expected_good, expected_bad, block, step, header_size


def check_roundtrip(tmp_path, case, multiline):
    names, delimiter, data, good, bad, block, step, _ = case
    dialect = {"delimiter": delimiter, "null_values": [], "newlines_in_values": multiline}
    contract = build_contract(names, dialect=dialect)
    out = convert_bytes(data, contract, tmp_path, step=step, block_size=block)
    assert out.rows == good
    assert [(int(r["_line"]), restore(r["_text"])) for r in out.rejected] == bad  # the text as written
    assert {r["_rule"] for r in out.rejected} <= {"row.fields"}
    assert out.result.blank_lines == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files(multiline=True))
def test_multiline_values_roundtrip(tmp_path, case):
    check_roundtrip(tmp_path, case, multiline=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files(multiline=False))
def test_single_line_values_roundtrip(tmp_path, case):
    check_roundtrip(tmp_path, case, multiline=False)


@settings(max_examples=300, deadline=None)
@given(case=csv_files(multiline=True))
def test_fast_and_precise_parsers_agree(case):
    from sluice.engine.csvsource import CsvFormat, CsvReader

    names, delimiter, data, _, _, _, _, header_size = case
    body = data[header_size:]
    if not body:
        return
    for multiline in (True, False):
        reader = CsvReader([], CsvFormat(delimiter=delimiter, newlines_in_values=multiline), source_name="x")
        fast = reader._parse_fast(body, names, 2, True)
        if fast is None:
            continue
        try:
            slow, used = reader._parse_slow(body, names, 2, True)
        except Exception as exc:  # the fast path must not accept what the precise one refuses
            raise AssertionError(f"fast path accepted, precise path raised {exc}") from exc
        assert used == len(body)
        assert not slow.bad
        assert fast.table.to_pylist() == slow.table.to_pylist()
        assert fast.blank_lines == slow.blank_lines
        rows = list(range(fast.table.num_rows))
        assert fast.locate(rows) == slow.locate(rows)


FUZZ_EXAMPLES = int(os.environ.get("SLUICE_FUZZ", "400"))  # raise it for a longer hunt
GARBAGE = st.lists(
    st.sampled_from([b"a", b"b", b",", b'"', b"\n", b"\r", b"\r\n", b" ", b"\x00", b"\xff", b"\\", "é".encode()]),
    max_size=120,
).map(b"".join)


def _outcome(tmp_path, data, contract, block, force_precise, monkeypatch, sub_chunk=1 << 20, threads=2):
    from sluice.engine import csvsource
    from sluice.errors import InputRejectedError

    with monkeypatch.context() as m:
        m.setattr(csvsource, "_SUB_CHUNK", sub_chunk)
        if force_precise:
            m.setattr(csvsource.CsvReader, "_parse_fast", lambda *a, **k: None)
        try:
            out = convert_bytes(data, contract, tmp_path, block_size=block, threads=threads)
        except InputRejectedError as exc:
            return ("rejected", str(exc).split(":")[0])
    rejected = [(r["_line"], r["_rule"], r["_text"]) for r in out.rejected]
    return ("ok", out.rows, rejected, out.result.blank_lines)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pyarrow decoding a bad row
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=GARBAGE,
    ncols=st.integers(1, 3),
    multiline=st.booleans(),
    quoting=st.sampled_from([{}, {"quote_char": None}, {"escape_char": "\\", "double_quote": False}]),
    block=st.integers(8, 64),
    sub_chunk=st.sampled_from([1 << 20, 16, 5]),
)
def test_any_input_gets_the_same_answer_from_the_fast_and_the_precise_path(
    tmp_path, monkeypatch, body, ncols, multiline, quoting, block, sub_chunk
):
    names = [f"c{i}" for i in range(ncols)]
    dialect = {"header": False, "null_values": [], "newlines_in_values": multiline, **quoting}
    contract = build_contract(names, dialect=dialect)
    fast = _outcome(tmp_path, body, contract, block, False, monkeypatch, sub_chunk)
    precise = _outcome(tmp_path, body, contract, block, True, monkeypatch)
    assert fast == precise
    # pieces cut ahead and parsed on 2 threads give what one thread, chunk after chunk, gives
    assert _outcome(tmp_path, body, contract, block, False, monkeypatch, sub_chunk, threads=1) == fast


@pytest.mark.parametrize("body", [b'""","', b'1,"ab""cd"\n2,x\n', b'1,"ab"",x"\n'])
def test_quotes_back_to_back_without_double_quote_get_the_precise_answer(tmp_path, monkeypatch, body):
    """Found by the fuzz test: ``""`` is one escaped quote only with ``double_quote``."""
    dialect = {"header": False, "null_values": [], "escape_char": "\\", "double_quote": False}
    contract = build_contract(["a", "b"], dialect=dialect)
    fast = _outcome(tmp_path, body, contract, 8, False, monkeypatch)
    assert fast == _outcome(tmp_path, body, contract, 8, True, monkeypatch)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "", "\n", "\r", "\r\n", "\n\n", "x\r\ny"]), max_size=30))
def test_line_spans_lf_only_and_mixed_agree_with_splitlines(parts):
    from sluice.engine.csvsource import line_spans

    data = "".join(parts).encode()
    starts, stops = line_spans(data)
    lines = data.splitlines()
    assert [data[a:b] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)] == lines
