"""Kinesis adapter: PutRecords in batches within the service limits, retrying only failed entries.

Two kinds of throttling: entries rejected inside a PutRecords answer (``ProvisionedThroughputExceeded``
per entry) are retried here with backoff, and a TransientError once attempts run out; a whole request
refused (the call's own ProvisionedThroughputExceededException, 5xx, a dropped connection, after
botocore's retries) raises TransientError at once. Either way the step is retried by its caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from sluice.adapters.aws_errors import mapped
from sluice.adapters.clients import client as cached_client
from sluice.errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_kinesis.client import KinesisClient

MAX_RECORDS = 500  # entries per PutRecords
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # data + partition keys per PutRecords
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key of one entry
MAX_PARTITION_KEY = 256

Entry = tuple[str, bytes]  # (partition key, data)


class RecordTooLargeError(ValueError):
    """One record is over Kinesis's 1 MiB limit."""


def entry_size(entry: Entry) -> int:
    """Bytes an entry counts for against the Kinesis limits."""
    return len(entry[0].encode("utf-8")) + len(entry[1])


def batches(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """Consecutive batches of at most 500 entries and 5 MiB.

    Raises
    ------
    RecordTooLargeError
        An entry is over 1 MiB, or its partition key over 256 characters.

    """
    batch: list[Entry] = []
    size = 0
    for entry in entries:
        n = entry_size(entry)
        if n > MAX_RECORD_BYTES or len(entry[0]) > MAX_PARTITION_KEY or not entry[0]:
            raise RecordTooLargeError(
                f"record of {n} bytes with partition key {entry[0][:40]!r}... "
                "is over the Kinesis limits (1 MiB, key of 1-256 characters)"
            )
        if batch and (len(batch) == MAX_RECORDS or size + n > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += n
    if batch:
        yield batch


class KinesisPublisher:
    """Puts records on one stream; only the entries Kinesis rejected are retried, with backoff."""

    def __init__(
        self,
        stream_name: str,
        *,
        client: KinesisClient | None = None,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream_name = stream_name
        self._kinesis: KinesisClient = client if client is not None else cached_client("kinesis")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.retried = 0

    def put(self, entries: Sequence[Entry]) -> int:
        """Put every entry (in order within each batch); returns how many were put.

        Raises
        ------
        TransientError
            Some entries were still rejected (throttling, internal errors) after every attempt.

        """
        total = 0
        for batch in batches(entries):
            self._put_batch(batch)
            total += len(batch)
        return total

    def _put_batch(self, batch: list[Entry]) -> None:
        pending = batch
        last_codes: list[str] = []
        for attempt in range(self.max_attempts):
            if attempt:
                ceiling = min(self.max_delay, self.base_delay * (2**attempt))
                self._sleep(random.uniform(0, ceiling))  # full jitter
            with mapped():
                resp = self._kinesis.put_records(
                    StreamName=self.stream_name,
                    Records=[{"PartitionKey": key, "Data": data} for key, data in pending],
                )
            if not resp.get("FailedRecordCount"):
                return
            failed = [entry for entry, result in zip(pending, resp["Records"], strict=True) if result.get("ErrorCode")]
            last_codes = sorted({r["ErrorCode"] for r in resp["Records"] if r.get("ErrorCode")})
            self.retried += len(failed)
            pending = failed
        raise TransientError(
            f"{len(pending)} of {len(batch)} records were still rejected by stream {self.stream_name} after "
            f"{self.max_attempts} attempts ({', '.join(last_codes)}); the step is retried"
        )
