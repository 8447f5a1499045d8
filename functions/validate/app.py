"""Validate function: check a raw object against its dataset contract before converting it."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.pipeline.payloads import RunInput, ValidateResult
from sluice.pipeline.preflight import validate_run
from sluice.pipeline.runs import started_record
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
USES = ("contracts_dir", "runs_table", "fanout_threshold_bytes", "run_retention_days")


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
def handler(event: RunInput, context: LambdaContext) -> ValidateResult:
    """Resolve the contract, check encoding and header, record the run as RUNNING."""
    cfg = settings().require(*USES)
    logger.append_keys(dataset=event.get("dataset"), key=event["source"]["key"])
    result = validate_run(event, contracts(cfg.contracts_dir), S3Store(), cfg.fanout_threshold_bytes)
    DynamoRunTable(cfg.runs_table).put_run(started_record(result, cfg.run_retention_days))
    logger.info("validated", mode=result["mode"], size=result["source"].get("size"))
    return result
