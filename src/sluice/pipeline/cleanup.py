"""Housekeeping run by the schedule: finish interrupted commits, compact, remove what no commit owns, fail stuck runs.

It deletes only what no commit owns (docs/commit-protocol.md): curated files of runs that are
FAILED or SUPERSEDED (a file whose owner has no record is reported, never deleted), staged files
of runs that will never commit, and the files a compaction replaced (by its swap). It
compacts partitions of many small files (:mod:`sluice.pipeline.compaction`). It also gives every
execution that ended badly without saying so (RecordFailure itself failed, or the execution died
of a Step Functions runtime error) a FAILED run record with the execution's error.

Safety: with ``dry_run`` it changes nothing and returns the plan; a pass right after a complete
one does nothing; a :class:`~sluice.pipeline.compaction.Budget` (the Lambda's remaining time, optionally a
number of actions) stops it between steps, and the next pass resumes from what is stored.
Retention of quarantine objects is an S3 lifecycle rule and of finished run records DynamoDB TTL
(see template.yaml); committed run records never expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.contracts import Contract
from sluice.errors import CommitBusyError
from sluice.pipeline import layout
from sluice.pipeline.commit import Committer, Head
from sluice.pipeline.compaction import Bin, Budget, Compactor, SmallFile, is_compaction, plan_partition
from sluice.pipeline.payloads import FailureInput
from sluice.pipeline.runs import COMMITTED, COMMITTING, FAILED, LIVE, RUNNING, SUCCEEDED, SUPERSEDED, failed_record
from sluice.ports import Executions, ObjectStore, RunTable
from sluice.uris import s3_uri


@dataclass(frozen=True)
class CompactionSettings:
    """When a partition is compacted: files below 3/4 of `target_bytes`, at least `min_files` of them."""

    target_bytes: int = 128 << 20
    min_files: int = 10
    min_age: timedelta = timedelta(hours=1)  # files younger than this are left alone (a new version may come)


@dataclass
class CleanupReport:
    """What one cleanup pass did (or, with ``dry_run``, would do: the plan)."""

    dry_run: bool = False
    commits_completed: list[str] = field(default_factory=list)
    compactions_completed: list[str] = field(default_factory=list)  # interrupted ones, rolled forward
    compactions_planned: list[dict[str, Any]] = field(default_factory=list)
    compactions_committed: list[str] = field(default_factory=list)
    compactions_abandoned: list[str] = field(default_factory=list)  # a member key moved meanwhile: next pass
    files_compacted: int = 0
    failures_recorded: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    unowned_files: list[str] = field(default_factory=list)  # no record owns them: reported, never deleted
    expiries_cleared: list[str] = field(default_factory=list)  # live records written when they still expired
    raw_versions_deleted: list[str] = field(default_factory=list)  # <uri>?versionId=<id>
    quarantine_deleted: list[str] = field(default_factory=list)
    staging_deleted: list[str] = field(default_factory=list)
    stuck_runs_failed: list[str] = field(default_factory=list)
    files_checked: int = 0
    actions: int = 0
    stopped: str | None = None  # the budget ran out: the next pass resumes

    @property
    def changes(self) -> int:
        """How many things this pass changed (0: it was a no-op)."""
        lists = (
            self.commits_completed,
            self.compactions_completed,
            self.compactions_committed,
            self.failures_recorded,
            self.orphans_deleted,
            self.staging_deleted,
            self.stuck_runs_failed,
            self.raw_versions_deleted,
            self.quarantine_deleted,
            self.expiries_cleared,
        )
        return 0 if self.dry_run else sum(len(x) for x in lists)


def metric_counts(report: CleanupReport) -> dict[str, int]:
    """The counts the handler emits as metrics (and logs): one per kind of action."""
    return {
        "CommitsCompleted": len(report.commits_completed),
        "CompactionsCompleted": len(report.compactions_completed),
        "CompactionsCommitted": len(report.compactions_committed),
        "CompactionsAbandoned": len(report.compactions_abandoned),
        "FilesCompacted": report.files_compacted,
        "SilentFailuresRecorded": len(report.failures_recorded),
        "OrphansDeleted": len(report.orphans_deleted),
        "UnownedFiles": len(report.unowned_files),
        "StagedFilesDeleted": len(report.staging_deleted),
        "StuckRunsFailed": len(report.stuck_runs_failed),
        "RawVersionsDeleted": len(report.raw_versions_deleted),
        "RunExpiriesCleared": len(report.expiries_cleared),
        "QuarantineFilesDeleted": len(report.quarantine_deleted),
        "CleanupActions": report.actions,
        "CleanupStoppedEarly": int(report.stopped is not None),
    }


class _Owners:
    """Run records, looked up once per run."""

    def __init__(self, runs: RunTable) -> None:
        self._runs = runs
        self._records: dict[str, dict[str, Any] | None] = {}

    def record(self, run_id: str) -> dict[str, Any] | None:
        if run_id not in self._records:
            self._records[run_id] = self._runs.get_run(run_id)
        return self._records[run_id]

    def status(self, run_id: str) -> str | None:
        record = self.record(run_id)
        return record.get("status") if record else None


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
    compactor: Compactor | None = None,
    compaction: CompactionSettings | None = None,
    budget: Budget | None = None,
    raw_bucket: str = "",
    quarantine_bucket: str = "",
) -> CleanupReport:
    """One pass, as if at `now`: files younger than `grace` are never deleted.

    With `executions`, executions of `state_machine_arn` that ended badly within `lookback` and
    left no terminal run record get one. With `compactor` and `compaction`, partitions of small
    files are compacted. `budget` (shared with the compactor) stops the pass between steps.
    """
    now = now or datetime.now(UTC)
    budget = budget or (compactor.budget if compactor else Budget())
    report = CleanupReport(dry_run=dry_run)
    _complete_interrupted_commits(runs, committer, now, report, dry_run)
    if compactor is not None:
        _complete_interrupted_compactions(compactor, report, dry_run)
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
    if compactor is not None and compaction is not None:
        for contract in contracts:
            _compact(
                contract.dataset,
                store,
                curated_bucket,
                owners,
                compactor=compactor,
                settings=compaction,
                now=now,
                report=report,
                dry_run=dry_run,
            )
    for contract in contracts:
        _orphans(
            contract.dataset, store, runs, curated_bucket, owners, now=now, grace=grace, report=report, budget=budget
        )
    staged = []
    for key, _size, modified in store.list_keys(work_bucket, layout.STAGING):
        run_id = layout.run_of_staged(key)
        if run_id is not None and now - modified >= grace and owners.status(run_id) not in (RUNNING, COMMITTING):
            staged.append(key)
    _delete(store, work_bucket, staged, report.staging_deleted, dry_run=dry_run, budget=budget)
    _fail_stuck_runs(runs, now, stuck_after, report, dry_run)
    for contract in contracts:
        _retention(contract, store, runs, raw_bucket, quarantine_bucket, now=now, report=report, budget=budget)
    report.actions, report.stopped = budget.actions, budget.stopped
    return report


def plan_compactions(
    dataset: str,
    store: ObjectStore,
    curated_bucket: str,
    owners: _Owners,
    *,
    settings: CompactionSettings,
    now: datetime,
) -> list[Bin]:
    """The bins to compact in `dataset`: per partition, small files of settled, committed, live runs."""
    by_partition: dict[str, list[SmallFile]] = {}
    for key, size, modified in store.list_keys(curated_bucket, f"{dataset}/"):
        run_id = layout.run_of_output(key)
        if run_id is None or is_compaction(run_id) or now - modified < settings.min_age:
            continue
        record = owners.record(run_id)
        if record is None or record.get("status") not in (COMMITTED, SUCCEEDED):
            continue
        partition = s3_uri(curated_bucket, key.rsplit("/", 1)[0] + "/")
        schema = repr(record.get("schema") or "")
        by_partition.setdefault(partition, []).append(SmallFile(s3_uri(curated_bucket, key), size, run_id, schema))
    bins: list[Bin] = []
    for partition, files in sorted(by_partition.items()):
        bins += plan_partition(partition, files, target_bytes=settings.target_bytes, min_files=settings.min_files)
    return bins


def _compact(
    dataset: str,
    store: ObjectStore,
    curated_bucket: str,
    owners: _Owners,
    *,
    compactor: Compactor,
    settings: CompactionSettings,
    now: datetime,
    report: CleanupReport,
    dry_run: bool,
) -> None:
    for planned in plan_compactions(dataset, store, curated_bucket, owners, settings=settings, now=now):
        report.compactions_planned.append(planned.to_json())
        if dry_run:
            continue
        outcome = compactor.compact(planned, dataset)
        if outcome.status == COMMITTED:
            report.compactions_committed.append(outcome.compaction_id)
            report.files_compacted += outcome.files_in
        elif outcome.status == "ABANDONED":
            report.compactions_abandoned.append(outcome.compaction_id)
        else:
            return  # the budget ran out


def _complete_interrupted_compactions(compactor: Compactor, report: CleanupReport, dry_run: bool) -> None:
    """Roll forward every compaction whose holder stopped (its lease ended or expired)."""
    for cid in compactor.pending():
        if dry_run:
            report.compactions_completed.append(cid)
            continue
        try:
            outcome = compactor.complete(cid)
        except CommitBusyError:
            continue  # its holder is alive
        if outcome is not None and outcome.status == COMMITTED:
            report.compactions_completed.append(cid)
            report.files_compacted += outcome.files_in


def _retention(
    contract: Contract,
    store: ObjectStore,
    runs: RunTable,
    raw_bucket: str,
    quarantine_bucket: str,
    *,
    now: datetime,
    report: CleanupReport,
    budget: Budget,
) -> None:
    """The contract's ``retention``: old committed raw versions, old quarantine files."""
    dry_run = report.dry_run
    if raw_bucket and contract.retention.raw_days:
        doomed_versions = _expired_raw_versions(contract, store, runs, raw_bucket, now)
        if doomed_versions and (dry_run or budget.allows(f"deleting {len(doomed_versions)} raw versions")):
            if not dry_run:
                store.delete_versions(raw_bucket, doomed_versions)
                budget.spend()
            report.raw_versions_deleted += [f"s3://{raw_bucket}/{k}?versionId={v}" for k, v in doomed_versions]
    if quarantine_bucket and contract.retention.quarantine_days:
        keep = timedelta(days=contract.retention.quarantine_days)
        old = [
            k for k, _, modified in store.list_keys(quarantine_bucket, f"{contract.dataset}/") if now - modified >= keep
        ]
        _delete(store, quarantine_bucket, old, report.quarantine_deleted, dry_run=dry_run, budget=budget)


def _orphans(
    dataset: str,
    store: ObjectStore,
    runs: RunTable,
    curated_bucket: str,
    owners: _Owners,
    *,
    now: datetime,
    grace: timedelta,
    report: CleanupReport,
    budget: Budget,
) -> None:
    """Delete the dataset's curated files of FAILED or SUPERSEDED runs; report those no record owns."""
    doomed = []
    for key, _size, modified in store.list_keys(curated_bucket, f"{dataset}/"):
        report.files_checked += 1
        run_id = layout.run_of_output(key)
        if run_id is None or now - modified < grace:
            continue
        status = owners.status(run_id)
        if status is None:
            report.unowned_files.append(s3_uri(curated_bucket, key))
        elif status in (FAILED, SUPERSEDED):
            doomed.append(key)
        else:
            _keep_live_record(runs, owners, run_id, report)
    _delete(store, curated_bucket, doomed, report.orphans_deleted, dry_run=report.dry_run, budget=budget)


def _keep_live_record(runs: RunTable, owners: _Owners, run_id: str, report: CleanupReport) -> None:
    """A record that owns visible files must not expire (records written before that rule carry a TTL)."""
    record = owners.record(run_id)
    if record is None or record.get("expires_at") is None or run_id in report.expiries_cleared:
        return
    report.expiries_cleared.append(run_id)
    if not report.dry_run:
        runs.clear_expiry(run_id, LIVE)


def _expired_raw_versions(
    contract: Contract, store: ObjectStore, runs: RunTable, raw_bucket: str, now: datetime
) -> list[tuple[str, str]]:
    """Raw versions replaced more than ``retention.raw_days`` ago whose run committed (never the current one).

    A version is replaced when its successor was written (S3's noncurrent time). One that never
    committed (failed, or superseded before its commit) stays: `sluice rerun` may need it. A
    version whose run record is gone (expired) cannot be proved committed, so it stays too.
    """
    keep = timedelta(days=contract.retention.raw_days or 0)
    prefix = contract.match.prefix or ""
    successor_at: dict[str, datetime] = {}
    doomed = []
    for key, version, latest, modified in store.list_versions(raw_bucket, prefix):
        replaced_at = successor_at.get(key)
        successor_at[key] = modified
        if latest or replaced_at is None or now - replaced_at < keep or not contract.match.matches(key):
            continue
        records = runs.runs_by_source(f"s3://{raw_bucket}/{key}")
        of_version = [r for r in records if (r.get("source") or {}).get("version_id") == version]
        if any(r.get("commit_seq") is not None for r in of_version):
            doomed.append((key, version))
    return doomed


def _delete(
    store: ObjectStore, bucket: str, keys: list[str], done: list[str], *, dry_run: bool, budget: Budget
) -> None:
    if not keys:
        return
    if not dry_run:
        if not budget.allows(f"deleting {len(keys)} files of s3://{bucket}"):
            return
        store.delete_keys(bucket, keys)
        budget.spend()
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
