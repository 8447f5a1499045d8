"""Dataset contracts: what a raw CSV must look like and how it lands as Parquet.

A contract is data (``contracts/<dataset>.yaml``) validated by the pydantic models below;
``sluice contract schema`` prints the JSON Schema they imply.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.engine.dateformats import compile_format
from sluice.errors import ContractError, UnknownDatasetError

_DECIMAL = re.compile(r"^decimal\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
SIMPLE_TYPES = ("string", "int64", "float64", "bool", "date", "timestamp")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252", "latin-1", "ascii", "shift_jis")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Match(_Model):
    """Which raw keys belong to the dataset: a key prefix or a glob (``*`` spans ``/``)."""

    prefix: str | None = None
    glob: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Match:
        if (self.prefix is None) == (self.glob is None):
            raise ValueError("match needs exactly one of `prefix` or `glob`")
        return self

    def matches(self, key: str) -> bool:
        """Whether the raw object `key` belongs to this dataset."""
        if self.prefix is not None:
            return key.startswith(self.prefix)
        assert self.glob is not None
        return fnmatch.fnmatchcase(key, self.glob)


class Dialect(_Model):
    """How the CSV bytes are written."""

    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str | None = '"'
    escape_char: str | None = None
    double_quote: bool = True
    header: bool = True
    skip_rows: int = Field(0, ge=0, description="lines to skip before the header (title rows, preambles)")
    newlines_in_values: bool = Field(
        False, description="quoted fields may contain line breaks (such files are not fanned out over byte ranges)"
    )
    trim_spaces: bool = Field(
        False, description="strip spaces and tabs around every value (quoted or not) before it is checked and stored"
    )
    decimal_point: Literal[".", ","] = Field(
        ".", description="decimal separator of float and decimal columns (no thousands separators)"
    )
    null_values: tuple[str, ...] = ("", "NULL", "null", "NA", "N/A")
    true_values: tuple[str, ...] = ("true", "True", "TRUE", "1", "yes", "Yes", "YES", "t", "T", "y", "Y")
    false_values: tuple[str, ...] = ("false", "False", "FALSE", "0", "no", "No", "NO", "f", "F", "n", "N")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        normal = value.lower().replace("_", "-")
        aliases = {
            "utf8": "utf-8",
            "latin1": "latin-1",
            "iso-8859-1": "latin-1",
            "windows-1252": "cp1252",
            "utf-8-bom": "utf-8-sig",
            "utf16": "utf-16",
            "shift-jis": "shift_jis",
            "sjis": "shift_jis",
        }
        normal = aliases.get(normal, normal)
        if normal not in ENCODINGS:
            raise ValueError(f"encoding {value!r} is not supported; use one of {', '.join(ENCODINGS)}")
        return normal

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if value in ("\\t", "tab", "TAB"):
            return "\t"
        if len(value) != 1:
            raise ValueError(f"delimiter must be one character, got {value!r}")
        return value


ColumnType = Annotated[str, Field(description="string | int64 | float64 | decimal(p,s) | bool | date | timestamp")]


class Column(_Model):
    """One column: its type and the rules every value must meet."""

    name: str = Field(min_length=1)
    type: ColumnType = "string"
    required: bool = False
    unique: bool = False
    min: Decimal | str | None = None
    max: Decimal | str | None = None
    in_: tuple[Any, ...] | None = Field(None, alias="in")
    pattern: str | None = None
    format: str | None = Field(
        None, description="strptime layout of a date or timestamp column, e.g. %d/%m/%Y (default: ISO 8601)"
    )
    source: str | None = Field(None, description="header name in the file when it differs from `name`")
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value in SIMPLE_TYPES:
            return value
        m = _DECIMAL.match(value)
        if m and 0 < int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1)):
            return f"decimal({int(m.group(1))},{int(m.group(2))})"
        raise ValueError(f"unknown type {value!r}; use one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)")

    @field_validator("min", "max", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        """YAML reads an unquoted 2024-01-01 as a date: keep it as its ISO text."""
        return value.isoformat() if isinstance(value, dt.date) else value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _format_fits(self) -> Column:
        if self.format is not None:
            compile_format(self.format, self.type)
        return self

    @property
    def header_name(self) -> str:
        """The name this column has in the CSV header (``source: ""`` names an empty header cell)."""
        return self.source if self.source is not None else self.name

    @property
    def decimal_precision_scale(self) -> tuple[int, int] | None:
        """``(precision, scale)`` for a decimal column, else None."""
        m = _DECIMAL.match(self.type)
        return (int(m.group(1)), int(m.group(2))) if m else None


DEFAULT_RANGES = {"date": ("1970-01-01", "NOW+1YEARS"), "month": ("1970-01", "NOW+1YEARS"), "year": ("1970", "2100")}


class Partition(_Model):
    """A hive-style partition column derived from a contract column."""

    name: str
    source: str
    transform: Literal["identity", "date", "month", "year"] = "identity"
    range: tuple[str, str] | None = Field(
        None,
        description="what the Glue projection of a date / month / year partition covers, [first, last]: "
        "dates as 2015-01-01 (month 2015-01, year 2015) or relative (NOW, NOW-5YEARS, NOW+1YEARS); "
        f"default {DEFAULT_RANGES}. A run with rows outside it warns (Athena would not see them)",
    )

    @field_validator("range", mode="before")
    @classmethod
    def _range_text(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(str(v) for v in value)
        return value

    @model_validator(mode="after")
    def _range_fits(self) -> Partition:
        if self.range is not None and self.transform == "identity":
            raise ValueError(f"partition {self.name!r}: `range` is for date, month and year partitions")
        if self.range is not None and self.transform == "year" and not all(_YEAR.match(v) for v in self.range):
            raise ValueError(f"partition {self.name!r}: a year range is two integers, e.g. [1990, 2100]")
        if self.range is not None and self.transform in ("date", "month"):
            pattern = _DAY if self.transform == "date" else _MONTH
            for v in self.range:
                if not (pattern.match(v) or _RELATIVE.match(v)):
                    raise ValueError(
                        f"partition {self.name!r}: range bound {v!r} is neither "
                        f"{'yyyy-MM-dd' if self.transform == 'date' else 'yyyy-MM'} nor NOW[+-]<n>YEARS|MONTHS|DAYS"
                    )
        return self

    @property
    def projection_range(self) -> tuple[str, str]:
        """The range the Glue projection covers (``range``, or the default of the transform)."""
        return self.range or DEFAULT_RANGES[self.transform]


_YEAR = re.compile(r"^-?\d{1,9}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_RELATIVE = re.compile(r"^NOW(?:([+-])(\d+)(YEARS|MONTHS|WEEKS|DAYS))?$")


class Measure(_Model):
    """A numeric column aggregated per window and group."""

    column: str
    ops: tuple[Literal["sum", "min", "max"], ...] = ("sum", "min", "max")


class Aggregates(_Model):
    """Which real-time aggregates a run publishes to the stream."""

    time_column: str
    bucket_seconds: int = Field(3600, gt=0, description="time bucket of the published partials")
    dimensions: tuple[str, ...] = ()
    measures: tuple[Measure, ...] = ()
    distinct: tuple[str, ...] = Field((), description="columns with a mergeable distinct-count sketch")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
Size = Annotated[int | str, Field(description="bytes: a number, or with a unit (`16 MiB`, `2 GB`)")]


def parse_size(value: int | str) -> int:
    """Bytes of a size written as a number or with a unit (``16 MiB``, ``2 GB``)."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a size (a number of bytes, or e.g. 16 MiB, 2 GB)")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "B"])


class Limits(_Model):
    """Bounds on what one file may cost, so that a hostile or broken upload fails fast and cheaply."""

    max_row_bytes: Size = Field(
        16 << 20,
        description="longest line; a longer one is quarantined (rule row.length) without being read into memory "
        "whole (with newlines_in_values a longer record rejects the file)",
    )
    max_expansion_ratio: float = Field(
        100.0, gt=1.0, description="decompressed bytes per compressed byte read (beyond the first 16 MiB)"
    )
    max_decompressed_bytes: Size = Field(16 << 30, description="largest decompressed size of a compressed object")
    max_quarantine_bytes: Size = Field(
        256 << 20, description="largest rejected.csv; a file whose rejects need more is refused (it is not loaded)"
    )

    @field_validator("max_row_bytes", "max_decompressed_bytes", "max_quarantine_bytes")
    @classmethod
    def _bytes(cls, value: int | str) -> int:
        size = parse_size(value)
        if size < 1024:
            raise ValueError(f"{value!r} is less than 1 KiB")
        return size

    @property
    def row_bytes(self) -> int:
        """``max_row_bytes`` in bytes."""
        return parse_size(self.max_row_bytes)

    @property
    def decompressed_bytes(self) -> int:
        """``max_decompressed_bytes`` in bytes."""
        return parse_size(self.max_decompressed_bytes)

    @property
    def quarantine_bytes(self) -> int:
        """``max_quarantine_bytes`` in bytes."""
        return parse_size(self.max_quarantine_bytes)


class Retention(_Model):
    """How long the scheduled cleanup keeps a dataset's raw versions and quarantine (none: the bucket rules only)."""

    raw_days: int | None = Field(
        None,
        ge=1,
        description="a raw object version replaced by a newer one is deleted this many days later, only if a run of "
        "it committed (a version that never committed stays for `sluice rerun`)",
    )
    quarantine_days: int | None = Field(None, ge=1, description="rejected rows and reports are deleted after this")


class Drift(_Model):
    """How a file's header may differ from the contract's columns (its order never matters: names match)."""

    case_insensitive: bool = Field(False, description="match header names ignoring case (`Amount` is `amount`)")
    extra_columns: Literal["reject", "drop", "keep"] = Field(
        "reject",
        description="columns the contract does not name: reject the file, drop them, or keep them as string "
        "columns after the contract's (named as in the header; not in the Glue table)",
    )
    missing_columns: Literal["reject", "null"] = Field(
        "reject", description="optional columns absent from the header: reject the file, or load them as NULL"
    )


class Contract(_Model):
    """A dataset contract, loaded from ``contracts/<dataset>.yaml``."""

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(1, ge=1)
    description: str | None = None
    match: Match
    dialect: Dialect = Dialect()
    columns: tuple[Column, ...] = Field(min_length=1)
    partition: tuple[Partition, ...] = ()
    max_reject_ratio: float = Field(1.0, ge=0.0, le=1.0)
    aggregates: Aggregates | None = None
    limits: Limits = Limits()
    drift: Drift = Drift()
    transform: str | None = Field(None, description="optional per-batch pandas hook `module:function`")
    retention: Retention = Retention()

    @model_validator(mode="after")
    def _references_exist(self) -> Contract:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(dupes)}")
        known = set(names)
        for p in self.partition:
            if p.source not in known:
                raise ValueError(f"partition {p.name!r} derives from unknown column {p.source!r}")
            if p.name in known:
                raise ValueError(f"partition name {p.name!r} clashes with a column")
        if self.aggregates is not None:
            refs = [self.aggregates.time_column, *self.aggregates.dimensions, *self.aggregates.distinct]
            refs += [m.column for m in self.aggregates.measures]
            for ref in refs:
                if ref not in known:
                    raise ValueError(f"aggregates refer to unknown column {ref!r}")
        return self

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        """Column names in contract (and Parquet) order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called `name`."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def label(self) -> str:
        """``<dataset> v<version>``, for messages."""
        return f"{self.dataset} v{self.version}"


Locate = Callable[[tuple[Any, ...]], tuple[int, str] | None]  # a path in the data -> (line, source text)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _kind(value: Any) -> str:
    """What YAML made of a value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dt.datetime):
        return "a timestamp"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    return "text"


def _fits(column_type: str, value: Any) -> bool:
    """Whether a rule value, as YAML read it, is a value of `column_type` (no silent conversion)."""
    text = value.strip() if isinstance(value, str) else None
    is_date = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    # a Decimal comes from a contract built in code (a loaded contract's own model_dump), not from YAML
    number = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    integral = isinstance(value, int) or (isinstance(value, Decimal) and value == value.to_integral_value())
    checks: dict[str, bool] = {
        "string": text is not None,
        "int64": number and integral,
        "float64": number,
        "bool": isinstance(value, bool),
        "date": is_date or (text is not None and bool(_ISO_DATE.match(text))),
        "timestamp": isinstance(value, dt.date) or text is not None,
        "decimal": number or (text is not None and bool(_NUMBER.match(text))),
    }
    return checks["decimal" if column_type.startswith("decimal") else column_type]


def _rule_value_problems(data: Any, locate: Locate | None) -> list[str]:
    """Values of ``in``, ``min``, ``max`` that are not of their column's type, each with its line and fix.

    YAML 1.1 reads an unquoted ``NO`` (Norway) as false, ``1.10`` as the number 1.1, ``2024-01-01``
    as a date: in a text column such a value would never match, so the contract is refused.
    """
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
        return []
    problems = []
    for i, col in enumerate(data["columns"]):
        if not isinstance(col, dict) or not isinstance(col.get("type", "string"), str):
            continue
        column_type = str(col.get("type", "string")).strip().lower().replace(" ", "")
        name = col.get("name")
        places: list[tuple[tuple[Any, ...], Any]] = [((i, rule), col[rule]) for rule in ("min", "max") if rule in col]
        if isinstance(col.get("in"), list):
            places += [((i, "in", j), v) for j, v in enumerate(col["in"])]
        for path, value in places:
            if value is None and path[1] != "in":
                continue
            if _fits(column_type, value):
                continue
            where = locate(("columns", *path)) if locate else None
            line, text = where if where else (None, str(value))
            rule = path[1]
            if column_type == "string":
                fix = f'quote it: "{text}"'
            elif column_type == "bool":
                fix = "write true or false"
            else:
                fix = f"write it as {column_type} (numbers unquoted, dates as yyyy-mm-dd)"
            at = f"line {line}: " if line else ""
            problems.append(
                f"{at}column {name!r} ({column_type}): `{rule}` value {text} was read as {_kind(value)}, "
                f"not of type {column_type}; {fix}"
            )
    return problems


def parse_contract(data: Any, origin: str = "<contract>", locate: Locate | None = None) -> Contract:
    """Validate raw contract data (`locate`: where a value is in the YAML, for messages).

    Raises
    ------
    ContractError
        The data is not a valid contract; the message lists every problem.

    """
    typed = _rule_value_problems(data, locate)
    if typed:
        raise ContractError(f"{origin}: invalid contract: " + "; ".join(typed))
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise ContractError(f"{origin}: invalid contract: {problems}") from exc


def _locator(text: str) -> Locate:
    """Find the line (1-based) and source text of a value of YAML document `text` by its path."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None

    def locate(path: tuple[Any, ...]) -> tuple[int, str] | None:
        node = root
        for step in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
            else:
                return None
        if not isinstance(node, yaml.ScalarNode):
            return None
        return node.start_mark.line + 1, node.value

    return locate


def load_contract(path: str | Path) -> Contract:
    """Load and validate one contract file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read contract: {exc}") from exc
    return parse_contract(data, str(path), _locator(text))


def load_contracts(directory: str | Path) -> tuple[Contract, ...]:
    """Load every ``*.yaml``/``*.yml`` contract of `directory`, sorted by dataset."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ContractError(f"contracts directory {directory} does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    contracts = [load_contract(f) for f in files]
    seen: dict[str, Contract] = {}
    for c in contracts:
        if c.dataset in seen:
            raise ContractError(f"dataset {c.dataset!r} is declared twice in {directory}")
        seen[c.dataset] = c
    return tuple(sorted(contracts, key=lambda c: c.dataset))


def resolve_dataset(key: str, contracts: Iterable[Contract]) -> Contract:
    """The contract whose `match` claims raw `key` (the longest prefix wins).

    Raises
    ------
    UnknownDatasetError
        No contract claims the key, or two claim it equally.

    """
    hits = [c for c in contracts if c.match.matches(key)]
    if not hits:
        raise UnknownDatasetError(f"no dataset contract matches key {key!r}; add a contract whose `match` covers it")
    hits.sort(key=lambda c: len(c.match.prefix or c.match.glob or ""), reverse=True)
    if len(hits) > 1 and len(hits[0].match.prefix or hits[0].match.glob or "") == len(
        hits[1].match.prefix or hits[1].match.glob or ""
    ):
        raise UnknownDatasetError(
            f"key {key!r} matches several contracts equally: {', '.join(c.dataset for c in hits)}"
        )
    return hits[0]


def contract_by_name(name: str, contracts: Sequence[Contract]) -> Contract:
    """The contract of dataset `name`."""
    for c in contracts:
        if c.dataset == name:
            return c
    raise UnknownDatasetError(f"no contract for dataset {name!r}")
