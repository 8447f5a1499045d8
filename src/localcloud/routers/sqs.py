"""SQS event-source mapping: poll, invoke with the SQS event, delete what succeeded."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from localcloud.events import sqs_record
from localcloud.routers import ClientFactory, Emit, Invoke, Router


def failed_message_ids(payload: Any, message_ids: Sequence[str], function_error: str | None, partial: bool) -> set[str]:
    """Message ids Lambda leaves on the queue after an invocation.

    A function error fails the whole batch. With ``ReportBatchItemFailures``, ``batchItemFailures``
    names the failed ones; an empty, missing or unknown ``itemIdentifier`` fails the whole batch.
    """
    if function_error:
        return set(message_ids)
    if not partial or not isinstance(payload, dict):
        return set()
    failures = payload.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    ids: set[str] = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in message_ids:
            return set(message_ids)
        ids.add(str(ident))
    return ids


class SqsRouter(Router):
    """One SQS → Lambda mapping, polled by one thread (batches are delivered one at a time)."""

    def __init__(
        self, esm: Mapping[str, Any], function: str, invoke: Invoke, *, client: ClientFactory, region: str, emit: Emit
    ) -> None:
        super().__init__()
        self.queue_arn = str(esm["EventSourceArn"])
        self.name = f"sqs-{function}"
        self._function = function
        self._invoke = invoke
        self._sqs = client("sqs")
        self._region = region
        self._emit = emit
        self._batch_size = int(esm.get("BatchSize") or 10)
        self._window = float(esm.get("MaximumBatchingWindowInSeconds") or 0)
        self._partial = "ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or [])
        self.queue_url = self._sqs.get_queue_url(QueueName=self.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        self._working = False

    def run(self) -> None:
        """Receive batches and deliver them until stopped."""
        while not self.stopping:
            try:
                messages = self._receive()
                if messages:
                    self._working = True
                    self._deliver(messages)
            except Exception as exc:  # moto unavailable while stopping, or a transient error
                if self.stopping:
                    return
                self._emit("router.error", {"router": self.name, "error": repr(exc)})
                self.sleep(1)
            finally:
                self._working = False

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = 0.0
        while not self.stopping and len(messages) < self._batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self._batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else 1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = response.get("Messages", [])
            if not messages and not got:
                return []
            if not messages:
                deadline = time.monotonic() + self._window
            messages.extend(got)
            if time.monotonic() >= deadline:
                break
            if not got:
                self.sleep(0.05)
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn, self._region) for m in messages]}
        result = self._invoke(event)
        ids = [str(m["MessageId"]) for m in messages]
        failed = failed_message_ids(result.payload, ids, result.function_error, self._partial)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self._emit(
            "sqs.batch",
            {
                "function": self._function,
                "queue": self.queue_arn,
                "size": len(messages),
                "failed": len(failed),
                "error": result.function_error,
            },
        )

    def busy(self, since: float) -> list[str]:
        """Messages visible, in flight (until their visibility timeout) or delayed; a batch being delivered."""
        if self._working:
            return [f"{self._function}: delivering an SQS batch"]
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
                "VisibilityTimeout",
            ],
        )["Attributes"]
        visible = int(attrs.get("ApproximateNumberOfMessages", 0))
        hidden = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
        delayed = int(attrs.get("ApproximateNumberOfMessagesDelayed", 0))
        if visible + hidden + delayed:
            return [
                f"{self.queue_arn.rsplit(':', 1)[-1]}: {visible} visible, {hidden} in flight "
                f"(visibility timeout {attrs.get('VisibilityTimeout')} s), {delayed} delayed"
            ]
        return []
