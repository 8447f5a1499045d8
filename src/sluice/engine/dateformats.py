"""Explicit date and timestamp formats of contract columns (``format: "%d/%m/%Y"``).

A column of type ``date`` or ``timestamp`` reads ISO 8601 text by default. ``format`` names
another layout with strptime directives. Each value must match the whole format (no surrounding
spaces, four-digit ``%Y``) and name a real calendar day: strptime alone would read 31/02/2023 as
3 March. This module holds the pure part, turning a format into a regular expression whose
named groups give the year, month and day to check; :mod:`sluice.engine.rules` does the parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# directive -> regular expression; the named ones are checked against the calendar
_DATE_PARTS = {
    "Y": "(?P<Y>[0-9]{4})",
    "y": "(?P<y>[0-9]{2})",
    "m": "(?P<m>[0-9]{1,2})",
    "d": "(?P<d>[0-9]{1,2})",
    "b": "(?P<b>[A-Za-z]{3})",
    "B": "(?P<B>[A-Za-z]{3,9})",
}
_TIME_PARTS = {
    "H": "[0-9]{1,2}",
    "I": "[0-9]{1,2}",
    "p": "(?:[AaPp][Mm])",
    "M": "[0-9]{2}",
    "S": "[0-9]{2}",
    "z": "(?:Z|[+-][0-9]{2}:?[0-9]{2})",
}
_DIRECTIVES = {**_DATE_PARTS, **_TIME_PARTS}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

#: Layouts `sluice contract infer` tries on text columns, in order (ISO is tried before them).
DATE_CANDIDATES = (
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%d-%b-%y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%B %d %Y",
    "%d/%m/%y",
    "%m/%d/%y",
)
TIMESTAMP_CANDIDATES = tuple(
    f"{d} {t}"
    for d in ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")
    for t in ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
)


@dataclass(frozen=True)
class DateFormat:
    """A checked format: the strptime text, a regular expression for the whole value, what it holds."""

    text: str
    regex: str
    parts: frozenset[str]  # the directives used (letters)

    @property
    def zoned(self) -> bool:
        """Whether values carry their UTC offset (``%z``)."""
        return "z" in self.parts


@lru_cache(maxsize=64)
def compile_format(text: str, column_type: str) -> DateFormat:
    """Check `text` as the format of a `column_type` column and build its regular expression (cached).

    Raises
    ------
    ValueError
        Not a date/timestamp column, an unsupported or repeated directive, or a format that
        does not fix the year, the month and the day (or, for a date, one that has a time).

    """
    if column_type not in ("date", "timestamp"):
        raise ValueError(f"format applies to date and timestamp columns, not {column_type}")
    regex, parts, i = ["^"], set(), 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            regex.append(re.escape(ch))
            i += 1
            continue
        directive = text[i + 1 : i + 2]
        i += 2
        if directive == "%":
            regex.append("%")
            continue
        if directive not in _DIRECTIVES:
            supported = " ".join(f"%{d}" for d in _DIRECTIVES)
            raise ValueError(f"format {text!r}: %{directive} is not supported (use {supported} and %%)")
        if directive in parts:
            raise ValueError(f"format {text!r}: %{directive} appears twice")
        parts.add(directive)
        regex.append(_DIRECTIVES[directive])
    missing = [
        what
        for what, options in (("the year (%Y or %y)", "Yy"), ("the month (%m, %b or %B)", "mbB"), ("the day (%d)", "d"))
        if not parts & set(options)
    ]
    if missing:
        raise ValueError(f"format {text!r} does not give {' and '.join(missing)}")
    if len(parts & set("Yy")) > 1 or len(parts & set("mbB")) > 1:
        raise ValueError(f"format {text!r} gives the year or the month twice")
    if column_type == "date" and parts & set(_TIME_PARTS):
        raise ValueError(f"format {text!r} has a time of day; use it on a timestamp column (a date keeps no time)")
    if ("I" in parts) != ("p" in parts):
        raise ValueError(f"format {text!r}: %I (12-hour clock) and %p (AM/PM) go together")
    if "I" in parts and "H" in parts:
        raise ValueError(f"format {text!r} gives the hour twice (%H and %I)")
    regex.append("$")
    return DateFormat(text, "".join(regex), frozenset(parts))
