"""The Transform handler against moto: outputs, manifest, partials, quarantine; refusals leave no Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from sluice.errors import RejectThresholdError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()
STAGED = "staging/orders-t-0001/"


def validated(aws: dict[str, str], key: str, data: bytes) -> dict:
    version = boto3.client("s3").put_object(Bucket=aws["RawBucket"], Key=key, Body=data)["VersionId"]
    return {
        "run_id": "orders-t-0001",
        "dataset": "orders",
        "contract_version": 1,
        "source": {"bucket": aws["RawBucket"], "key": key, "version_id": version, "etag": None, "size": len(data)},
        "mode": "single",
        "started_at": "2026-11-23T10:00:00.000+00:00",
    }


def keys(bucket: str, prefix: str = "") -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"].removeprefix(prefix) for o in listed.get("Contents", []))


def test_transform_lands_parquet_quarantine_manifest_and_partials(aws, handler_of, tmp_path):
    result = handler_of("TransformFunction")(validated(aws, "orders/a.csv", SAMPLE))
    assert (result["rows_in"], result["rows_out"], result["rows_rejected"]) == (245, 240, 5)
    assert keys(aws["CuratedBucket"]) == [], "nothing is visible before the commit"
    staged = keys(aws["WorkBucket"], STAGED)
    assert staged == [f"orders/order_date=2026-11-0{d}/orders-t-0001-0.parquet" for d in (1, 2)]
    rows = 0
    for key in staged:
        path = tmp_path / key.replace("/", "_")
        boto3.client("s3").download_file(aws["WorkBucket"], STAGED + key, str(path))
        meta = pq.ParquetFile(path).metadata
        rows += meta.num_rows
        assert meta.row_group(0).column(0).compression == "ZSTD"
    assert rows == 240
    assert keys(aws["QuarantineBucket"]) == ["orders/orders-t-0001/rejected.csv", "orders/orders-t-0001/report.json"]
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=aws["WorkBucket"], Key="runs/orders-t-0001/manifest.json")["Body"].read()
    )
    assert sum(o["rows"] for o in manifest["outputs"]) == 240
    assert manifest["rejects_by_rule"] and sum(manifest["rejects_by_rule"].values()) == 5
    partials = json.loads(
        s3.get_object(Bucket=aws["WorkBucket"], Key="runs/orders-t-0001/partials.json")["Body"].read()
    )
    assert sum(p["count"] for p in partials) == 240


def test_too_many_rejects_fail_the_run_without_parquet_and_keep_the_diagnosis(aws, handler_of):
    lines = SAMPLE.decode().splitlines(keepends=True)
    broken = lines[0] + "".join(
        line.replace(",DE,", ",XX,").replace(",FR,", ",XX,").replace(",NL,", ",XX,") for line in lines[1:]
    )
    with pytest.raises(RejectThresholdError) as info:
        handler_of("TransformFunction")(validated(aws, "orders/bad.csv", broken.encode()))
    assert "max_reject_ratio 0.2" in str(info.value)
    assert f"s3://{aws['QuarantineBucket']}/orders/orders-t-0001/report.json" in str(info.value)
    assert keys(aws["CuratedBucket"]) == [] and keys(aws["WorkBucket"], STAGED) == []
    assert "orders/orders-t-0001/report.json" in keys(aws["QuarantineBucket"])


def test_a_long_conversion_logs_its_progress(aws, handler_of, caplog):
    import sys

    handler = handler_of("TransformFunction")
    sys.modules["handler_TransformFunction"].PROGRESS_EVERY_S = 0.0  # every chunk, for the test
    big = SAMPLE + SAMPLE.split(b"\n", 1)[1] * 400  # ~6 MB: a few 2 MiB chunks
    with pytest.raises(RejectThresholdError):  # the repeats break order_id.unique: progress is logged anyway
        handler(validated(aws, "orders/big.csv", big))
    progress = [r.__dict__ for r in caplog.records if r.getMessage() == "converting"]
    assert len(progress) >= 3, progress  # one per 2 MiB chunk here
    assert progress[-1]["bytes_read"] == len(big) and progress[-1]["percent_read"] == 100.0
    assert [p["rows_in"] for p in progress] == sorted(p["rows_in"] for p in progress)


def test_a_gzipped_object_lands_like_the_plain_one(aws, handler_of):
    import gzip

    result = handler_of("TransformFunction")(validated(aws, "orders/a.csv.gz", gzip.compress(SAMPLE)))
    assert (result["rows_in"], result["rows_out"], result["rows_rejected"]) == (245, 240, 5)
    assert keys(aws["WorkBucket"], STAGED) == [
        f"orders/order_date=2026-11-0{d}/orders-t-0001-0.parquet" for d in (1, 2)
    ]
