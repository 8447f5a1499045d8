"""An in-memory world to drive the commit protocol: raw uploads, Validate, Transform, commit, readers."""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.pipeline.commit import CommitOutcome, Committer
from sluice.pipeline.landing import land_run
from sluice.pipeline.payloads import SourceObject, TransformResult, ValidateResult
from sluice.pipeline.runid import run_id_for
from sluice.pipeline.runs import started_record
from tests import fanout_data
from tests.fakes import MemoryRunTable, MemoryStore

KEY = "fanout_orders/x.csv"
BUCKETS = {"curated_bucket": "curated", "quarantine_bucket": "quarantine", "work_bucket": "work"}
LEASE = timedelta(minutes=6)


class LockedRunTable(MemoryRunTable):
    """The in-memory runs table with DynamoDB's per-call atomicity (for tests with threads)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def put_run(self, item: Any) -> None:
        with self._lock:
            super().put_run(item)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = super().get_run(run_id)
            return None if found is None else dict(found)

    def write_commit(self, head: Any, expected_rev: int, runs: Any) -> None:
        with self._lock:
            super().write_commit(head, expected_rev, runs)

    def write_all(self, puts: Any) -> None:
        with self._lock:
            super().write_all(puts)

    def get_many(self, run_ids: Any) -> dict[str, dict[str, Any]]:
        with self._lock:
            return super().get_many(run_ids)

    def clear_expiry(self, run_id: str, statuses: Any) -> bool:
        with self._lock:
            return super().clear_expiry(run_id, statuses)

    def transition(self, run_id: str, expected: Any, changes: Any) -> bool:
        with self._lock:
            return super().transition(run_id, expected, changes)


class World:
    """Raw bucket, work/curated/quarantine buckets and the runs table, in memory, with a clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = MemoryStore()
        self.runs = LockedRunTable()
        self.tmp = tmp_path
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        self.store.clock = lambda: self.now
        self.contract = fanout_data.contract()

    def upload(self, data: bytes, key: str = KEY) -> SourceObject:
        """A new version of `key` in the raw bucket, as its event describes it."""
        version = self.store.put("raw", key, data)
        etag = hashlib.md5(data).hexdigest()
        return SourceObject(bucket="raw", key=key, version_id=version, etag=etag, size=len(data))

    def validate(self, source: SourceObject, *, attempt: int = 1) -> ValidateResult:
        """What Validate returns and records (RUNNING)."""
        result = ValidateResult(
            run_id=run_id_for(self.contract.dataset, source, attempt=attempt),
            dataset=self.contract.dataset,
            contract_version=self.contract.version,
            source=source,
            mode="single",
            started_at=self.now.isoformat(timespec="milliseconds"),
        )
        self.runs.put_run(started_record(result, 90))
        return result

    def transform(self, validated: ValidateResult) -> TransformResult:
        return land_run(validated, self.contract, self.store, staging_root=self.tmp / "staging", **BUCKETS)

    def committer(self, store: Any = None) -> Committer:
        return Committer(self.runs, store or self.store, 90, LEASE, lambda: self.now)

    def commit(self, result: TransformResult, store: Any = None) -> CommitOutcome:
        return self.committer(store).commit(result)

    def land(self, data: bytes, key: str = KEY) -> TransformResult:
        """Upload, validate and transform (everything before the commit)."""
        return self.transform(self.validate(self.upload(data, key)))

    def curated_keys(self) -> list[str]:
        return sorted(k for b, k in self.store.objects if b == "curated")

    def staged_keys(self, run_id: str | None = None) -> list[str]:
        prefix = f"staging/{run_id}/" if run_id else "staging/"
        return sorted(k for b, k in self.store.objects if b == "work" and k.startswith(prefix))

    def visible_ids(self) -> list[str]:
        """What a reader listing the curated bucket sees: every order id, duplicates kept."""
        tables = [pq.read_table(io.BytesIO(self.store.objects[("curated", k)])) for k in self.curated_keys()]
        if not tables:
            return []
        return sorted(pa.concat_tables(tables).column("order_id").to_pylist())

    def record(self, run_id: str) -> dict[str, Any]:
        found = self.runs.get_run(run_id)
        assert found is not None, run_id
        return found


def ids_of(data: bytes, contract: Any = None) -> list[str]:
    """Order ids of the rows a file loads (what the engine keeps of it), read through a fresh world."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        world.commit(world.land(data))
        return world.visible_ids()
