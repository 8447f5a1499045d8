"""Date and timestamp columns with an explicit layout (``format``): the contract check, parsing, convert."""

import datetime as dt

import pyarrow as pa
import pytest

from sluice.contracts import Dialect, parse_contract
from sluice.engine.dateformats import compile_format
from sluice.engine.rules import parse_values
from sluice.errors import ContractError

UTC = dt.UTC


def _parse(values, column_type, layout):
    return parse_values(pa.array(values, pa.string()), column_type, Dialect(), layout).to_pylist()


@pytest.mark.parametrize(
    ("layout", "column_type", "message"),
    [
        ("%d/%m/%Y", "string", "format applies to date and timestamp columns, not string"),
        ("%d/%m", "date", r"does not give the year \(%Y or %y\)"),
        ("%Y-%d", "date", r"does not give the month"),
        ("%Y-%m", "date", r"does not give the day \(%d\)"),
        ("%d/%m/%Y %H:%M", "date", "has a time of day; use it on a timestamp column"),
        ("%d/%m/%Y %q", "timestamp", r"%q is not supported \(use %Y"),
        ("%d/%m/%Y %d", "date", "%d appears twice"),
        ("%d/%m/%Y %y", "date", "gives the year or the month twice"),
        ("%d/%m/%Y %I:%M", "timestamp", "%I .* and %p .* go together"),
    ],
)
def test_a_format_that_cannot_work_is_refused_with_the_reason(layout, column_type, message):
    with pytest.raises(ValueError, match=message):
        compile_format(layout, column_type)
    contract = {"dataset": "t", "match": {"prefix": "t/"}, "columns": [{"name": "d", "type": column_type}]}
    contract["columns"][0]["format"] = layout
    with pytest.raises(ContractError, match=message):
        parse_contract(contract, "test contract")


def test_dates_must_fill_the_layout_and_name_a_real_day():
    head = ["03/11/2023", "3/1/2023", " 03/11/2023", "03/11/2023 ", "03/11/2023x", "1/1/99", "29/02/2024", "29/02/2000"]
    tail = ["29/02/2023", "29/02/1900", "31/04/2023", "31/02/2023", "00/01/2023", "01/13/2023", "", None]
    got = _parse([*head, *tail], "date", "%d/%m/%Y")
    ok = [dt.date(2023, 11, 3), dt.date(2023, 1, 3), None, None, None, None, dt.date(2024, 2, 29), dt.date(2000, 2, 29)]
    assert got == ok + [None] * 8  # strptime alone reads 31/02/2023 as 3 March


def test_month_names_and_two_digit_years():
    assert _parse(["3-Nov-23", "3-nov-23", "03-NOV-68", "1-Jan-69", "29-Feb-23", "3-Noo-23"], "date", "%d-%b-%y") == [
        dt.date(2023, 11, 3),
        dt.date(2023, 11, 3),
        dt.date(2068, 11, 3),
        dt.date(1969, 1, 1),
        None,
        None,
    ]
    assert _parse(["3 November 2023", "31 June 2023", "3 Novembre 2023"], "date", "%d %B %Y") == [
        dt.date(2023, 11, 3),
        None,
        None,
    ]


def test_timestamps_with_and_without_an_offset_end_up_in_utc():
    zoned = _parse(
        ["03/11/2023 01:30 +0200", "03/11/2023 23:30 -01:00", "03/11/2023 23:30"], "timestamp", "%d/%m/%Y %H:%M %z"
    )
    assert zoned == [dt.datetime(2023, 11, 2, 23, 30, tzinfo=UTC), dt.datetime(2023, 11, 4, 0, 30, tzinfo=UTC), None]
    plain = _parse(["03/11/2023 23:59", "03/11/2023 24:00", "03/11/2023 10:60"], "timestamp", "%d/%m/%Y %H:%M")
    assert plain == [dt.datetime(2023, 11, 3, 23, 59, tzinfo=UTC), None, None]
    clock = _parse(
        ["03/11/2023 12:05 AM", "03/11/2023 12:05 pm", "03/11/2023 13:05 PM"], "timestamp", "%d/%m/%Y %I:%M %p"
    )
    assert clock == [dt.datetime(2023, 11, 3, 0, 5, tzinfo=UTC), dt.datetime(2023, 11, 3, 12, 5, tzinfo=UTC), None]


def test_convert_quarantines_dates_off_the_layout_and_checks_iso_bounds(run_convert, make_contract):
    c = make_contract(
        ["id", {"name": "closed", "type": "date", "format": "%d-%b-%y", "min": "2020-01-01"}], max_reject_ratio=1.0
    )
    data = b"id,closed\n1,3-Nov-23\n2,31-Feb-23\n3,2023-11-03\n4,30-Dec-19\n5,\n"
    out = run_convert(data, c)
    assert out.rows == [{"id": "1", "closed": dt.date(2023, 11, 3)}, {"id": "5", "closed": None}]
    assert [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected] == [
        ("3", "closed.type", "31-Feb-23"),
        ("4", "closed.type", "2023-11-03"),
        ("5", "closed.min", "30-Dec-19"),
    ]
    assert "is not a valid date" in out.rejected[0]["_message"]
