"""The Glue (Athena) table of a dataset, derived from its contract: columns, partitions, projection.

``sluice contract glue contracts/x.yaml`` prints it as a CloudFormation resource for
``template.yaml``. Partitions are projected (no crawler, no ``MSCK REPAIR``): dates by day,
months by month, years as integers, each over the partition's ``range`` (see
:attr:`sluice.contracts.Partition.projection_range`); identity partitions as an enum when the
column lists its ``in`` values and as injected values (queries must name them) otherwise.

The enum values are the folder names the writer makes, from the same function
(:func:`sluice.engine.partitioning.folder_values`); an enum of a column that may be null also lists
``__HIVE_DEFAULT_PARTITION__``, the folder of null values. :func:`unprojected` says which folders a
run wrote that the projection does not cover (a date out of range, a null date): the run warns.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from sluice.contracts import _RELATIVE, Contract, Partition
from sluice.engine.partitioning import DEFAULT_PARTITION, escape, folder_values, partition_type
from sluice.engine.rules import arrow_type, in_values

_HIVE = {
    "string": "string",
    "int64": "bigint",
    "float64": "double",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}


def hive_type(column_type: str) -> str:
    """The Glue/Athena type of a contract (or partition) type."""
    return column_type if column_type.startswith("decimal") else _HIVE[column_type]


def logical_id(dataset: str) -> str:
    """``orders_daily`` -> ``OrdersDailyGlueTable``."""
    return "".join(p.capitalize() for p in re.split(r"[^a-zA-Z0-9]+", dataset) if p) + "GlueTable"


def enum_values(partition: Partition, contract: Contract) -> list[str] | None:
    """The folder names an identity partition over a column with ``in`` values can have (else None).

    The ``in`` values in the column's type, named by the writer's own function; the default
    partition too when the column may be null.
    """
    source = contract.column(partition.source)
    if partition.transform != "identity" or not source.in_:
        return None
    values = folder_values(in_values(source, arrow_type(source.type)))
    if not source.required:
        values.append(DEFAULT_PARTITION)
    return list(dict.fromkeys(values))


def _projection(partition: Partition, contract: Contract) -> tuple[str, dict[str, str]]:
    """The partition key's Glue type and its ``projection.<name>.*`` parameters."""
    key = f"projection.{partition.name}"
    dated = {"date": ("date", "yyyy-MM-dd", "DAYS"), "month": ("string", "yyyy-MM", "MONTHS")}
    if partition.transform in dated:
        glue_type, layout, unit = dated[partition.transform]
        return glue_type, {
            f"{key}.type": "date",
            f"{key}.format": layout,
            f"{key}.range": ",".join(partition.projection_range),
            f"{key}.interval": "1",
            f"{key}.interval.unit": unit,
        }
    if partition.transform == "year":
        return "bigint", {f"{key}.type": "integer", f"{key}.range": ",".join(partition.projection_range)}
    values = enum_values(partition, contract)
    if values is not None:
        glue_type = hive_type(partition_type(partition, contract)[1])
        return glue_type, {f"{key}.type": "enum", f"{key}.values": ",".join(values)}
    return "string", {f"{key}.type": "injected"}


def _bound(text: str, today: dt.date) -> dt.date:
    """A date range bound: ``2015-01-01``, ``2015-01`` (its first day), or ``NOW[+-]<n><unit>``."""
    m = _RELATIVE.match(text)
    if m is None:
        return dt.date.fromisoformat(text if len(text) == 10 else f"{text}-01")
    if not m.group(1):
        return today
    n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
    unit = m.group(3)
    if unit in ("DAYS", "WEEKS"):
        return today + dt.timedelta(days=n * (7 if unit == "WEEKS" else 1))
    months = today.year * 12 + today.month - 1 + n * (12 if unit == "YEARS" else 1)
    year, month = divmod(months, 12)
    return dt.date(year, month + 1, min(today.day, calendar.monthrange(year, month + 1)[1]))


def projected(partition: Partition, contract: Contract, folder: str, today: dt.date | None = None) -> bool:
    """Whether the Glue projection of `partition` covers folder value `folder` (as written, escaped)."""
    if partition.transform == "identity":
        values = enum_values(partition, contract)
        return values is None or folder in values  # injected: whatever the query names
    if folder == DEFAULT_PARTITION:
        return False
    first, last = partition.projection_range
    if partition.transform == "year":
        return int(first) <= int(folder) <= int(last)
    today = today or dt.datetime.now(dt.UTC).date()
    if partition.transform == "month":
        start, end = _bound(first, today).replace(day=1), _bound(last, today).replace(day=1)
        return start <= dt.date.fromisoformat(f"{folder}-01") <= end
    return _bound(first, today) <= dt.date.fromisoformat(folder) <= _bound(last, today)


def unprojected(
    contract: Contract, outputs: Iterable[tuple[dict[str, str], int]], today: dt.date | None = None
) -> tuple[int, list[str]]:
    """Rows Athena's projection would not see, and a warning per partition folder at fault.

    `outputs`: each written file's partition (``{name: value}``, unescaped, as in a manifest) and rows.
    """
    rows, missed = 0, dict[str, int]()
    for partition_values, n in outputs:
        for p in contract.partition:
            value = partition_values.get(p.name)
            if value is None:
                continue
            folder = value if value == DEFAULT_PARTITION else escape(value)
            if not projected(p, contract, folder, today):
                rows += n
                where = f"{p.name}={folder}"
                missed[where] = missed.get(where, 0) + n
                break
    warnings = [
        f"{n} rows in {where}, which the Glue partition projection of {contract.label} does not cover: "
        "Athena will not see them (widen the partition's `range` in the contract, or make its source required)"
        for where, n in sorted(missed.items())
    ]
    return rows, warnings


def glue_table(
    contract: Contract, *, database_ref: str = "AnalyticsDatabase", bucket_ref: str = "CuratedBucket"
) -> dict[str, Any]:
    """The ``AWS::Glue::Table`` resource of `contract` (``!Ref``/``!Sub`` as ``{"Ref": ...}``/``{"Fn::Sub": ...}``)."""
    parameters: dict[str, Any] = {"classification": "parquet"}
    keys = []
    if contract.partition:
        parameters["projection.enabled"] = "true"
        for p in contract.partition:
            glue_type, projection = _projection(p, contract)
            parameters.update(projection)
            keys.append({"Name": p.name, "Type": glue_type})
        path = "/".join(f"{p.name}=${{!{p.name}}}" for p in contract.partition)
        parameters["storage.location.template"] = {"Fn::Sub": f"s3://${{{bucket_ref}}}/{contract.dataset}/{path}/"}
    table: dict[str, Any] = {
        "Name": contract.dataset,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
    }
    if keys:
        table["PartitionKeys"] = keys
    table["StorageDescriptor"] = {
        "Location": {"Fn::Sub": f"s3://${{{bucket_ref}}}/{contract.dataset}/"},
        "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        "Columns": [{"Name": c.name, "Type": hive_type(c.type)} for c in contract.columns],
    }
    return {
        "Type": "AWS::Glue::Table",
        "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseName": {"Ref": database_ref},
            "TableInput": table,
        },
    }
