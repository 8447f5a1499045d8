"""Cleanup function (EventBridge schedule): housekeeping that keeps the commit protocol's promises.

It finishes interrupted commits, records silent failures, removes what no commit owns and fails stuck runs.
"""

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.adapters.sfn import StepFunctions
from sluice.cleanup import clean
from sluice.commit import Committer
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    """One housekeeping pass as of the event's time (``sluice local tick --at`` moves it); returns what it did."""
    cfg = settings()
    now = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    logger.info("cleanup", scheduled_at=event.time, rule=event.resources)
    runs, store = DynamoRunTable(cfg.runs_table), S3Store()
    committer = Committer(runs, store, cfg.run_retention_days, timedelta(seconds=cfg.commit_lease_seconds), lambda: now)
    report = clean(
        contracts(cfg.contracts_dir),
        store,
        runs,
        committer,
        curated_bucket=cfg.curated_bucket,
        work_bucket=cfg.work_bucket,
        executions=StepFunctions(),
        state_machine_arn=cfg.state_machine_arn,
        now=now,
    )
    for name, done in (
        ("CommitsCompleted", report.commits_completed),
        ("SilentFailuresRecorded", report.failures_recorded),
        ("OrphansDeleted", report.orphans_deleted),
        ("StagedFilesDeleted", report.staging_deleted),
        ("StuckRunsFailed", report.stuck_runs_failed),
    ):
        metrics.add_metric(name, MetricUnit.Count, len(done))
    logger.info(
        "cleaned",
        commits_completed=len(report.commits_completed),
        failures_recorded=len(report.failures_recorded),
        orphans=len(report.orphans_deleted),
        staged=len(report.staging_deleted),
        stuck=len(report.stuck_runs_failed),
    )
    return asdict(report)
