"""The local cloud's Kinesis event-source mapping follows Lambda's semantics (driven without a server).

A scripted stream stands in for Kinesis and a scripted function for the handler, so batching,
windows, retries, bisection and the on-failure destination are checked invocation by invocation.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from localcloud.pool import InvokeResult
from localcloud.routers.kinesis import KinesisMapping, ShardPoller

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dlq"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"


class FakeAws:
    """Kinesis (one shard, records appended by the test) and SQS (messages collected)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def put(self, data: str, arrival: float, key: str = "k") -> str:
        with self.lock:
            seq = str(len(self.records) + 1)
            self.records.append(
                {
                    "SequenceNumber": seq,
                    "Data": data.encode(),
                    "PartitionKey": key,
                    "ApproximateArrivalTimestamp": datetime.fromtimestamp(arrival, UTC),
                }
            )
        return seq

    def __call__(self, service: str) -> FakeAws:
        return self

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        with self.lock:
            start = int(ShardIterator)
            batch = self.records[start : start + Limit]
        return {"Records": batch, "NextShardIterator": str(start + len(batch)), "MillisBehindLatest": 0}

    def get_queue_url(self, QueueName: str) -> dict[str, Any]:
        return {"QueueUrl": f"https://sqs/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))


class Function:
    """Records every event; answers with ``respond(event)``."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[Any, str | None]]) -> None:
        self.events: list[dict[str, Any]] = []
        self.respond = respond

    def __call__(self, event: Any) -> InvokeResult:
        self.events.append(json.loads(json.dumps(event)))
        payload, error = self.respond(event)
        return InvokeResult(payload, error, "")

    def batches(self) -> list[list[str]]:
        """Decoded data of each non-final invocation."""
        return [
            [base64.b64decode(r["kinesis"]["data"]).decode() for r in e["Records"]]
            for e in self.events
            if not e.get("isFinalInvokeForWindow")
        ]


def mapping(**overrides: Any) -> KinesisMapping:
    settings: dict[str, Any] = {
        "stream_arn": STREAM,
        "function_arn": FUNCTION,
        "role_arn": "arn:role",
        "batch_size": 100,
        "starting_position": "TRIM_HORIZON",
        "on_failure": DLQ,
        "max_retries": 1,
        "partial": True,
    }
    return KinesisMapping(**{**settings, **overrides})


def poller(aws: FakeAws, function: Function, **overrides: Any) -> ShardPoller:
    return ShardPoller(
        mapping(**overrides),
        "shardId-000000000000",
        function,
        client=aws,
        region="us-east-1",
        emit=lambda kind, data: None,
    )


def records_of(aws: FakeAws, p: ShardPoller) -> list[dict[str, Any]]:
    from localcloud.events import kinesis_record

    return [kinesis_record(r, p.shard_id, STREAM, "us-east-1", "arn:role") for r in aws.records]


def fails_on_poison(event: dict[str, Any]) -> tuple[Any, str | None]:
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]
    if "poison" in data:
        return {"errorType": "ValueError", "errorMessage": "poison"}, "Unhandled"
    return None, None


def reports_poison(event: dict[str, Any]) -> tuple[Any, str | None]:
    for record in event["Records"]:
        if base64.b64decode(record["kinesis"]["data"]) == b"poison":
            return {"batchItemFailures": [{"itemIdentifier": record["kinesis"]["sequenceNumber"]}]}, None
    return {"batchItemFailures": []}, None


def eight_with_poison(aws: FakeAws) -> None:
    now = time.time()
    for i in range(8):
        aws.put("poison" if i == 5 else f"r{i}", now)


def test_bisect_isolates_a_failing_record_and_sends_only_it_to_the_destination() -> None:
    aws, function = FakeAws(), Function(fails_on_poison)
    eight_with_poison(aws)
    p = poller(aws, function, bisect=True)
    p.deliver(records_of(aws, p))

    assert function.batches() == [
        ["r0", "r1", "r2", "r3", "r4", "poison", "r6", "r7"],
        ["r0", "r1", "r2", "r3"],
        ["r4", "poison", "r6", "r7"],
        ["r4", "poison"],
        ["r4"],
        ["poison"],
        ["poison"],  # one retry (MaximumRetryAttempts=1), then discarded
        ["r6", "r7"],
    ]
    (record,) = aws.sent
    info = record["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "shardId-000000000000",
        "6",
        "6",
        1,
    )
    assert info["streamArn"] == STREAM
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == FUNCTION
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responseContext"]["functionError"] == "Unhandled"


def test_partial_failure_resumes_from_the_reported_record_and_discards_the_rest_after_retries() -> None:
    aws, function = FakeAws(), Function(reports_poison)
    eight_with_poison(aws)
    p = poller(aws, function)
    p.deliver(records_of(aws, p))

    assert function.batches() == [
        ["r0", "r1", "r2", "r3", "r4", "poison", "r6", "r7"],
        ["poison", "r6", "r7"],  # the checkpoint moved to the lowest failed sequence number
    ]
    (record,) = aws.sent
    info = record["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("6", "8", 3)
    assert "functionError" not in record["responseContext"]


def test_partial_failure_with_bisect_discards_only_the_reported_record() -> None:
    aws, function = FakeAws(), Function(reports_poison)
    eight_with_poison(aws)
    p = poller(aws, function, bisect=True)
    p.deliver(records_of(aws, p))

    processed = [d for batch in function.batches() for d in batch]
    assert processed.count("r6") == processed.count("r7") == 2  # once in the first batch (reported later), once after
    assert [r["KinesisBatchInfo"]["startSequenceNumber"] for r in aws.sent] == ["6"]
    assert aws.sent[0]["KinesisBatchInfo"]["batchSize"] == 1


@pytest.mark.parametrize("failures", [[{"itemIdentifier": ""}], [{"itemIdentifier": "999"}], [{"id": "1"}], "x"])
def test_invalid_batch_item_failures_fail_the_whole_batch(failures: Any) -> None:
    aws, function = FakeAws(), Function(lambda event: ({"batchItemFailures": failures}, None))
    aws.put("a", time.time())
    aws.put("b", time.time())
    p = poller(aws, function, max_retries=2)
    p.deliver(records_of(aws, p))

    assert function.batches() == [["a", "b"]] * 3
    assert [
        (r["KinesisBatchInfo"]["startSequenceNumber"], r["KinesisBatchInfo"]["endSequenceNumber"]) for r in aws.sent
    ] == [("1", "2")]


def test_records_older_than_the_maximum_age_are_discarded_without_invoking() -> None:
    aws, function = FakeAws(), Function(lambda event: (None, None))
    aws.put("old", time.time() - 120)
    aws.put("new", time.time())
    p = poller(aws, function, max_age=60)
    p.deliver(records_of(aws, p))

    assert function.batches() == [["new"]]
    assert [r["requestContext"]["condition"] for r in aws.sent] == ["RecordAgeExceeded"]
    assert aws.sent[0]["KinesisBatchInfo"]["startSequenceNumber"] == "1"


def counting(event: dict[str, Any]) -> tuple[Any, str | None]:
    state = dict(event["state"])
    for record in event["Records"]:
        state[record["kinesis"]["partitionKey"]] = state.get(record["kinesis"]["partitionKey"], 0) + 1
    return {"state": state}, None


def run_until_flushed(p: ShardPoller) -> None:
    p.start()
    try:
        deadline = time.monotonic() + 10
        while p.busy(time.monotonic() - 0.05) and time.monotonic() < deadline:
            time.sleep(0.05)
        p.request_flush()
        assert p.wait_flushed(10) is None
    finally:
        p.stop()


def test_tumbling_windows_carry_state_close_on_a_later_record_and_flush_early() -> None:
    aws, function = FakeAws(), Function(counting)
    start = (int(time.time()) // 60 - 2) * 60  # two windows that have both ended: no wall-clock race
    for i in range(5):
        aws.put("x", start + 1 + i, key=f"k{i % 2}")
    for _ in range(3):
        aws.put("y", time.time(), key="k0")
    p = poller(aws, function, tumbling_window=60, batch_size=2)
    run_until_flushed(p)

    first, second = start, (int(time.time()) // 60) * 60
    windows = [
        (e["window"]["start"], len(e["Records"]), e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"])
        for e in function.events
    ]
    iso = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (first, second)]
    assert windows == [
        (iso[0], 2, False, False),
        (iso[0], 2, False, False),
        (iso[0], 1, False, False),  # never spans windows
        (iso[0], 0, True, False),  # closed by the first record of a later window
        (iso[1], 2, False, False),
        (iso[1], 1, False, False),
        (iso[1], 0, True, True),  # closed by the flush, before the window's end
    ]
    finals = [e for e in function.events if e["isFinalInvokeForWindow"]]
    assert [f["state"] for f in finals] == [{"k0": 3, "k1": 2}, {"k0": 3}]
    assert function.events[1]["state"] == {"k0": 1, "k1": 1}  # state returned by the previous invocation
    assert all(e["shardId"] == "shardId-000000000000" and e["eventSourceARN"] == STREAM for e in function.events)
    assert function.events[0]["window"]["end"] == datetime.fromtimestamp(first + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_window_response_without_state_is_a_failed_invocation() -> None:
    answers = iter([({"batchItemFailures": []}, None), ({"state": {"n": 1}}, None), ({"state": {}}, None)])
    aws, function = FakeAws(), Function(lambda event: next(answers))
    aws.put("a", time.time())
    run_until_flushed(poller(aws, function, tumbling_window=60))

    assert [(len(e["Records"]), e["state"], e["isFinalInvokeForWindow"]) for e in function.events] == [
        (1, {}, False),
        (1, {}, False),
        (0, {"n": 1}, True),
    ]


def test_state_over_one_megabyte_terminates_the_window_early_with_a_fresh_state() -> None:
    big = {"blob": "x" * (1024 * 1024)}
    aws, function = FakeAws(), Function(lambda event: ({"state": big if event["Records"] else {}}, None))
    now = time.time()
    aws.put("a", now)
    aws.put("b", now)
    run_until_flushed(poller(aws, function, tumbling_window=3600, batch_size=1))

    seen = [
        (len(e["Records"]), e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"], e["state"] == big)
        for e in function.events
    ]
    assert seen == [
        (1, False, False, False),
        (0, True, True, True),  # terminated early, state handed over
        (1, False, False, False),
        (0, True, True, True),
    ]  # same window, fresh state
    assert len({e["window"]["start"] for e in function.events}) == 1


def test_a_failing_final_invocation_blocks_the_shard_and_is_reported() -> None:
    def respond(event: dict[str, Any]) -> tuple[Any, str | None]:
        if event["isFinalInvokeForWindow"]:
            return {"errorType": "UnexpectedBatchTypeError", "errorMessage": "no records"}, "Unhandled"
        return {"state": {}}, None

    aws, function = FakeAws(), Function(respond)
    aws.put("a", time.time())
    p = poller(aws, function, tumbling_window=60)
    p.start()
    try:
        deadline = time.monotonic() + 10
        while not function.events and time.monotonic() < deadline:
            time.sleep(0.05)
        p.request_flush()
        problem = p.wait_flushed(20)
        assert problem is not None and "UnexpectedBatchTypeError: no records" in problem
        assert p.busy(0) == [f"shardId-000000000000: {p.stuck}"]
    finally:
        p.stop()
    finals = [e for e in function.events if e["isFinalInvokeForWindow"]]
    assert len(finals) >= 3  # retried: Lambda keeps the shard waiting until it succeeds


def test_the_local_clouds_kinesis_shards_answer_as_moto_does_in_linear_time():
    """Fails if the patched shard (O(1) puts, bisected reads) answers anything differently from moto's own."""
    import random

    from moto.kinesis.models import Shard

    from localcloud import motofixes

    original = motofixes.originals()
    plain, fast = Shard(0, 0, 2**128), Shard(1, 0, 2**128)
    motofixes.apply()
    assert Shard.put_record is not original["put_record"]
    rnd = random.Random(7)
    for i in range(3000):
        a = original["put_record"](plain, f"k{i}", f"d{i}", "")
        b = fast.put_record(f"k{i}", f"d{i}", "")
        assert a == b
        if rnd.random() < 0.05:
            after, limit = str(rnd.randint(0, i + 2)), rnd.choice([None, 1, 7, 10000])
            got_a, last_a, _ = original["get_records"](plain, after, limit)
            got_b, last_b, _ = fast.get_records(after, limit)
            assert [r.sequence_number for r in got_a] == [r.sequence_number for r in got_b] and last_a == last_b
    assert fast.get_max_sequence_number() == original["get_max_sequence_number"](plain) == 3000
    assert fast.get_min_sequence_number() == 1
    fast.records = type(fast.records)()  # moto replaces a shard's records when shards merge
    assert fast.get_max_sequence_number() == 0 and fast.put_record("k", "d", "") == "1"
