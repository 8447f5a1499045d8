"""Kinesis adapter: PutRecords batches within the limits; only rejected entries are retried."""

from __future__ import annotations

import random

import pytest

from sluice.adapters.kinesis import MAX_REQUEST_BYTES, KinesisPublisher, RecordTooLargeError, batches
from sluice.errors import TransientError


class FlakyStream:
    """A PutRecords endpoint that rejects a share of entries (throttling), keeping the accepted ones."""

    def __init__(self, reject: float, seed: int = 0) -> None:
        self.reject = reject
        self.rng = random.Random(seed)
        self.accepted: list[tuple[str, bytes]] = []
        self.requests: list[int] = []

    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        assert len(Records) <= 500
        assert sum(len(r["PartitionKey"]) + len(r["Data"]) for r in Records) <= MAX_REQUEST_BYTES
        self.requests.append(len(Records))
        results = []
        for r in Records:
            if self.rng.random() < self.reject:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
            else:
                self.accepted.append((r["PartitionKey"], r["Data"]))
                results.append({"SequenceNumber": str(len(self.accepted)), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in x for x in results), "Records": results}


def test_every_entry_lands_once_even_when_many_are_throttled():
    stream = FlakyStream(reject=0.3)
    delays: list[float] = []
    publisher = KinesisPublisher("s", client=stream, sleep=delays.append, max_attempts=30)
    entries = [(f"orders#{i % 7}", f"record-{i}".encode()) for i in range(1234)]
    assert publisher.put(entries) == 1234
    assert sorted(stream.accepted) == sorted(entries)
    assert publisher.retried > 0 and delays and max(delays) <= publisher.max_delay
    assert stream.requests.count(500) == 2 and 234 in stream.requests  # three batches, then only retries


def test_batches_respect_the_request_size():
    big = [("k", b"x" * 900_000) for _ in range(12)]
    sizes = [len(b) for b in batches(big)]
    assert sum(sizes) == 12 and max(sizes) == 5
    with pytest.raises(RecordTooLargeError):
        list(batches([("k", b"x" * (1024 * 1024))]))
    with pytest.raises(RecordTooLargeError):
        list(batches([("k" * 257, b"x")]))


def test_entries_still_rejected_after_every_attempt_raise_a_retryable_error():
    publisher = KinesisPublisher("s", client=FlakyStream(reject=1.0), sleep=lambda _: None, max_attempts=3)
    with pytest.raises(TransientError, match="ProvisionedThroughputExceededException"):
        publisher.put([("k", b"x")])
