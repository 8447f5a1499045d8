"""Aggregate function: fold stream records into tumbling-window aggregates, written exactly once.

Kinesis event-source mapping with a tumbling window and ``ReportBatchItemFailures``: the window
state travels in ``event["state"]``; a record that cannot be aggregated is reported (with every
later record of the batch) so Lambda retries it, bisects, and finally sends it to the DLQ while
the shard moves on. At the window's end the state is written to the aggregates table.
"""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamEvent,
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.aggregates_table import DynamoAggregateStore
from sluice.aggregates.windows import DEFAULT_BUDGET, Window, WindowState
from sluice.contracts import Contract, contract_by_name
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)
USES = ("contracts_dir", "aggregates_table", "aggregates_retention_days", "window_state_budget_bytes")


@cache
def _store() -> DynamoAggregateStore:
    cfg = settings()
    return DynamoAggregateStore(cfg.aggregates_table, retention_days=cfg.aggregates_retention_days)


def _contract(dataset: str) -> Contract:
    return contract_by_name(dataset, contracts(settings().contracts_dir))


def _shard_of(event: dict[str, Any]) -> str:
    if event.get("shardId"):
        return str(event["shardId"])
    records = event.get("Records") or [{}]
    return str(records[0].get("eventID", "unknown:")).split(":", 1)[0] or "unknown"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Fold the batch into the window state; flush it when the window ends (or the state grows)."""
    cfg = settings().require(*USES)
    stream = KinesisStreamEvent(event)
    shard = _shard_of(event)
    logger.append_keys(shard=shard)
    window = Window(
        WindowState.from_json(stream.state, shard),
        _store(),
        _contract,
        budget=DEFAULT_BUDGET if cfg.window_state_budget_bytes is None else cfg.window_state_budget_bytes,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )

    def fold(record: KinesisStreamRecord) -> None:
        window.handle(record.kinesis.sequence_number, record.kinesis.data_as_bytes())

    failures = []
    if event.get("Records"):  # the window's final invocation usually carries none
        response = process_partial_response(event=event, record_handler=fold, processor=processor, context=context)
        failures = response.get("batchItemFailures", [])
    state = window.close(final=bool(stream.is_final_invoke_for_window or stream.is_window_terminated_early))
    for seq, reason in window.poison:
        logger.warning(
            "record cannot be aggregated; Lambda retries it, then sends it to the DLQ",
            sequence_number=seq,
            reason=reason,
        )
    for conflict in window.report.conflicts:
        logger.error("overlapping replay not applied (see docs/aggregates.md)", contribution=conflict)
    metrics.add_metric("RecordsFolded", MetricUnit.Count, window.folded)
    metrics.add_metric("PoisonRecords", MetricUnit.Count, len(window.poison))
    metrics.add_metric("RecordsDeferred", MetricUnit.Count, window.deferred)
    metrics.add_metric("ItemsWritten", MetricUnit.Count, window.report.items)
    logger.info(
        "window batch",
        final=stream.is_final_invoke_for_window,
        flushes=window.report.flushes,
        outcomes=window.report.outcomes,
        state_records=window.state.folded,
        deferred=window.deferred,
    )
    return {"state": state, "batchItemFailures": failures}
