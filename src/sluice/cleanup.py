"""Housekeeping run by the nightly schedule: orphaned outputs and stuck runs.

Retention of raw versions and quarantine is enforced by S3 lifecycle rules and of run records
by DynamoDB TTL (see template.yaml); this removes what those cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sluice.contracts import Contract
from sluice.ports import ObjectStore, RunTable
from sluice.runs import FAILED, RUNNING, SUCCEEDED

_OUTPUT = re.compile(r"(?P<run>[A-Za-z0-9_-]+)-\d+\.parquet$")


@dataclass
class CleanupReport:
    """What one cleanup pass did."""

    orphans_deleted: list[str] = field(default_factory=list)
    stuck_runs_failed: list[str] = field(default_factory=list)
    files_checked: int = 0


def run_of_output(key: str) -> str | None:
    """The run id encoded in a curated file name, or None for foreign files."""
    m = _OUTPUT.search(key.rsplit("/", 1)[-1])
    return m.group("run") if m else None


def clean(
    contracts: Sequence[Contract],
    store: ObjectStore,
    runs: RunTable,
    curated_bucket: str,
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(hours=6),
    stuck_after: timedelta = timedelta(hours=2),
    dry_run: bool = False,
) -> CleanupReport:
    """Delete curated files no succeeded run owns (older than `grace`); fail runs stuck RUNNING."""
    now = now or datetime.now(UTC)
    report = CleanupReport()
    owners: dict[str, str | None] = {}
    for contract in contracts:
        doomed = []
        for key, _size, modified in store.list_keys(curated_bucket, f"{contract.dataset}/"):
            report.files_checked += 1
            run_id = run_of_output(key)
            if run_id is None or now - modified < grace:
                continue
            if run_id not in owners:
                record = runs.get_run(run_id)
                owners[run_id] = record.get("status") if record else None
            if owners[run_id] != SUCCEEDED:
                doomed.append(key)
        if doomed and not dry_run:
            store.delete_keys(curated_bucket, doomed)
        report.orphans_deleted += [f"s3://{curated_bucket}/{k}" for k in doomed]
    for run_id in runs.run_ids_with_status(RUNNING):
        record = runs.get_run(run_id)
        if record is None or record.get("status") != RUNNING:
            continue
        started = datetime.fromisoformat(str(record.get("started_at")))
        if now - started > stuck_after:
            report.stuck_runs_failed.append(record["run_id"])
            if not dry_run:
                runs.put_run(
                    {
                        **record,
                        "status": FAILED,
                        "error_type": "RunTimedOut",
                        "reason": f"still RUNNING {now - started} after it started; marked failed by cleanup",
                        "updated_at": now.isoformat(timespec="milliseconds"),
                    }
                )
    return report
