"""Plan function: split a huge raw CSV into line-aligned byte ranges for the Distributed Map."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.s3 import S3Store
from sluice.contracts import contract_by_name
from sluice.pipeline.fanout import plan_run
from sluice.pipeline.payloads import PlanResult, ValidateResult
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
USES = ("contracts_dir", "work_bucket", "fanout_range_bytes", "fanout_max_concurrency")


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
def handler(event: ValidateResult, context: LambdaContext) -> PlanResult:
    """Read the header, cut the data into ranges, write them to the work bucket; pass the run on with its plan."""
    cfg = settings().require(*USES)
    logger.append_keys(dataset=event["dataset"], key=event["source"]["key"])
    contract = contract_by_name(event["dataset"], contracts(cfg.contracts_dir))
    result = plan_run(event, contract, S3Store(), work_bucket=cfg.work_bucket, settings=cfg.fanout())
    plan = result["plan"]
    logger.info("planned", ranges=plan["ranges"], range_bytes=plan["range_bytes"], size=event["source"].get("size"))
    return result
