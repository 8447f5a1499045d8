"""Transform function: stream a raw CSV, or one byte range of it, into partitioned zstd Parquet."""

from typing import cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.s3 import S3Store
from sluice.contracts import contract_by_name
from sluice.engine.transform import Progress, ProgressHook, throttled
from sluice.pipeline.landing import land_range, land_run
from sluice.pipeline.payloads import RangeResult, RangeTask, TransformResult, ValidateResult
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
PROGRESS_EVERY_S = 30.0
USES = ("contracts_dir", "curated_bucket", "quarantine_bucket", "work_bucket", "staging_dir")


def progress_log(total_bytes: int | None) -> ProgressHook:
    """Log how far the conversion is every PROGRESS_EVERY_S seconds (long files: progress in CloudWatch)."""

    def log(p: Progress) -> None:
        logger.info(
            "converting",
            bytes_read=p.bytes_read,
            percent_read=round(100 * p.bytes_read / total_bytes, 1) if total_bytes else None,
            rows_in=p.rows_in,
            rows_rejected=p.rows_rejected,
            seconds=round(p.seconds, 1),
        )

    return throttled(log, PROGRESS_EVERY_S)


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: ValidateResult | RangeTask, context: LambdaContext) -> TransformResult | RangeResult:
    """Convert the run's raw object, or one byte range of it, into staged Parquet; names derive from the run id."""
    cfg = settings().require(*USES)
    logger.append_keys(dataset=event["dataset"], key=event["source"]["key"])
    contract = contract_by_name(event["dataset"], contracts(cfg.contracts_dir))
    metrics.add_dimension(name="dataset", value=contract.dataset)
    if "range" in event:
        task = cast(RangeTask, event)
        rng = task["range"]
        part = land_range(
            task,
            contract,
            S3Store(),
            curated_bucket=cfg.curated_bucket,
            work_bucket=cfg.work_bucket,
            staging_root=cfg.staging_dir,
            progress=progress_log(rng["end"] - rng["start"]),
        )
        metrics.add_metric("RangeRowsIn", MetricUnit.Count, part["rows_in"])
        logger.info(
            "range transformed",
            index=part["index"],
            start=task["range"]["start"],
            end=task["range"]["end"],
            rows_in=part["rows_in"],
            rows_rejected=part["rows_rejected"],
        )
        return part
    result = land_run(
        event,
        contract,
        S3Store(),
        curated_bucket=cfg.curated_bucket,
        quarantine_bucket=cfg.quarantine_bucket,
        work_bucket=cfg.work_bucket,
        staging_root=cfg.staging_dir,
        progress=progress_log(event["source"].get("size")),
    )
    metrics.add_metric("RowsIn", MetricUnit.Count, result["rows_in"])
    metrics.add_metric("RowsRejected", MetricUnit.Count, result["rows_rejected"])
    if result.get("warnings"):  # rows Athena's partition projection would not see
        metrics.add_metric("RowsOutsideProjection", MetricUnit.Count, result.get("rows_unprojected", 0))
        logger.warning("rows outside the partition projection", warnings=result["warnings"])
    logger.info(
        "transformed",
        rows_in=result["rows_in"],
        rows_out=result["rows_out"],
        rows_rejected=result["rows_rejected"],
        output_files=result["output_files"],
    )
    return result
