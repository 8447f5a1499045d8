"""Housekeeping run by the schedule: finish interrupted commits, remove what no commit owns, fail stuck runs.

It deletes only what no commit owns (docs/commit-protocol.md): curated files of runs that are not
live (COMMITTING, COMMITTED, SUCCEEDED), and staged files of runs that will never commit. It also
gives every execution that ended badly without saying so (RecordFailure itself failed, or the
execution died of a Step Functions runtime error) a FAILED run record with the execution's error.
Retention of raw versions and quarantine is enforced by S3 lifecycle rules and of run records by
DynamoDB TTL (see template.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice import layout
from sluice.commit import Committer, Head
from sluice.contracts import Contract
from sluice.payloads import FailureInput
from sluice.ports import Executions, ObjectStore, RunTable
from sluice.runs import COMMITTING, FAILED, LIVE, RUNNING, failed_record


@dataclass
class CleanupReport:
    """What one cleanup pass did (or, with ``dry_run``, would do)."""

    commits_completed: list[str] = field(default_factory=list)
    failures_recorded: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    staging_deleted: list[str] = field(default_factory=list)
    stuck_runs_failed: list[str] = field(default_factory=list)
    files_checked: int = 0


class _Owners:
    """Run statuses, looked up once per run."""

    def __init__(self, runs: RunTable) -> None:
        self._runs = runs
        self._status: dict[str, str | None] = {}

    def status(self, run_id: str) -> str | None:
        if run_id not in self._status:
            record = self._runs.get_run(run_id)
            self._status[run_id] = record.get("status") if record else None
        return self._status[run_id]


def clean(
    contracts: Sequence[Contract],
    store: ObjectStore,
    runs: RunTable,
    committer: Committer,
    *,
    curated_bucket: str,
    work_bucket: str,
    executions: Executions | None = None,
    state_machine_arn: str = "",
    now: datetime | None = None,
    grace: timedelta = timedelta(hours=6),
    stuck_after: timedelta = timedelta(hours=2),
    lookback: timedelta = timedelta(days=3),
    dry_run: bool = False,
) -> CleanupReport:
    """One pass, as if at `now`: files younger than `grace` are never touched.

    With `executions`, executions of `state_machine_arn` that ended badly within `lookback` and
    left no terminal run record get one.
    """
    now = now or datetime.now(UTC)
    report = CleanupReport()
    _complete_interrupted_commits(runs, committer, now, report, dry_run)
    if executions is not None:
        _record_silent_failures(
            executions,
            state_machine_arn,
            runs,
            retention_days=committer.retention_days,
            since=now - lookback,
            report=report,
            dry_run=dry_run,
        )
    owners = _Owners(runs)
    for contract in contracts:
        doomed = []
        for key, _size, modified in store.list_keys(curated_bucket, f"{contract.dataset}/"):
            report.files_checked += 1
            run_id = layout.run_of_output(key)
            if run_id is not None and now - modified >= grace and owners.status(run_id) not in LIVE:
                doomed.append(key)
        _delete(store, curated_bucket, doomed, report.orphans_deleted, dry_run)
    staged = []
    for key, _size, modified in store.list_keys(work_bucket, layout.STAGING):
        run_id = layout.run_of_staged(key)
        if run_id is not None and now - modified >= grace and owners.status(run_id) not in (RUNNING, COMMITTING):
            staged.append(key)
    _delete(store, work_bucket, staged, report.staging_deleted, dry_run)
    _fail_stuck_runs(runs, now, stuck_after, report, dry_run)
    return report


def _delete(store: ObjectStore, bucket: str, keys: list[str], done: list[str], dry_run: bool) -> None:
    if keys and not dry_run:
        store.delete_keys(bucket, keys)
    done += [f"s3://{bucket}/{k}" for k in keys]


def _complete_interrupted_commits(
    runs: RunTable, committer: Committer, now: datetime, report: CleanupReport, dry_run: bool
) -> None:
    """Roll forward every commit whose committer died holding the lease (it expired)."""
    for run_id in runs.run_ids_with_status(COMMITTING):
        record = runs.get_run(run_id)
        if record is None or record.get("status") != COMMITTING or not record.get("source_uri"):
            continue
        head = Head.from_item(str(record["source_uri"]), runs.get_head(str(record["source_uri"])))
        if head.pending_run_id != run_id or now < datetime.fromisoformat(str(head.lease_until)):
            continue
        report.commits_completed.append(run_id)
        if not dry_run:
            committer.complete(head)


def _record_silent_failures(
    executions: Executions,
    state_machine_arn: str,
    runs: RunTable,
    *,
    retention_days: int,
    since: datetime,
    report: CleanupReport,
    dry_run: bool,
) -> None:
    """A FAILED record for each execution that ended badly while its run record is missing or RUNNING."""
    for ended in executions.ended_badly_since(state_machine_arn, since):
        record = runs.get_run(ended["name"])
        if record is not None and record.get("status") != RUNNING:
            continue
        report.failures_recorded.append(ended["name"])
        if dry_run:
            continue
        given = ended["input"]
        failure = FailureInput(run_id=ended["name"], error={"Error": str(ended["error"]), "Cause": str(ended["cause"])})
        for field_name in ("dataset", "source", "started_at"):
            if given.get(field_name):
                failure[field_name] = given[field_name]
        failed = failed_record(failure, record, retention_days)
        failed["reason"] = f"execution {ended['status']}: {failed['reason'] or failed['error_type']}"
        runs.put_run(failed)


def _fail_stuck_runs(
    runs: RunTable, now: datetime, stuck_after: timedelta, report: CleanupReport, dry_run: bool
) -> None:
    """Mark FAILED the runs still RUNNING `stuck_after` after they started (their execution died)."""
    for run_id in runs.run_ids_with_status(RUNNING):
        record = runs.get_run(run_id)
        if record is None or record.get("status") != RUNNING:
            continue
        started = datetime.fromisoformat(str(record.get("started_at")))
        if now - started <= stuck_after:
            continue
        report.stuck_runs_failed.append(run_id)
        if dry_run:
            continue
        changes: dict[str, Any] = {
            "status": FAILED,
            "error_type": "RunTimedOut",
            "reason": f"still RUNNING {now - started} after it started; marked failed by cleanup "
            "(nothing of it was visible; run it again with `sluice rerun`)",
            "finished_at": now.isoformat(timespec="milliseconds"),
            "updated_at": now.isoformat(timespec="milliseconds"),
        }
        runs.transition(run_id, (RUNNING,), changes)
