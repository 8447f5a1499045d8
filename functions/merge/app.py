"""Merge function: combine the parts the byte ranges of a fan-out left into one run manifest."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.s3 import S3Store
from sluice.contracts import contract_by_name
from sluice.pipeline.fanout import merge_run
from sluice.pipeline.payloads import PlanResult, TransformResult
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
USES = ("contracts_dir", "quarantine_bucket", "work_bucket", "staging_dir")


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: PlanResult, context: LambdaContext) -> TransformResult:
    """Check every range left its part, apply the reject threshold, write the quarantine and run manifest."""
    cfg = settings().require(*USES)
    logger.append_keys(dataset=event["dataset"], key=event["source"]["key"])
    contract = contract_by_name(event["dataset"], contracts(cfg.contracts_dir))
    result = merge_run(
        event,
        contract,
        S3Store(),
        quarantine_bucket=cfg.quarantine_bucket,
        work_bucket=cfg.work_bucket,
        staging_root=cfg.staging_dir,
    )
    metrics.add_dimension(name="dataset", value=contract.dataset)
    metrics.add_metric("RowsIn", MetricUnit.Count, result["rows_in"])
    metrics.add_metric("RowsRejected", MetricUnit.Count, result["rows_rejected"])
    if result.get("warnings"):  # rows Athena's partition projection would not see
        metrics.add_metric("RowsOutsideProjection", MetricUnit.Count, result.get("rows_unprojected", 0))
        logger.warning("rows outside the partition projection", warnings=result["warnings"])
    metrics.add_metric("FanoutRanges", MetricUnit.Count, event["plan"]["ranges"])
    logger.info(
        "merged",
        ranges=event["plan"]["ranges"],
        rows_in=result["rows_in"],
        rows_out=result["rows_out"],
        rows_rejected=result["rows_rejected"],
        output_files=result["output_files"],
    )
    return result
