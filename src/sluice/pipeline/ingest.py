"""Turn the events that announce raw objects into pipeline runs.

The Start function accepts every shape a user feeds it: S3 notification ``Records`` (what
``sam local generate-event s3 put`` makes), EventBridge "Object Created", and SQS messages
wrapping either. Keys are read as each source encodes them: S3 notification records URL-encode
the key (a space as ``+``), EventBridge events carry it as it is (a ``+`` is a plus).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event

from sluice.contracts import Contract, resolve_dataset
from sluice.errors import SluiceError, UnknownDatasetError
from sluice.pipeline.payloads import FailureInput, RunInput, SourceObject
from sluice.pipeline.runid import run_id_for
from sluice.pipeline.runs import failed_record
from sluice.ports import Executions, RunTable

UNKNOWN_DATASET = "unknown"


class UnrecognisedEventError(SluiceError):
    """An event is none of the shapes the Start function accepts."""


def sources_in(event: Mapping[str, Any]) -> Iterator[SourceObject]:
    """Every raw object announced by an S3 notification or an EventBridge event."""
    if event.get("Event") == "s3:TestEvent":
        return
    if "Records" in event:
        for record in S3Event(dict(event)).records:
            if not record.event_name.startswith("ObjectCreated"):
                continue
            obj = record.s3.get_object
            yield SourceObject(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj.key),
                version_id=obj.version_id,
                etag=obj.etag or None,
                size=int(obj.get("size") or 0),
                sequencer=obj.get("sequencer"),
            )
    elif event.get("detail-type") == "Object Created":
        detail = EventBridgeEvent(dict(event)).detail
        obj = detail["object"]
        yield SourceObject(
            bucket=detail["bucket"]["name"],
            key=obj["key"],  # not URL-encoded in EventBridge events
            version_id=obj.get("version-id"),
            etag=obj.get("etag") or obj.get("eTag"),  # AWS sends "etag"; moto's local events "eTag"
            size=int(obj.get("size") or 0),
            sequencer=obj.get("sequencer"),
        )
    else:
        raise UnrecognisedEventError(
            "event is neither S3 notification Records nor an EventBridge 'Object Created' event "
            f"(keys: {sorted(event)[:8]})"
        )


def is_sqs_event(event: Mapping[str, Any]) -> bool:
    """Whether `event` is an SQS batch (from the ingest queue's event source mapping)."""
    records = event.get("Records")
    return bool(records) and isinstance(records, list) and records[0].get("eventSource") == "aws:sqs"


def run_input_for(
    source: SourceObject, contracts: Sequence[Contract], now: datetime | None = None, *, attempt: int = 1
) -> RunInput:
    """The execution input for one raw object; an unclaimed key still gets a run (which will fail)."""
    try:
        dataset = resolve_dataset(source["key"], contracts).dataset
    except UnknownDatasetError:
        dataset = UNKNOWN_DATASET
    return RunInput(
        run_id=run_id_for(dataset, source, attempt=attempt),
        dataset=dataset,
        source=source,
        received_at=(now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
    )


@dataclass(frozen=True)
class Started:
    """What the Start function did with one raw object."""

    run_id: str
    key: str
    started: bool  # False: the run already existed (a duplicate or late event)


def start_runs(
    event: Mapping[str, Any], contracts: Sequence[Contract], executions: Executions, state_machine_arn: str
) -> list[Started]:
    """Start one execution per announced upload (names are deterministic: a repeated event starts nothing).

    Which of several uploads of a key ends up live is decided by their version order at commit
    (:mod:`sluice.pipeline.commit`), not by the order their events arrive in.
    """
    done = []
    for source in sources_in(event):
        run = run_input_for(source, contracts)
        started = executions.start(state_machine_arn, run["run_id"], run)
        done.append(Started(run["run_id"], source["key"], started))
    return done


MAX_ATTEMPTS = 99


def record_unstartable(
    event: Mapping[str, Any],
    contracts: Sequence[Contract],
    runs: RunTable,
    error: BaseException,
    *,
    attempts: int,
    retention_days: int,
) -> list[str]:
    """A FAILED run for each object of `event` that could not be started on its last delivery.

    The ingest queue moves the message to its dead-letter queue next: the run record says so and
    how to send it back, so the upload is never lost silently. A run that exists already (the
    execution did start, its answer was lost) is left alone. Returns the run ids recorded.
    """
    try:
        sources = list(sources_in(event))
    except UnrecognisedEventError:
        return []
    recorded = []
    for source in sources:
        run = run_input_for(source, contracts)
        if runs.get_run(run["run_id"]) is not None:
            continue
        cause = (
            f"s3://{source['bucket']}/{source['key']}: the run could not be started after {attempts} deliveries "
            f"of its event ({type(error).__name__}: {error}); the event is in the ingest dead-letter queue: "
            "run `sluice redrive ingest` once the cause is fixed"
        )
        failure = FailureInput(
            run_id=run["run_id"],
            dataset=run["dataset"],
            source=source,
            error={"Error": "RunNotStarted", "Cause": cause},
        )
        runs.put_run(failed_record(failure, None, retention_days))
        recorded.append(run["run_id"])
    return recorded


def rerun(
    source: SourceObject, dataset: str, executions: Executions, state_machine_arn: str, now: datetime | None = None
) -> Started:
    """Start the next run of one upload: the first attempt whose execution name is free.

    A rerun converges like any run: it commits only if its version is not older than the key's
    live one (a rerun of the live version replaces its output with an identical one).

    Raises
    ------
    SluiceError
        Every attempt name is taken.

    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run = RunInput(
            run_id=run_id_for(dataset, source, attempt=attempt),
            dataset=dataset,
            source=source,
            received_at=(now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        )
        if executions.start(state_machine_arn, run["run_id"], run):
            return Started(run["run_id"], source["key"], True)
    raise SluiceError(f"s3://{source['bucket']}/{source['key']}: {MAX_ATTEMPTS} runs of this upload exist already")
