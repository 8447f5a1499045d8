"""Summarize function: record a succeeded run and retire earlier versions of the same key."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.payloads import TransformResult
from sluice.runs import succeeded_record, supersede_older_versions
from sluice.settings import settings

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
def handler(event: TransformResult, context: LambdaContext) -> TransformResult:
    """Write the run summary (counts, bytes, schema, timings, outputs); pass the input on.

    Runs of earlier versions this one replaced are listed in ``superseded_run_ids`` (Publish
    withdraws their aggregates).
    """
    cfg = settings()
    store, runs = S3Store(), DynamoRunTable(cfg.runs_table)
    record: dict[str, Any] = succeeded_record(event, store.get_json(event["manifest_uri"]), cfg.run_retention_days)
    runs.put_run(record)
    superseded = supersede_older_versions(record, runs, store)
    logger.info("run recorded", status=record["status"], superseded=superseded)
    if superseded:
        event["superseded_run_ids"] = superseded
    return event
