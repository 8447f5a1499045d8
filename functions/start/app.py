"""Start function: one pipeline execution per raw object version.

Fed by the ingest queue (SQS wrapping EventBridge "Object Created"), or directly with an S3
notification or EventBridge event. The execution name is the run id, derived from
bucket/key/version, so a duplicate or late event starts nothing new. Each message is started on
its own with bounded retries and timeouts, so one slow call cannot time out the whole batch; a
message that fails on its last delivery (before the dead-letter queue) is recorded as a FAILED
run saying how to send it back.
"""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.sfn import StepFunctions
from sluice.pipeline.ingest import Started, is_sqs_event, record_unstartable, start_runs
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
USES = ("contracts_dir", "state_machine_arn", "runs_table", "ingest_max_receives", "run_retention_days")


def _start(event: dict[str, Any]) -> list[Started]:
    cfg = settings()
    done = start_runs(event, contracts(cfg.contracts_dir), StepFunctions(quick=True), cfg.state_machine_arn)
    for s in done:
        logger.info("run started" if s.started else "run already exists", run_id=s.run_id, key=s.key)
        metrics.add_metric("RunsStarted" if s.started else "DuplicateEvents", MetricUnit.Count, 1)
    return done


@tracer.capture_method
def _record_handler(record: SQSRecord) -> None:
    try:
        _start(record.json_body)
    except Exception as exc:
        cfg = settings()
        deliveries = int(record.attributes.approximate_receive_count)
        if deliveries >= cfg.ingest_max_receives:
            recorded = record_unstartable(
                record.json_body,
                contracts(cfg.contracts_dir),
                DynamoRunTable(cfg.runs_table),
                exc,
                attempts=deliveries,
                retention_days=cfg.run_retention_days,
            )
            logger.error("event goes to the dead-letter queue", message_id=record.message_id, runs=recorded)
            metrics.add_metric("EventsDeadLettered", MetricUnit.Count, 1)
        raise


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, object]:
    """Start runs; for SQS batches, report only the failed messages for redelivery."""
    settings().require(*USES)
    if is_sqs_event(event):
        return process_partial_response(
            event=event, record_handler=_record_handler, processor=processor, context=context
        )
    return {"runs": [{"run_id": s.run_id, "key": s.key, "started": s.started} for s in _start(event)]}
