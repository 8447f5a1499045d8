"""RecordFailure function: record a failed run with the reason Step Functions caught."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.payloads import FailureInput
from sluice.runs import failed_record
from sluice.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: FailureInput, context: LambdaContext) -> dict[str, Any]:
    """Write the FAILED record; the raw object is left untouched."""
    cfg = settings()
    runs = DynamoRunTable(cfg.runs_table)
    record = failed_record(event, runs.get_run(event["run_id"]), cfg.run_retention_days)
    runs.put_run(record)
    metrics.add_metric("RunsFailed", MetricUnit.Count, 1)
    logger.warning("run failed", error_type=record["error_type"], reason=record["reason"])
    return {
        "run_id": record["run_id"],
        "status": record["status"],
        "error_type": record["error_type"],
        "reason": record["reason"],
    }
