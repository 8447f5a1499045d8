"""Contract inference: what is sniffed, and that `convert` accepts every inferred contract."""

import datetime as dt
import io

import pytest
import yaml

from sluice.contracts import parse_contract
from sluice.engine.infer import InferOptions, column_names, dataset_name, infer_contract
from sluice.errors import InputRejectedError


def infer(data: bytes, **opts):
    inference = infer_contract(io.BytesIO(data), source_name="f.csv", file_stem="my file", options=InferOptions(**opts))
    text = inference.to_yaml("f.csv")
    contract = parse_contract(yaml.safe_load(text), "inferred")
    return contract, inference


def test_orders_sample_types_and_convert_round_trip(run_convert):
    from tests.unit.conftest import REPO

    data = (REPO / "samples/orders/orders-2026-11-02.csv").read_bytes()
    contract, _ = infer(data)
    assert {c.name: c.type for c in contract.columns} == {
        "order_id": "string",
        "ordered_at": "timestamp",
        "customer_id": "string",
        "country": "string",
        "channel": "string",
        "quantity": "int64",
        "unit_price": "string",
        "amount": "decimal(18,2)",  # money-like: a fixed two decimals
        "paid": "bool",
    }
    assert contract.dataset == "my_file" and contract.match.prefix == "my_file/"
    out = run_convert(data, contract)
    assert out.result.rows_rejected == 0 and out.result.rows_out == out.result.rows_in


def test_title_rows_are_skipped_and_names_made_unique():
    data = b'"Report of things",,\n,,\nid,a,a\n1,x,\n2,y,z\n'
    contract, inference = infer(data)
    assert contract.dialect.skip_rows == 2
    assert [(c.name, c.source) for c in contract.columns] == [("id", None), ("a", None), ("a_2", "a")]
    assert any("above the header" in n for n in inference.notes)


def test_empty_and_odd_header_names():
    assert column_names(["Bank Name\u00a0", "", "a", "A", "1st", "\t\nstart end\v"]) == [
        ("bank_name", "Bank Name"),
        ("column_2", ""),
        ("a", None),
        ("a_2", "A"),
        ("c_1st", "1st"),
        ("start_end", "start end"),
    ]
    assert dataset_name("2024 Sales-Report") == "d_2024_sales_report"


def test_header_with_control_characters_round_trips_through_yaml(run_convert):
    data = b'"\t\n\x0b\x0c\r start \t\n end \r",b\nd,e\n'
    contract, _ = infer(data)
    assert contract.columns[0].source == "start \t\n end"
    assert run_convert(data, contract).result.rows_out == 1


def test_no_header_is_detected_from_types():
    contract, _ = infer(b"10,hello,20\n20,world,30\n30,test,30\n")
    assert contract.dialect.header is False
    assert [c.name for c in contract.columns] == ["column_1", "column_2", "column_3"]
    contract, _ = infer(b"id,name\n1,a\n2,b\n")
    assert contract.dialect.header is True


def test_delimiters_and_quoted_line_breaks():
    contract, _ = infer(b'a\tb\n"x, y"\t"multi\nline"\n')
    assert contract.dialect.delimiter == "\t"
    assert contract.dialect.newlines_in_values is True


def test_codes_with_leading_zeros_stay_text_and_extra_null_spellings_are_learned():
    contract, _ = infer(b"code,h\n007,1.5\n123,none\n")
    assert [c.type for c in contract.columns] == ["string", "float64"]
    assert "none" in contract.dialect.null_values


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("a,b\nJosé,Zürich\n".encode("cp1252"), "cp1252"),
        ("a,b\nfirst\u2013second,1\n".encode("cp1252"), "cp1252"),
        ("名前,年齢\n本山,25\n東京,30\n".encode("shift_jis"), "shift_jis"),
        ("a,b\nx,y\n".encode("utf-16"), "utf-16"),
        ("\ufeffa,b\nx,y\n".encode(), "utf-8-sig"),
        (b"a,b\nok,1\nbad_\xff\xff_bytes,2\n" + b"ok,3\n" * 50, "utf-8"),
    ],
)
def test_encodings(data, encoding):
    contract, _ = infer(data)
    assert contract.dialect.encoding == encoding


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b'"hello\n\n world', "never closes"),
        (b"C,x\n" + b"I,a,b,c\n" + b"D,1,2,3\n" * 3 + b"I,a,b,c,d,e\n" + b"D,1,2,3,4,5\n" * 3, "not one table"),
        (b'id,info\n1,"say \\"hi\\""\n2,"plain"\n3,"a \\"b\\" c"\n', "backslash-escaped quotes"),
        (b'ns\ttitle\n0\t"!"\n0\tplain\n0\t"quoted" start\n0\tx\n', "no quote character"),
    ],
)
def test_refusals_say_why_and_what_to_do(data, message):
    with pytest.raises(InputRejectedError, match=message):
        infer(data)


def test_the_dialect_a_refusal_suggests_is_accepted_when_asked_for(run_convert):
    data = b'ns\ttitle\n0\t"!"\n0\tplain\n0\t"quoted" start\n0\tx\n'
    contract, _ = infer(data, quote_char=None)
    assert contract.dialect.quote_char is None
    assert run_convert(data, contract).column("title") == ['"!"', "plain", '"quoted" start', "x"]


def test_overrides(run_convert):
    contract, _ = infer(b"x;y\n1;2\n", delimiter=";", header_line=0, dataset="Sales")
    assert contract.dataset == "sales" and contract.dialect.header is False
    assert run_convert(b"x;y\n1;2\n", contract).result.rows_out == 2


def test_dates_in_other_layouts_get_a_format(run_convert):
    data = b"id,closed,at\n1,03/11/2023,13/01/2024 14:05\n2,25/12/2023,01/02/2024 09:00\n"
    contract, _ = infer(data)
    cols = {c.name: (c.type, c.format) for c in contract.columns}
    assert cols == {"id": ("int64", None), "closed": ("date", "%d/%m/%Y"), "at": ("timestamp", "%d/%m/%Y %H:%M")}
    out = run_convert(data, contract)
    assert out.result.rows_rejected == 0
    assert out.column("closed") == [dt.date(2023, 11, 3), dt.date(2023, 12, 25)]
    assert out.column("at")[0] == dt.datetime(2024, 1, 13, 14, 5, tzinfo=dt.UTC)


def test_dates_that_read_two_ways_stay_text_with_a_note():
    contract, inference = infer(b"id,d\n1,03/11/2023\n2,04/12/2023\n")
    assert contract.column("d").type == "string" and contract.column("d").format is None
    assert any("column d" in n and "%d/%m/%Y, %m/%d/%Y" in n for n in inference.notes)


def bank_list(rows: int) -> tuple[bytes, list[dt.date]]:
    """A failed-bank list shaped like the FDIC's, and its closing dates.

    cp1252, CRLF, header names ending in a no-break space, quoted names with commas, an en dash
    (0x96), closing dates like ``3-Nov-23`` (day unpadded, two-digit year).
    """
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    header = ",".join(f"{name}\u00a0" for name in ("Bank Name", "City", "State", "Cert", "Acquiring Institution"))
    lines, dates = [header + ",Closing Date\u00a0,Fund"], []
    for i in range(rows):
        closed = dt.date(2023, 11, 3) - dt.timedelta(days=14 * i)  # back to 2000: every month, days 1 to 31
        acquirer = '"Dream First Bank, N.A."' if i % 3 else "First\u2013Citizens Bank & Trust Company"
        closing = f"{closed.day}-{months[closed.month - 1]}-{closed:%y}"
        lines.append(f"Bank {i},Sac City,IA,{8758 + i},{acquirer},{closing},{10545 - i}")
        dates.append(closed)
    return ("\r\n".join(lines) + "\r\n").encode("cp1252"), dates


def test_a_bank_list_gets_its_closing_dates(run_convert):
    data, dates = bank_list(600)
    contract, _ = infer(data)
    assert contract.dialect.encoding == "cp1252"
    assert [(c.name, c.type, c.format) for c in contract.columns] == [
        ("bank_name", "string", None),
        ("city", "string", None),
        ("state", "string", None),
        ("cert", "int64", None),
        ("acquiring_institution", "string", None),
        ("closing_date", "date", "%d-%b-%y"),
        ("fund", "int64", None),
    ]
    out = run_convert(data, contract)
    assert (out.result.rows_out, out.result.rows_rejected) == (600, 0)
    assert out.column("closing_date") == dates
    assert out.column("acquiring_institution")[:2] == [
        "First\u2013Citizens Bank & Trust Company",
        "Dream First Bank, N.A.",
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["12.50", "3.00", "100", "-0.05"], "decimal(18,2)"),  # amounts: a fixed two decimals (integers mixed in)
        (["1.2345", "0.0001"], "decimal(18,4)"),
        (["1.5", "2.25"], "float64"),  # decimals vary: measurements, not money
        (["1.5", "2.5"], "float64"),  # one decimal: too weak a sign
        (["1e3", "2.50"], "float64"),
        (["12345678901234567.50", "1.00"], "decimal(38,2)"),  # 19 digits: past 18
    ],
)
def test_money_like_numbers_are_proposed_as_decimals(values, expected):
    contract, _ = infer(("v\n" + "\n".join(values) + "\n").encode())
    assert contract.column("v").type == expected
