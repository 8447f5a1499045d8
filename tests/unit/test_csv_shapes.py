"""Real-world CSV shapes, written by the tests themselves: nothing lost, in a fresh clone too.

Each shape the external corpus (../shared/corpus) exercises, as a small input made here, through
the corpus's own path (infer a contract, then convert with it) and with its exact outcome: the
rows out, the rows quarantined (physical line, rule) and the blank lines skipped, or the refusal
of the whole file. The expectations follow the corpus's rules (shared/corpus/README.md): one bad
record is quarantined and the rest load; a file that cannot be trusted as one table is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from sluice.errors import InputRejectedError
from tests.unit.conftest import infer_and_convert


@dataclass(frozen=True)
class Loaded:
    """The file loads: these columns and rows, these records quarantined."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    blank_lines: int = 0
    dialect: dict[str, Any] = field(default_factory=dict)  # what inference must have found


@dataclass(frozen=True)
class Refused:
    """The whole file is refused with one line that says why."""

    reason: str


def shape(data: bytes, outcome: Loaded | Refused, name: str) -> Any:
    return pytest.param(data, outcome, id=name)


# ---------------------------------------------------------------- generated shapes (several parse blocks)
def quoted_breaks_across_blocks(n: int = 400) -> Any:
    breaks = ("\n", "\r\n", "\r")
    data = "id,text\n" + "".join(f'{i},"line {i}{breaks[i % 3]}said ""hi"", then left"\n' for i in range(n))
    rows = [(i, f'line {i}{breaks[i % 3]}said "hi", then left') for i in range(n)]
    outcome = Loaded(("id", "text"), rows, dialect={"newlines_in_values": True})
    return shape(data.encode(), outcome, "quoted-breaks-blocks")


def mixed_line_ends_across_blocks(n: int = 1500) -> Any:
    ends = ("\n", "\r\n", "\r")
    data = "id,name\n" + "".join(f"{i},n{i}{ends[i % 3]}" for i in range(n))
    return shape(data.encode(), Loaded(("id", "name"), [(i, f"n{i}") for i in range(n)]), "mixed-eol-blocks")


def cr_only_with_quoted_cr(n: int = 600) -> Any:
    data = "id,text\r" + "".join(f'{i},"a\rb {i}"\r' for i in range(n))
    rows = [(i, f"a\rb {i}") for i in range(n)]
    return shape(data.encode(), Loaded(("id", "text"), rows), "cr-only-quoted-cr-blocks")


def very_wide_header(width: int = 256) -> Any:
    names = [f"Measure {i} (unit)" for i in range(width)]
    rows = [tuple(range(width)), tuple(range(0, -width, -1))]
    data = "\n".join(",".join(map(str, line)) for line in [names, *rows]) + "\n"
    columns = tuple(f"measure_{i}_unit" for i in range(width))
    return shape(data.encode(), Loaded(columns, rows), "very-wide-header")


def utf16(codec: str, bom: bytes, name: str) -> Any:
    text = 'id,name\r\n1,"Zoë 😀\r\nnext line"\r\n2,Ünal\r\n'
    outcome = Loaded(("id", "name"), [(1, "Zoë 😀\r\nnext line"), (2, "Ünal")], dialect={"encoding": "utf-16"})
    return shape(bom + text.encode(codec), outcome, name)


SHAPES = [
    # ------------------------------------------------------------ encodings
    shape(
        b"\xef\xbb\xbfid,name\r\n1,Zo\xc3\xab\r\n2,b\r\n",
        Loaded(("id", "name"), [(1, "Zoë"), (2, "b")], dialect={"encoding": "utf-8-sig"}),
        "utf8-bom",
    ),
    shape(
        b'\xef\xbb\xbf"id","name"\n"1","a"\n',
        Loaded(("id", "name"), [(1, "a")], dialect={"encoding": "utf-8-sig"}),
        "utf8-bom-quoted-header",
    ),
    utf16("utf-16-le", b"\xff\xfe", "utf16-le"),
    utf16("utf-16-be", b"\xfe\xff", "utf16-be"),
    shape(
        "id,name\n1,é\n2,b\n".encode("utf-16-le"),
        Loaded(("id", "name"), [(1, "é"), (2, "b")], dialect={"encoding": "utf-16-le"}),
        "utf16-le-without-bom",
    ),
    shape(  # the FDIC bank list's traits: NBSP after header names, 0x96 = en dash, CRLF
        "Bank Name\u00a0,Acquirer\u00a0,Closed\r\nSilicon Valley Bank,First\u2013Citizens,10-Mar-23\r\n"
        '"Heartland Tri-State Bank","Dream First Bank, N.A.",28-Jul-23\r\n'.encode("cp1252"),
        Loaded(
            ("bank_name", "acquirer", "closed"),
            [
                ("Silicon Valley Bank", "First\u2013Citizens", dt.date(2023, 3, 10)),
                ("Heartland Tri-State Bank", "Dream First Bank, N.A.", dt.date(2023, 7, 28)),
            ],
            dialect={"encoding": "cp1252"},
        ),
        "cp1252",
    ),
    shape(  # a byte cp1252 leaves undefined (0x81): only latin-1 keeps every byte
        b"name,city\nJos\xe9,Z\x81rich\n",
        Loaded(("name", "city"), [("José", "Z\x81rich")], dialect={"encoding": "latin-1"}),
        "latin1",
    ),
    shape(
        "名前,年齢\n本山,25\n東京,30\n".encode("shift_jis"),
        Loaded(("名前", "年齢"), [("本山", 25), ("東京", 30)], dialect={"encoding": "shift_jis"}),
        "shift-jis",
    ),
    shape(  # valid UTF-8 around it: the bad bytes are corruption, not a legacy encoding
        b'id,city\n1,Z\xc3\xbcrich\n2,bad_\xff\xff_part\n3,Besan\xc3\xa7on\n4,"in \xfe quotes"\n5,ok\n',
        Loaded(("id", "city"), [(1, "Zürich"), (3, "Besançon"), (5, "ok")], [(3, "row.encoding"), (5, "row.encoding")]),
        "invalid-utf8-bytes",
    ),
    # ------------------------------------------------------------ line ends
    shape(b"id,name\n1,a\n2,b\n", Loaded(("id", "name"), [(1, "a"), (2, "b")]), "lf"),
    shape(b"id,name\r\n1,a\r\n2,b\r\n", Loaded(("id", "name"), [(1, "a"), (2, "b")]), "crlf"),
    shape(b"id,name\r1,a\r2,b", Loaded(("id", "name"), [(1, "a"), (2, "b")]), "cr-only-no-final-eol"),
    shape(  # no header either: CRLF, LF and CR in one file
        b"10,hello,20\r\n20,world,30\n30,test,30\r",
        Loaded(
            ("column_1", "column_2", "column_3"),
            [(10, "hello", 20), (20, "world", 30), (30, "test", 30)],
            dialect={"header": False},
        ),
        "mixed-eol-no-header",
    ),
    mixed_line_ends_across_blocks(),
    cr_only_with_quoted_cr(),
    # ------------------------------------------------------------ quoting
    shape(
        b'id,text\n1,"line one\nline two"\n2,"a\r\nb"\n3,"first\n\nthird (blank line inside quotes)"\n',
        Loaded(
            ("id", "text"),
            [(1, "line one\nline two"), (2, "a\r\nb"), (3, "first\n\nthird (blank line inside quotes)")],
            dialect={"newlines_in_values": True},
        ),
        "quoted-line-breaks",
    ),
    quoted_breaks_across_blocks(),
    shape(
        b'id,text,place\n1,"say ""hi""","Paris, France"\n2,"""quoted""",""\n',
        Loaded(("id", "text", "place"), [(1, 'say "hi"', "Paris, France"), (2, '"quoted"', None)]),
        "doubled-quotes",
    ),
    shape(  # a quote inside an unquoted field is a literal character
        b'id,size\n1,5" pipe\n2,12"\n3,plain\n',
        Loaded(("id", "size"), [(1, '5" pipe'), (2, '12"'), (3, "plain")]),
        "stray-quote",
    ),
    shape(  # text after a closing quote: that record is quarantined, the JSON with doubled quotes loads
        b'id,doc,n\n1,"{""a"": 1}",1\n2,"{""b"": 2}"  ,2\n3,"{""c"": ""x, y""}",3\n',
        Loaded(("id", "doc", "n"), [(1, '{"a": 1}', 1), (3, '{"c": "x, y"}', 3)], [(3, "row.quote")]),
        "text-after-closing-quote",
    ),
    shape(  # csvlint's invalid_many_rows: junk after a quote, a blank line, CRLF, no final EOL
        b'"Foo","Bar","Baz"\r\n"1","2","3"\r\n"1","2","3" "\r\n"3","two","1"\r\n\r\n"","",""\r\n"3","2","1"',
        Loaded(
            ("foo", "bar", "baz"),
            [(1, "2", 3), (3, "two", 1), (None, None, None), (3, "2", 1)],
            [(3, "row.quote")],
            blank_lines=1,
        ),
        "quote-junk-and-blank-line",
    ),
    shape(b'id,text\n1,"hello\n2,world\n', Refused("never closes"), "unterminated-quote"),
    shape(b'id,info\n1,"say \\"hi\\""\n2,"plain"\n3,"a \\"b\\" c"\n', Refused("backslash-escaped"), "backslash-quotes"),
    # ------------------------------------------------------------ records
    shape(
        b'a,b,c\n1,2,3\n4,5\n6,7,8,"too long"\n10,11,12\n',
        Loaded(("a", "b", "c"), [(1, 2, 3), (10, 11, 12)], [(3, "row.fields"), (4, "row.fields")]),
        "ragged-rows",
    ),
    shape(
        b'id,name\n1,a\n2,b\x00c\n3,"d\x00"\n4,e\n',
        Loaded(("id", "name"), [(1, "a"), (4, "e")], [(3, "row.nul"), (4, "row.nul")]),
        "nul-bytes",
    ),
    shape(b"a,b,c\n\x00,2,3\n", Loaded(("a", "b", "c"), [], [(2, "row.nul")]), "nul-in-the-only-row"),
    shape(  # the blank line above the header is skipped with it; the 4 others are counted
        b"\nid,name\n1,a\n\n2,b\r\n\r\n\n3,c\n\n",
        Loaded(("id", "name"), [(1, "a"), (2, "b"), (3, "c")], blank_lines=4, dialect={"skip_rows": 1}),
        "blank-lines",
    ),
    shape(  # in a one-column file a blank line is an empty value (RFC 4180)
        b"name\r\na\r\n\r\nb\r\n",
        Loaded(("name",), [("a",), (None,), ("b",)]),
        "blank-line-one-column",
    ),
    shape(b"id,name\n", Loaded(("id", "name"), []), "header-only"),
    shape(b"\xef\xbb\xbfid,name", Loaded(("id", "name"), []), "header-only-bom-no-eol"),
    shape(b"", Refused("empty"), "empty"),
    shape(b"\n", Refused("empty"), "only-a-line-break"),
    shape(b"\r\n\r\n", Refused("empty"), "only-blank-lines"),
    shape(
        b"C,x\nI,a,b,c\n" + b"D,1,2,3\n" * 3 + b"I,a,b,c,d,e\n" + b"D,1,2,3,4,5\n" * 3,
        Refused("not one table"),
        "multi-record-report",
    ),
    # ------------------------------------------------------------ headers
    very_wide_header(),
    shape(  # a title padded to the width, an empty row, then the header on line 3
        b'"Quarterly report",,\n,,\nid,a,b\n1,x,y\n2,z,w\n',
        Loaded(("id", "a", "b"), [(1, "x", "y"), (2, "z", "w")], dialect={"skip_rows": 2}),
        "title-rows",
    ),
    shape(  # every line ends with the delimiter: a 3rd, unnamed, always-empty column
        b'"Data","Hist\xf3rico","Valor",\r\n"10/31/2012","Saldo Anterior","100.00",\r\n'
        b'"11/01/2012","Dep\xf3sito","-10.00",\r\n',
        Loaded(
            ("data", "histórico", "valor", "column_4"),
            [(dt.date(2012, 10, 31), "Saldo Anterior", 100.0, None), (dt.date(2012, 11, 1), "Depósito", -10.0, None)],
            dialect={"encoding": "cp1252"},
        ),
        "trailing-delimiter-every-line",
    ),
    shape(  # the header's trailing delimiter makes a 5th column: a 4-field row does not fit it
        b"id,name,lat,lon,\n1,x,0,0\n2,y,1,1,\n",
        Loaded(("id", "name", "lat", "lon", "column_5"), [(2, "y", 1, 1, None)], [(2, "row.fields")]),
        "trailing-delimiter-header",
    ),
    shape(
        b"id,name\n1,a,\n2,b\n",
        Loaded(("id", "name"), [(2, "b")], [(2, "row.fields")]),
        "trailing-delimiter-row",
    ),
    shape(
        b"a,a,A,,Name\xc2\xa0,name\n1,2,3,4,5,6\n",
        Loaded(("a", "a_2", "a_3", "column_4", "name", "name_2"), [(1, 2, 3, 4, 5, 6)]),
        "duplicate-and-empty-header-names",
    ),
    # ------------------------------------------------------------ values
    shape(
        b"a,b,c,d,e,f\n,NA,N/A,NONE,NULL,.\n1,2,3,4,5,6\n",
        Loaded(("a", "b", "c", "d", "e", "f"), [(None,) * 6, (1, 2, 3, 4, 5, 6)]),
        "null-spellings",
    ),
    shape(
        b"id,amount,rate\n1,1.2E+07,-3.5E-02\n2,42,1e3\n3,7.25,0\n",
        Loaded(("id", "amount", "rate"), [(1, 12_000_000.0, -0.035), (2, 42.0, 1000.0), (3, 7.25, 0.0)]),
        "excel-scientific-numbers",
    ),
    shape(  # no numeric type reads them all exactly: the column stays text, every character kept
        b'id,amount\n1,"1,234.50"\n2,"12,000"\n3,7\n4,"(1,234.00)"\n',
        Loaded(("id", "amount"), [(1, "1,234.50"), (2, "12,000"), (3, "7"), (4, "(1,234.00)")]),
        "thousands-separators",
    ),
    shape(
        b"id,closed,at\n1,3-Nov-23,13/01/2024 14:05\n2,13-Oct-00,01/02/2024 09:00\n3,28-Jul-99,25/12/2023 23:59\n",
        Loaded(
            ("id", "closed", "at"),
            [
                (1, dt.date(2023, 11, 3), dt.datetime(2024, 1, 13, 14, 5, tzinfo=dt.UTC)),
                (2, dt.date(2000, 10, 13), dt.datetime(2024, 2, 1, 9, 0, tzinfo=dt.UTC)),
                (3, dt.date(1999, 7, 28), dt.datetime(2023, 12, 25, 23, 59, tzinfo=dt.UTC)),
            ],
        ),
        "local-date-formats",
    ),
    shape(  # two layouts in one column: no single format reads both, so it stays text
        b"id,d\n1,2024-01-13\n2,13/01/2024\n",
        Loaded(("id", "d"), [(1, "2024-01-13"), (2, "13/01/2024")]),
        "mixed-date-layouts",
    ),
    shape(
        b"id\tname\n1\tx, y\n2\tz\n",
        Loaded(("id", "name"), [(1, "x, y"), (2, "z")], dialect={"delimiter": "\t"}),
        "tab-delimited",
    ),
    shape(
        b"1|AAAA|2024-01-01||x\n2|AAAB|2024-01-02|7|y\n3|AAAC|2024-01-03|8|z\n",
        Loaded(
            ("column_1", "column_2", "column_3", "column_4", "column_5"),
            [
                (1, "AAAA", dt.date(2024, 1, 1), None, "x"),
                (2, "AAAB", dt.date(2024, 1, 2), 7, "y"),
                (3, "AAAC", dt.date(2024, 1, 3), 8, "z"),
            ],
            dialect={"delimiter": "|", "header": False},
        ),
        "pipe-delimited-no-header",
    ),
]


@pytest.mark.parametrize(("data", "outcome"), SHAPES)
def test_shape(data: bytes, outcome: Loaded | Refused, tmp_path: Any) -> None:
    if isinstance(outcome, Refused):
        with pytest.raises(InputRejectedError, match=outcome.reason) as refusal:
            infer_and_convert(data, tmp_path)
        assert "\n" not in str(refusal.value)
        return
    contract, out = infer_and_convert(data, tmp_path)
    found = {k: getattr(contract.dialect, k) for k in outcome.dialect}
    assert found == outcome.dialect
    assert tuple(c.name for c in contract.columns) == outcome.columns
    assert [tuple(row.values()) for row in out.rows] == outcome.rows
    assert [(int(r["_line"]), r["_rule"]) for r in out.rejected] == outcome.quarantined
    assert out.result.blank_lines == outcome.blank_lines


def test_thousands_separators_under_a_numeric_contract_are_quarantined_not_misread(make_contract, run_convert):
    contract = make_contract(["id", {"name": "amount", "type": "float64"}])
    out = run_convert(b'id,amount\n1,"1,234.50"\n2,1.2E+07\n3,7\n', contract)
    assert out.column("amount") == [12_000_000.0, 7.0]
    assert [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected] == [("2", "amount.type", "1,234.50")]


def test_integers_beyond_int64_keep_every_digit(tmp_path):
    """Fails if infer types such a column float64: 12345678901234567890 would load as 1.2345678901234567e+19."""
    _, out = infer_and_convert(b"id,account\n1,12345678901234567890\n2,5\n", tmp_path)
    assert [str(v) for v in out.column("account")] == ["12345678901234567890", "5"]
    _, wider = infer_and_convert(b"id,digits\n1," + b"9" * 40 + b"\n2,5\n", tmp_path)
    assert wider.column("digits") == ["9" * 40, "5"], "past 38 digits: text, every digit kept"
