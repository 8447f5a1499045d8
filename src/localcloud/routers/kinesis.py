"""Kinesis event-source mapping, following Lambda's documented semantics.

Per shard, in order: batches of up to ``BatchSize`` records gathered for up to
``MaximumBatchingWindowInSeconds``; with ``TumblingWindowInSeconds``, batches never span windows
(window = arrival time floored to the window size), the returned ``state`` is passed to the next
invocation of the window, and a final invocation (no records, ``isFinalInvokeForWindow``) closes it
once the wall clock passes its end, a record of a later window arrives, or ``flush`` is asked for
(then ``isWindowTerminatedEarly`` is true, as when the state outgrows 1 MB: the window goes on with a
fresh state). A failed final invocation is retried until it succeeds (the shard waits).

Errors: a function error (or a response without ``state`` inside a window) fails the batch; with
``ReportBatchItemFailures`` the records before the lowest reported sequence number are done and the
rest is retried. ``BisectBatchOnFunctionError`` splits a failing batch (also the rest of a partial
failure) in two, which does not count as a retry. After ``MaximumRetryAttempts`` retries, or when
records are older than ``MaximumRecordAgeInSeconds``, the batch is discarded and its invocation
record (shard id, sequence range) goes to the ``OnFailure`` destination. On a partial failure the
returned state is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.events import kinesis_failure_record, kinesis_record, kinesis_window_event
from localcloud.pool import InvokeResult
from localcloud.routers import ClientFactory, Emit, Invoke, Router

POLL_INTERVAL = 0.1
MAX_PAYLOAD = 6 * 1024 * 1024 - 64 * 1024
MAX_STATE = 1024 * 1024


@dataclass(frozen=True)
class KinesisMapping:
    """The event-source mapping settings the poller honours."""

    stream_arn: str
    function_arn: str
    role_arn: str
    batch_size: int = 100
    batching_window: float = 0.0
    starting_position: str = "LATEST"
    starting_timestamp: Any = None
    tumbling_window: int = 0
    partial: bool = False
    bisect: bool = False
    max_retries: int = -1
    max_age: int = -1
    on_failure: str | None = None

    @classmethod
    def from_esm(cls, esm: Mapping[str, Any], role_arn: str) -> KinesisMapping:
        """From ``ListEventSourceMappings``' entry."""
        return cls(
            stream_arn=str(esm["EventSourceArn"]),
            function_arn=str(esm["FunctionArn"]),
            role_arn=role_arn,
            batch_size=int(esm.get("BatchSize") or 100),
            batching_window=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
            starting_position=str(esm.get("StartingPosition") or "LATEST"),
            starting_timestamp=esm.get("StartingPositionTimestamp"),
            tumbling_window=int(esm.get("TumblingWindowInSeconds") or 0),
            partial="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            bisect=bool(esm.get("BisectBatchOnFunctionError")),
            max_retries=_int(esm.get("MaximumRetryAttempts"), -1),
            max_age=_int(esm.get("MaximumRecordAgeInSeconds"), -1),
            on_failure=(esm.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination"),
        )

    @property
    def stream_name(self) -> str:
        """The stream's name (last part of its ARN)."""
        return self.stream_arn.rsplit("/", 1)[-1]


@dataclass
class _Batch:
    records: list[dict[str, Any]]
    retries: int = 0
    invokes: int = 0


@dataclass
class _Window:
    start: float
    end: float
    state: dict[str, Any] = field(default_factory=dict)


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _seq(record: Mapping[str, Any]) -> int:
    return int(record["kinesis"]["sequenceNumber"])


def _arrival(record: Mapping[str, Any]) -> float:
    return float(record["kinesis"]["approximateArrivalTimestamp"])


def lowest_failure(payload: Any, records: list[dict[str, Any]]) -> int | None:
    """Index of the first record to retry per ``batchItemFailures``; ``None`` = all succeeded; -1 = invalid."""
    if not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return None
    failures = payload["batchItemFailures"]
    seqs = [_seq(r) for r in records]
    lowest: int | None = None
    for item in failures if isinstance(failures, list) else [None]:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        try:
            index = seqs.index(int(ident))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return -1
        lowest = index if lowest is None else min(lowest, index)
    return lowest


class ShardPoller(Router):
    """One shard of one mapping."""

    def __init__(
        self, mapping: KinesisMapping, shard_id: str, invoke: Invoke, *, client: ClientFactory, region: str, emit: Emit
    ) -> None:
        super().__init__()
        self.name = f"kinesis-{shard_id}"
        self.mapping = mapping
        self.shard_id = shard_id
        self._invoke = invoke
        self._client = client
        self._kinesis = client("kinesis")
        self._region = region
        self._emit = emit
        self._buffer: deque[dict[str, Any]] = deque()
        self._buffered_at = 0.0
        self._window: _Window | None = None
        self._iterator: str | None = None
        self._processing = False
        self._empty_fetch_at = -1.0
        self._flush = threading.Event()
        self._flushed = threading.Event()
        self.finished = threading.Event()
        self._final_attempts = 0
        self.stuck: str | None = None  # why the shard is blocked (a failing final invocation), if it is

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Fetch, batch, invoke, until stopped or the shard is closed and drained."""
        try:
            self._iterator = self._initial_iterator()
            while not self.stopping:
                started = time.monotonic()
                fetched = self._fetch()
                progressed = self._step()
                if self._iterator is None and not self._buffer and self._window is None:
                    break
                if not progressed and not fetched:
                    if not self._buffer and not self._processing:
                        self._empty_fetch_at = started
                    self.sleep(POLL_INTERVAL)
        except Exception as exc:
            if not self.stopping:
                self._emit("router.error", {"router": self.name, "error": repr(exc)})
        finally:
            self._flushed.set()
            self.finished.set()

    def _initial_iterator(self) -> str:
        kwargs: dict[str, Any] = {
            "StreamName": self.mapping.stream_name,
            "ShardId": self.shard_id,
            "ShardIteratorType": self.mapping.starting_position,
        }
        if self.mapping.starting_position == "AT_TIMESTAMP":
            kwargs["Timestamp"] = self.mapping.starting_timestamp
        return str(self._kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _fetch(self) -> int:
        if self._iterator is None or len(self._buffer) >= 10 * self.mapping.batch_size:
            return 0
        response = self._kinesis.get_records(ShardIterator=self._iterator, Limit=10000)
        self._iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        if records and not self._buffer:
            self._buffered_at = time.monotonic()
        for raw in records:
            self._buffer.append(
                kinesis_record(raw, self.shard_id, self.mapping.stream_arn, self._region, self.mapping.role_arn)
            )
        return len(records)

    def _window_of(self, record: Mapping[str, Any]) -> tuple[float, float]:
        size = self.mapping.tumbling_window
        start = float(int(_arrival(record)) // size * size)
        return start, start + size

    def _step(self) -> bool:
        flushing = self._flush.is_set()
        window = self._window
        if window is not None:
            next_start = self._window_of(self._buffer[0])[0] if self._buffer else None
            if next_start is not None and next_start > window.start:
                self._close_window(terminated_early=False)
                return True
            if not self._buffer and (time.time() >= window.end or flushing or self._iterator is None):
                self._close_window(terminated_early=time.time() < window.end)
                return True
        if not self._buffer:
            if flushing:
                self._flush.clear()
                self._flushed.set()
            return False
        waited = time.monotonic() - self._buffered_at
        if len(self._buffer) < self.mapping.batch_size and waited < self.mapping.batching_window and not flushing:
            return False
        self.deliver(self._take_batch())
        if self._buffer:
            self._buffered_at = time.monotonic()
        return True

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        window = self._window_of(self._buffer[0]) if self.mapping.tumbling_window else None
        while self._buffer and len(batch) < self.mapping.batch_size:
            record = self._buffer[0]
            if window is not None and self._window_of(record) != window:
                break
            size += len(record["kinesis"]["data"]) + 512
            if batch and size > MAX_PAYLOAD:
                break
            batch.append(self._buffer.popleft())
        return batch

    # ------------------------------------------------------------------ invocations
    def _event(self, records: list[dict[str, Any]], *, final: bool = False, early: bool = False) -> dict[str, Any]:
        if not self.mapping.tumbling_window:
            return {"Records": records}
        if self._window is None:
            self._window = _Window(*self._window_of(records[0]))
        return kinesis_window_event(
            records,
            window=(self._window.start, self._window.end),
            state=self._window.state,
            shard_id=self.shard_id,
            stream_arn=self.mapping.stream_arn,
            final=final,
            terminated_early=early,
        )

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke with one batch until done, retried, bisected or discarded (see the module docstring)."""
        self._processing = True
        try:
            self._deliver(records)
        finally:
            self._processing = False

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        pending = deque([_Batch(records)])
        while pending and not self.stopping:
            batch = pending[0]
            fresh = self._drop_expired(batch)
            if not fresh:
                pending.popleft()
                continue
            result = self._invoke(self._event(batch.records))
            batch.invokes += 1
            index = self._outcome(result, batch.records)
            if index is None:
                pending.popleft()
                continue
            if index > 0:
                batch.records = batch.records[index:]
            if self.mapping.bisect and len(batch.records) > 1:
                half = len(batch.records) // 2
                pending.popleft()
                pending.extendleft(
                    [_Batch(batch.records[half:], batch.retries), _Batch(batch.records[:half], batch.retries)]
                )
                continue
            batch.retries += 1
            if 0 <= self.mapping.max_retries < batch.retries:
                self._discard(batch, "RetryAttemptsExhausted", result.function_error)
                pending.popleft()
            else:
                self.sleep(min(0.1 * 2**batch.retries, 2.0))

    def _outcome(self, result: InvokeResult, records: list[dict[str, Any]]) -> int | None:
        """``None``: batch done; ``i``: retry from records[i] (records before it are done)."""
        if result.function_error:
            return 0
        payload = result.payload
        in_window = self._window is not None
        if in_window and not (isinstance(payload, dict) and isinstance(payload.get("state"), dict)):
            self._emit("kinesis.invalid_response", {"shard": self.shard_id, "reason": "no state in response"})
            return 0
        index = lowest_failure(payload, records) if self.mapping.partial else None
        if index == -1:
            return 0
        if self._window is not None and isinstance(payload, dict):
            self._window.state = payload["state"]
            if len(json.dumps(self._window.state)) > MAX_STATE:
                self._close_window(terminated_early=True)
        return index

    def _drop_expired(self, batch: _Batch) -> bool:
        if self.mapping.max_age < 0:
            return True
        now = time.time()
        expired = [r for r in batch.records if now - _arrival(r) > self.mapping.max_age]
        if expired:
            self._discard(_Batch(expired, batch.retries, batch.invokes), "RecordAgeExceeded", None)
            batch.records = batch.records[len(expired) :]
        return bool(batch.records)

    def _close_window(self, *, terminated_early: bool) -> None:
        processing, self._processing = self._processing, True
        attempt = 0
        while not self.stopping:
            result = self._invoke(self._event([], final=True, early=terminated_early))
            if not result.function_error:
                break
            attempt += 1
            self._final_attempts = attempt
            error = result.payload if isinstance(result.payload, dict) else {}
            self.stuck = (
                f"final invocation failed {attempt} time(s): {error.get('errorType')}: {error.get('errorMessage')}"
            )
            self._emit("kinesis.final_invoke_failed", {"shard": self.shard_id, "attempt": attempt, "error": error})
            self.sleep(min(0.2 * 2**attempt, 5.0))
        self.stuck, self._final_attempts = None, 0
        self._window = None  # a later record of the same window starts it again with a fresh state
        self._processing = processing

    def _discard(self, batch: _Batch, condition: str, function_error: str | None) -> None:
        record = kinesis_failure_record(
            function_arn=self.mapping.function_arn,
            condition=condition,
            invoke_count=batch.invokes,
            function_error=function_error,
            shard_id=self.shard_id,
            records=batch.records,
            stream_arn=self.mapping.stream_arn,
        )
        destination = self.mapping.on_failure
        self._emit(
            "kinesis.discarded",
            {
                "shard": self.shard_id,
                "condition": condition,
                "batch": record["KinesisBatchInfo"],
                "destination": destination,
            },
        )
        if destination is None:
            return
        body = json.dumps(record)
        if destination.startswith("arn:aws:sqs:"):
            sqs = self._client("sqs")
            url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif destination.startswith("arn:aws:sns:"):
            self._client("sns").publish(TopicArn=destination, Message=body)

    # ------------------------------------------------------------------ control
    def request_flush(self) -> None:
        """Close the open window (early) once the records fetched so far are processed."""
        self._flushed.clear()
        self._flush.set()

    def wait_flushed(self, timeout: float) -> str | None:
        """Wait for the flush asked for by ``request_flush``; the reason it did not happen, if so.

        A final invocation failing three times ends the wait early: Lambda would retry it for as long
        as the records live, blocking the shard.
        """
        deadline = time.monotonic() + timeout
        while not self._flushed.wait(0.1):
            if (self.stuck and self._final_attempts >= 3) or time.monotonic() > deadline:
                return f"{self.shard_id}: {self.stuck or 'window not closed in time'}"
        return None

    def busy(self, since: float) -> list[str]:
        """Not caught up: records buffered, an invocation running, or no empty fetch since ``since``."""
        if self.finished.is_set():
            return []
        if self.stuck:
            return [f"{self.shard_id}: {self.stuck}"]
        if self._buffer or self._processing:
            return [f"{self.shard_id}: {len(self._buffer)} records buffered, processing={self._processing}"]
        if self._empty_fetch_at < since:
            return [f"{self.shard_id}: not polled since the idle check started"]
        return []


class KinesisRouter(Router):
    """One Kinesis → Lambda mapping: a poller per shard (children after their parent is drained)."""

    def __init__(
        self, mapping: KinesisMapping, function: str, invoke: Invoke, *, client: ClientFactory, region: str, emit: Emit
    ) -> None:
        super().__init__()
        self.name = f"kinesis-{function}"
        self.mapping = mapping
        self._invoke = invoke
        self._client = client
        self._region = region
        self._kinesis = client("kinesis")
        self._emit = emit
        self.pollers: dict[str, ShardPoller] = {}
        self._lock = threading.Lock()

    def run(self) -> None:
        """Discover shards every second."""
        while not self.sleep(1.0):
            try:
                self._discover()
            except Exception as exc:
                if not self.stopping:
                    self._emit("router.error", {"router": self.name, "error": repr(exc)})

    def _discover(self) -> None:
        shards = self._kinesis.list_shards(StreamName=self.mapping.stream_name)["Shards"]
        for shard in shards:
            shard_id = str(shard["ShardId"])
            parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
            with self._lock:
                if shard_id in self.pollers or self.stopping:
                    continue
                if any(p in self.pollers and not self.pollers[p].finished.is_set() for p in parents):
                    continue
                poller = ShardPoller(
                    self.mapping, shard_id, self._invoke, client=self._client, region=self._region, emit=self._emit
                )
                self.pollers[shard_id] = poller
            poller.start()

    def start(self) -> None:
        """Start a poller per shard and the discovery thread."""
        self._discover()
        super().start()

    def stop(self, timeout: float = 10) -> None:
        """Stop discovery and every poller."""
        self._stop.set()
        with self._lock:
            pollers = list(self.pollers.values())
        for poller in pollers:
            poller.stop(0)
        for poller in pollers:
            poller.stop(timeout)
        super().stop(timeout)

    def flush(self, timeout: float) -> list[str]:
        """Close every open window now; why some were not closed within ``timeout``."""
        with self._lock:
            pollers = [p for p in self.pollers.values() if not p.finished.is_set()]
        for poller in pollers:
            poller.request_flush()
        deadline = time.monotonic() + timeout
        problems = [p.wait_flushed(max(0.0, deadline - time.monotonic())) for p in pollers]
        return [f"{self.mapping.stream_name}/{problem}" for problem in problems if problem]

    def busy(self, since: float) -> list[str]:
        """Reasons of every shard poller."""
        with self._lock:
            pollers = list(self.pollers.values())
        return [f"{self.mapping.stream_name}/{reason}" for p in pollers for reason in p.busy(since)]
