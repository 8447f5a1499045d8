"""Cleanup function (EventBridge schedule): remove orphaned outputs, fail stuck runs."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.cleanup import clean
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    """One housekeeping pass; returns what it removed."""
    cfg = settings()
    logger.info("cleanup", scheduled_at=event.time, rule=event.resources)
    report = clean(contracts(cfg.contracts_dir), S3Store(), DynamoRunTable(cfg.runs_table), cfg.curated_bucket)
    logger.info("cleaned", orphans=len(report.orphans_deleted), stuck=len(report.stuck_runs_failed))
    return asdict(report)
