"""Summarize function: commit a converted run and record its summary.

The commit (``sluice.pipeline.commit``) publishes the run's staged Parquet and retires the previous
version of the same raw key in one decided step; the run's record then says COMMITTED (or
SUPERSEDED, when a newer version of the key is already live).
"""

from datetime import timedelta

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.pipeline.commit import Committer
from sluice.pipeline.compaction import Compactor
from sluice.pipeline.payloads import CommittedResult, TransformResult
from sluice.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
USES = ("runs_table", "work_bucket", "run_retention_days", "commit_lease_seconds", "staging_dir")


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: TransformResult, context: LambdaContext) -> CommittedResult:
    """Commit the run; returns the input plus ``commit`` (status, order, the run it retired)."""
    cfg = settings().require(*USES)
    logger.append_keys(dataset=event["dataset"], key=event["source"]["key"])
    runs, store, lease = DynamoRunTable(cfg.runs_table), S3Store(), timedelta(seconds=cfg.commit_lease_seconds)
    # a new version of a key whose rows were compacted rewrites the compacted file without them
    compactor = Compactor(runs, store, cfg.work_bucket, cfg.run_retention_days, lease, scratch=cfg.staging_dir)
    committer = Committer(runs, store, cfg.run_retention_days, lease=lease, compactions=compactor)
    outcome = committer.commit(event)
    metrics.add_metric("RunsCommitted" if outcome.status == "COMMITTED" else "RunsSuperseded", MetricUnit.Count, 1)
    logger.info("committed", **outcome.to_json())
    return CommittedResult(**event, commit=outcome.to_json())
