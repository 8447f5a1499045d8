"""RecordFailure function: record why a run's execution failed, with the reason Step Functions caught."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.pipeline.payloads import FailureInput
from sluice.pipeline.runs import FAILED, failed_record
from sluice.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
USES = ("runs_table", "run_retention_days")


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: FailureInput, context: LambdaContext) -> dict[str, Any]:
    """Write the failure into the run's record; the raw object and committed data are left untouched.

    A run that failed before its commit becomes FAILED (metric ``RunsFailed``); one that failed
    after it (Publish) keeps its committed state and data (metric ``CommittedRunsIncomplete``).
    """
    cfg = settings().require(*USES)
    runs = DynamoRunTable(cfg.runs_table)
    record = failed_record(event, runs.get_run(event["run_id"]), cfg.run_retention_days)
    runs.put_run(record)
    before_commit = record["status"] == FAILED
    metrics.add_metric("RunsFailed" if before_commit else "CommittedRunsIncomplete", MetricUnit.Count, 1)
    logger.warning(
        "run failed" if before_commit else "committed run's later step failed",
        status=record["status"],
        failed_step=record["failed_step"],
        error_type=record["error_type"],
        reason=record["reason"],
    )
    return {
        "run_id": record["run_id"],
        "status": record["status"],
        "failed_step": record["failed_step"],
        "error_type": record["error_type"],
        "reason": record["reason"],
    }
