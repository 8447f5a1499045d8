"""AWS list prices sluice's cost figures use (us-east-1, on-demand, first pricing tier, no free tier).

Taken from the public AWS pricing pages as published in 2025 (``PRICE_LIST_DATE``); they were not
re-checked online when written down here, so check https://aws.amazon.com/pricing before relying on
them. One place for every price: ``sluice tune`` and the README cost table read them from here.
"""

from __future__ import annotations

from typing import Final

PRICE_LIST_DATE: Final = "2025-06"
REGION: Final = "us-east-1"

#: Lambda, per GB-second of duration (billed per 1 ms; memory in GB = MB / 1024).
LAMBDA_GB_SECOND: Final = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
#: Lambda, per request ($0.20 per million).
LAMBDA_REQUEST: Final = 0.20 / 1_000_000
#: Lambda bills duration in steps of this many milliseconds.
LAMBDA_BILLING_MS: Final = 1
#: Memory at which a function gets one full vCPU of time (documented by AWS).
LAMBDA_MB_PER_VCPU: Final = 1769

#: Step Functions Standard workflows, per state transition ($0.025 per 1,000).
SFN_STATE_TRANSITION: Final = 0.025 / 1000
#: S3 Standard requests: PUT, COPY, POST, LIST ($0.005 per 1,000) and GET, SELECT ($0.0004 per 1,000).
S3_PUT_REQUEST: Final = 0.005 / 1000
S3_GET_REQUEST: Final = 0.0004 / 1000

#: Glue (2.0 and later) Spark job: per DPU-hour, billed per second with a 1-minute minimum; at least 2 DPUs.
GLUE_DPU_HOUR: Final = 0.44
GLUE_MIN_SECONDS: Final = 60
GLUE_MIN_DPUS: Final = 2
#: vCPUs of one DPU (a G.1X worker: 4 vCPUs, 16 GB).
GLUE_VCPUS_PER_DPU: Final = 4

#: Data Firehose (Direct PUT): ingestion per GB (first 500 TB a month) and JSON to Parquet
#: conversion per GB; both billed on ingested bytes in 5 KB steps per record.
FIREHOSE_INGEST_GB: Final = 0.029
FIREHOSE_CONVERSION_GB: Final = 0.018
FIREHOSE_RECORD_STEP_BYTES: Final = 5 * 1024
