"""Right-sizing: what a conversion costs at a Lambda memory size, and what other services charge for it.

A Lambda function gets CPU time in proportion to its memory: one vCPU at 1,769 MB, two at 3,538,
and so on (up to 6 at 10,240 MB). ``sluice tune`` runs the transform once per memory size with
the process pinned to that many CPUs (at most the CPUs of the machine) and the engine's thread
count picked as on Lambda (:func:`sluice.engine.transform.available_cpus`), then turns each
:class:`Measurement` into GB-seconds and dollars here. Prices live in :mod:`sluice.prices`.

Sizes (input per GB) are GiB: 2**30 bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from sluice import prices

GIB = 1 << 30
ARCHITECTURES = ("x86_64", "arm64")

#: State transitions of one file on the single-worker path: Validate, Route, Transform, Summarize,
#: Publish, Done (statemachines/pipeline.asl.json; a retry adds one per attempt).
SFN_TRANSITIONS_PER_FILE = 6
#: Lambda invocations per file besides Transform: Start, Validate, Summarize, Publish.
OTHER_INVOCATIONS_PER_FILE = 4
#: S3 requests per file with one Parquet output (read from the code, not measured): GETs (Validate's
#: head, Transform's read, Summarize and Publish reading the run manifest) and PUT/COPY (the staged
#: Parquet, the manifest, the commit's copy to the curated key, the quarantine report).
S3_GETS_PER_FILE = 4
S3_PUTS_PER_FILE = 4


def vcpu_share(memory_mb: int) -> float:
    """The vCPUs of CPU time Lambda gives a function of `memory_mb` (1.0 at 1,769 MB)."""
    return memory_mb / prices.LAMBDA_MB_PER_VCPU


def pinned_cpus(memory_mb: int, available: int) -> int:
    """CPUs to pin a local run to: the engine's own rule (whole vCPUs, at least 1), at most `available`."""
    return max(1, min(available, round(vcpu_share(memory_mb))))


def billed_seconds(seconds: float) -> float:
    """Duration as Lambda bills it: rounded up to the billing step (1 ms)."""
    step = prices.LAMBDA_BILLING_MS
    return math.ceil(round(seconds * 1000, 6) / step) * step / 1000


def gb_seconds(memory_mb: int, seconds: float) -> float:
    """Memory (GB = MB / 1024) times billed duration."""
    return memory_mb / 1024 * billed_seconds(seconds)


def lambda_cost(memory_mb: int, seconds: float, architecture: str = "x86_64") -> float:
    """Dollars for one invocation: duration at the architecture's GB-second price, plus the request."""
    return gb_seconds(memory_mb, seconds) * prices.LAMBDA_GB_SECOND[architecture] + prices.LAMBDA_REQUEST


def per_gib(cost: float, input_bytes: int) -> float:
    """A cost for `input_bytes` scaled to one GiB of input."""
    return cost * GIB / max(1, input_bytes)


def pipeline_overhead_per_file() -> float:
    """Dollars per file outside Transform's duration: state transitions, S3 requests, the other invocations."""
    return (
        SFN_TRANSITIONS_PER_FILE * prices.SFN_STATE_TRANSITION
        + S3_GETS_PER_FILE * prices.S3_GET_REQUEST
        + S3_PUTS_PER_FILE * prices.S3_PUT_REQUEST
        + OTHER_INVOCATIONS_PER_FILE * prices.LAMBDA_REQUEST
    )


def glue_job_cost(input_bytes: int, bytes_per_vcpu_second: float, dpus: int = prices.GLUE_MIN_DPUS) -> float:
    """Dollars for one Glue (2.0+) Spark job run converting `input_bytes`.

    Assumes Spark converts as fast per vCPU as sluice does on one vCPU, on every vCPU of the
    DPUs (4 each), with no start-up time: a lower bound. Billed per second, at least a minute.
    """
    seconds = input_bytes / max(1e-9, bytes_per_vcpu_second * dpus * prices.GLUE_VCPUS_PER_DPU)
    return dpus * max(prices.GLUE_MIN_SECONDS, seconds) / 3600 * prices.GLUE_DPU_HOUR


def firehose_cost(json_bytes: int, record_bytes: int = 1000 * 1024) -> float:
    """Dollars for Firehose to ingest `json_bytes` of JSON and convert it to Parquet.

    Firehose converts JSON only, so the CSV must first become JSON (a record may hold many JSON
    documents); each record is billed in 5 KB steps, ingestion plus conversion per GB.
    """
    step = prices.FIREHOSE_RECORD_STEP_BYTES
    full, rest = divmod(json_bytes, record_bytes)
    billed = full * math.ceil(record_bytes / step) * step + math.ceil(rest / step) * step
    return billed / GIB * (prices.FIREHOSE_INGEST_GB + prices.FIREHOSE_CONVERSION_GB)


def json_ratio(sample: str, delimiter: str = ",", quote_char: str | None = '"') -> float:
    """Bytes of the rows as JSON objects (one per row, keys from the header) per byte of CSV.

    `sample` is the start of the file from its header line on; a last partial line is dropped.
    """
    text = sample[: sample.rfind("\n") + 1] if "\n" in sample else sample
    stream = io.StringIO(text)
    if quote_char:
        reader = csv.reader(stream, delimiter=delimiter, quotechar=quote_char)
    else:
        reader = csv.reader(stream, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if not header:
        return 1.0
    body = text.split("\n", 1)[1] if "\n" in text else ""
    json_bytes = sum(len(json.dumps(dict(zip(header, row, strict=False))).encode()) + 1 for row in reader)
    return json_bytes / max(1, len(body.encode()))


@dataclass(frozen=True)
class Measurement:
    """One conversion at one memory size, as ``sluice tune`` measured it."""

    memory_mb: int
    cpus: int  # CPUs the process was pinned to
    threads: int  # engine threads (one per whole vCPU of the memory size, as on Lambda)
    seconds: float  # the conversion itself: the handler's duration on a warm invocation
    init_seconds: float  # imports before it: what a cold start adds
    peak_rss_bytes: int
    input_bytes: int
    rows_in: int
    background_cpus: float = 0.0  # CPUs other processes used meanwhile: >= 0.1 and the time is not clean

    def cost(self, architecture: str = "x86_64") -> float:
        """Dollars for converting this file once (duration + request)."""
        return lambda_cost(self.memory_mb, self.seconds, architecture)

    def to_row(self) -> dict[str, Any]:
        """The figures ``sluice tune`` reports, JSON-able."""
        share = vcpu_share(self.memory_mb)
        return {
            "memory_mb": self.memory_mb,
            "vcpu_share": round(share, 2),
            "cpus_pinned": self.cpus,
            "threads": self.threads,
            "seconds": round(self.seconds, 3),
            "init_seconds": round(self.init_seconds, 3),
            "peak_rss_mib": round(self.peak_rss_bytes / (1 << 20), 1),
            "fits_memory": self.peak_rss_bytes <= self.memory_mb << 20,
            "mib_per_second": round(self.input_bytes / (1 << 20) / max(1e-9, self.seconds), 1),
            "gb_seconds": round(gb_seconds(self.memory_mb, self.seconds), 4),
            "usd_per_gib": {a: per_gib(self.cost(a), self.input_bytes) for a in ARCHITECTURES},
            "usd_per_1000_files": {a: 1000 * self.cost(a) for a in ARCHITECTURES},
            # False when the local run could not get Lambda's share: a fraction of a vCPU, or more CPUs than here
            "cpu_matched": math.isclose(share, self.cpus, rel_tol=0.01),
            "background_cpus": round(self.background_cpus, 2),
        }
