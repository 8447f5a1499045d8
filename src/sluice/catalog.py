"""The Glue (Athena) table of a dataset, derived from its contract: columns, partitions, projection.

``sluice contract glue contracts/x.yaml`` prints it as a CloudFormation resource for
``template.yaml``. Partitions are projected (no crawler, no ``MSCK REPAIR``): dates by day,
months by month, years as integers, identity partitions as an enum when the column lists its
``in`` values and as injected values (queries must name them) otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.contracts import Contract, Partition
from sluice.partitioning import partition_type

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


def _projection(partition: Partition, contract: Contract) -> tuple[str, dict[str, str]]:
    """The partition key's Glue type and its ``projection.<name>.*`` parameters."""
    key = f"projection.{partition.name}"
    dated = {"date": ("date", "yyyy-MM-dd", "2020-01-01", "DAYS"), "month": ("string", "yyyy-MM", "2020-01", "MONTHS")}
    if partition.transform in dated:
        glue_type, layout, start, unit = dated[partition.transform]
        return glue_type, {
            f"{key}.type": "date",
            f"{key}.format": layout,
            f"{key}.range": f"{start},NOW",
            f"{key}.interval": "1",
            f"{key}.interval.unit": unit,
        }
    if partition.transform == "year":
        return "bigint", {f"{key}.type": "integer", f"{key}.range": "2000,2100"}
    source = contract.column(partition.source)
    if source.in_:
        values = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in source.in_)
        return hive_type(partition_type(partition, contract)[1]), {f"{key}.type": "enum", f"{key}.values": values}
    return "string", {f"{key}.type": "injected"}


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
