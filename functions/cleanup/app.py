"""Cleanup function (EventBridge schedule): housekeeping that keeps the commit protocol's promises.

It finishes interrupted commits and compactions, compacts partitions of small files, records
silent failures, removes what no commit owns and fails stuck runs (``sluice.pipeline.cleanup``). The
event's ``detail`` may ask for a plan only (``{"dry_run": true}``) or bound the actions
(``{"max_actions": n}``); the invocation stops between steps when its remaining time runs low,
and the next one resumes.
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
from sluice.pipeline.cleanup import clean, metric_counts
from sluice.pipeline.commit import Committer
from sluice.pipeline.compaction import Budget, Compactor
from sluice.settings import contracts, settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
USES = (
    "contracts_dir",
    "raw_bucket",
    "curated_bucket",
    "quarantine_bucket",
    "work_bucket",
    "runs_table",
    "state_machine_arn",
    "run_retention_days",
    "commit_lease_seconds",
    "staging_dir",
    "compaction_target_bytes",
    "compaction_min_files",
    "compaction_min_age_minutes",
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    """One housekeeping pass as of the event's time (``sluice local tick --at`` moves it); returns what it did."""
    cfg = settings().require(*USES)
    detail = event.detail if isinstance(event.detail, dict) else {}
    dry_run = bool(detail.get("dry_run"))
    max_actions = detail.get("max_actions")
    now = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    logger.info("cleanup", scheduled_at=event.time, rule=event.resources, dry_run=dry_run, max_actions=max_actions)
    runs, store = DynamoRunTable(cfg.runs_table), S3Store()
    lease = timedelta(seconds=cfg.commit_lease_seconds)
    # stop between steps once less than a step's worth of time is left: 2 min, or a quarter of a short timeout
    reserve = min(120_000, context.get_remaining_time_in_millis() // 4)
    budget = Budget(context.get_remaining_time_in_millis, reserve, None if max_actions is None else int(max_actions))
    compactor = Compactor(
        runs, store, cfg.work_bucket, cfg.run_retention_days, lease, lambda: now, budget, cfg.staging_dir
    )
    committer = Committer(runs, store, cfg.run_retention_days, lease, lambda: now, compactor)
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
        dry_run=dry_run,
        compactor=compactor,
        compaction=cfg.compaction(),
        budget=budget,
        raw_bucket=cfg.raw_bucket,
        quarantine_bucket=cfg.quarantine_bucket,
    )
    if not dry_run:
        for name, count in metric_counts(report).items():
            metrics.add_metric(name, MetricUnit.Count, count)
    logger.info("cleaned", **metric_counts(report), dry_run=dry_run, stopped=report.stopped)
    return asdict(report)
