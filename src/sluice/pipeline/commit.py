"""The commit: the one step that makes a run's output visible and retires the key's previous version.

Readers (Athena, ``sluice query``, any engine listing the curated bucket) see plain Hive-partitioned
Parquet, so visibility is expressed in object locations: a run stages its files in the work bucket,
where no reader looks, and the commit copies them to their curated keys. What makes the commit
safe is a *head* per raw key, an item of the runs table written with conditional, transactional
writes:

1. **Decide.** One transaction moves the head to this run (``live_run_id``, a new ``seq``) and the
   run to COMMITTING, if the run's object version is not older than the live one (S3's version
   order, or the event sequencer) - else the run becomes SUPERSEDED and nothing of it is ever
   published. The head then holds a *lease* (``pending_run_id``, ``lease_until``) that keeps every
   other commit of the key waiting.
2. **Roll forward.** Copy the staged files to their curated keys, then delete the previous
   version's files. Every action is idempotent, so a retry, or whoever finds the lease expired
   (the next run of the key, or the scheduled cleanup), completes it the same way.
3. **Release.** One transaction clears the lease, marks the run COMMITTED and the previous one
   SUPERSEDED. The staging is deleted.

Runs of one key therefore commit one at a time and in version order; a late or repeated event
for an old version can never replace a newer one. See docs/commit-protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sluice.errors import CommitBusyError, CommitConflictError, RunNotCommittableError, SluiceError
from sluice.pipeline import layout
from sluice.pipeline.manifest import RunManifest
from sluice.pipeline.payloads import CommitInfo, TransformResult
from sluice.pipeline.runs import (
    COMMITTED,
    COMMITTING,
    FAILED,
    LIVE,
    RUNNING,
    SUCCEEDED,
    SUPERSEDED,
    expiry,
    finished,
    head_id,
    source_uri,
    summary_fields,
)
from sluice.ports import ObjectStore, RunTable
from sluice.uris import split_uri

COPY_THREADS = 8
CONFLICT_TRIES = 5


@dataclass(frozen=True)
class Head:
    """The commit state of one raw key (an item of the runs table with id ``key#<s3 uri>``)."""

    source_uri: str
    rev: int = 0  # bumped by every write: the condition of the next one
    seq: int = 0  # commits so far: the publication order of the live run
    live_run_id: str | None = None
    live_source: dict[str, Any] | None = None
    pending_run_id: str | None = None  # holds the lease: its roll-forward is not finished
    retiring_run_id: str | None = None  # the run the pending commit retires
    lease_until: str | None = None
    compacted: tuple[str, ...] = ()  # compactions holding rows of the live run (sluice.pipeline.compaction)
    retiring_compacted: tuple[str, ...] = ()  # those holding the retiring run's rows: the commit excludes them

    def to_item(self) -> dict[str, Any]:
        """The runs-table item (no ``status`` or ``started_at``: it stays out of the run indexes)."""
        return {
            "run_id": head_id(self.source_uri),
            "kind": "head",
            "key_uri": self.source_uri,
            "rev": self.rev,
            "seq": self.seq,
            "live_run_id": self.live_run_id,
            "live_source": self.live_source,
            "pending_run_id": self.pending_run_id,
            "retiring_run_id": self.retiring_run_id,
            "lease_until": self.lease_until,
            "compacted": list(self.compacted) or None,
            "retiring_compacted": list(self.retiring_compacted) or None,
        }

    @classmethod
    def from_item(cls, source_uri: str, item: Mapping[str, Any] | None) -> Head:
        """The head stored as `item` (None: the key never committed)."""
        if not item:
            return cls(source_uri)
        return cls(
            source_uri,
            int(item.get("rev") or 0),
            int(item.get("seq") or 0),
            item.get("live_run_id"),
            item.get("live_source"),
            item.get("pending_run_id"),
            item.get("retiring_run_id"),
            item.get("lease_until"),
            tuple(item.get("compacted") or ()),
            tuple(item.get("retiring_compacted") or ()),
        )


@dataclass(frozen=True)
class CommitOutcome:
    """What the commit did with one run (Summarize passes it on to Publish)."""

    status: str  # COMMITTED, or SUPERSEDED when a newer version of the key is already live
    live_run_id: str
    seq: int | None = None  # publication order of a committed run
    retired_run_id: str | None = None  # the previous version's run, retired by this commit
    published: int = 0  # files made visible
    retired: int = 0  # files of the previous version deleted

    def to_json(self) -> CommitInfo:
        """JSON-ready dict (the ``commit`` field of the state payload)."""
        return CommitInfo(
            status=self.status,
            live_run_id=self.live_run_id,
            seq=self.seq,
            retired_run_id=self.retired_run_id,
            published=self.published,
            retired=self.retired,
        )

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> CommitOutcome:
        """The outcome a finished commit left in the run's record (a retry returns it again)."""
        if record.get("status") == SUPERSEDED and record.get("commit_seq") is None:
            return cls(SUPERSEDED, str(record.get("superseded_by")))
        seq = record.get("commit_seq")
        return cls(
            COMMITTED,
            str(record["run_id"]),
            None if seq is None else int(seq),
            record.get("retiring"),
            int(record.get("files_published") or 0),
            int(record.get("files_retired") or 0),
        )


def publication_order(seq: int) -> str:
    """The aggregates' ``order`` of a run committed as number `seq` of its key (text order = commit order).

    The ``c`` sorts after the ISO timestamps earlier versions used, so it also wins over them.
    """
    return f"c{seq:012d}"


def _version(source: Mapping[str, Any]) -> str | None:
    version = source.get("version_id")
    return str(version) if version and version != "null" else None


def is_not_older(mine: Mapping[str, Any], theirs: Mapping[str, Any], versions: Callable[[], Sequence[str]]) -> bool:
    """Whether object version `mine` is the same as, or newer than, `theirs` (two versions of one key).

    S3's own order decides: the key's version list (newest first) when both have version ids
    (a version no longer listed was deleted, so it is older than any listed), else S3's event
    sequencers (hex, compared left-padded). When nothing orders them, the later commit wins.
    """
    a, b = _version(mine), _version(theirs)
    if a is not None and a == b:
        return True
    if a is not None and b is not None:
        order = list(versions())
        ia = order.index(a) if a in order else None
        ib = order.index(b) if b in order else None
        if ia is not None and ib is not None:
            return ia <= ib
        if (ia is None) != (ib is None):
            return ia is not None
    sa, sb = str(mine.get("sequencer") or ""), str(theirs.get("sequencer") or "")
    if sa and sb and sa != sb:
        width = max(len(sa), len(sb))
        return sa.rjust(width, "0").upper() > sb.rjust(width, "0").upper()
    return True


def _outputs_of(record: Mapping[str, Any], store: ObjectStore) -> list[str]:
    """Curated URIs a run owns (from its record, or its manifest when the record lists too many)."""
    uris = record.get("outputs")
    if uris is None and record.get("manifest_uri"):
        uris = [o["uri"] for o in store.get_json(str(record["manifest_uri"])).get("outputs", [])]
    return list(uris or [])


class CompactedRows(Protocol):
    """What the commit needs from compaction (:class:`sluice.pipeline.compaction.Compactor` implements it)."""

    def exclude(self, run_id: str, compactions: Sequence[str]) -> int:
        """Rewrite the compacted files holding rows of `run_id` without them; returns files rewritten.

        Raises CommitBusyError while one of them is being committed by a live holder.
        """
        ...

    def complete(self, compaction_id: str) -> None:
        """Finish compaction `compaction_id` (it holds head leases); CommitBusyError while its holder lives."""
        ...


@dataclass
class Committer:
    """Commits runs of raw keys (Summarize), and completes commits a crash left half-done (cleanup)."""

    runs: RunTable
    store: ObjectStore
    retention_days: int
    lease: timedelta = timedelta(minutes=6)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    compactions: CompactedRows | None = None

    # -------------------------------------------------------------------------------- commit
    def commit(self, result: TransformResult) -> CommitOutcome:
        """Commit the run `result` describes: publish its staged files and retire the previous version.

        Idempotent: a retry after any failure converges on the same outcome.

        Raises
        ------
        CommitBusyError
            Another run of the key holds the commit lease (retried by the state machine).
        CommitConflictError
            The head kept moving under this commit (retried by the state machine).
        RunNotCommittableError
            The run was failed meanwhile (e.g. by cleanup as stuck); nothing is published.

        """
        run_id, uri = result["run_id"], source_uri(result["source"])
        manifest = RunManifest.from_json(self.store.get_json(result["manifest_uri"]))
        for _ in range(CONFLICT_TRIES):
            record = self.runs.get_run(run_id) or {"run_id": run_id, "status": RUNNING}
            status = record.get("status")
            if status in (COMMITTED, SUCCEEDED, SUPERSEDED):
                return CommitOutcome.of_record(record)
            if status == FAILED:
                raise RunNotCommittableError(
                    f"run {run_id} was marked FAILED ({record.get('reason', 'no reason recorded')}) before it "
                    "could commit; nothing of it is visible. Run it again with `sluice rerun`"
                )
            head = Head.from_item(uri, self.runs.get_head(uri))
            if head.pending_run_id == run_id:
                return self._resume(head, manifest)
            if head.pending_run_id is not None:
                if self.clock() < datetime.fromisoformat(str(head.lease_until)):
                    raise CommitBusyError(
                        f"{uri}: run {head.pending_run_id} is committing (lease until {head.lease_until}); "
                        f"run {run_id} commits after it"
                    )
                self.complete(head)
                continue
            summary = summary_fields(result, manifest)
            try:
                if head.live_run_id is None or is_not_older(
                    result["source"], head.live_source or {}, lambda: self._versions(result["source"])
                ):
                    return self._decide_live(head, {**record, **summary}, manifest)
                return self._decide_superseded(head, {**record, **summary}, manifest)
            except CommitConflictError:
                continue
        raise CommitConflictError(f"{uri}: the key's head moved {CONFLICT_TRIES} times during the commit of {run_id}")

    def _versions(self, source: Mapping[str, Any]) -> list[str]:
        return self.store.version_ids(str(source["bucket"]), str(source["key"]))

    def _decide_live(self, head: Head, record: dict[str, Any], manifest: RunManifest) -> CommitOutcome:
        decided = Head(
            head.source_uri,
            rev=head.rev + 1,
            seq=head.seq + 1,
            live_run_id=manifest.run_id,
            live_source=dict(manifest.source),
            pending_run_id=manifest.run_id,
            retiring_run_id=head.live_run_id,
            lease_until=self._lease_end(),
            compacted=(),
            retiring_compacted=head.compacted,
        )
        committing = {
            **record,
            "status": COMMITTING,
            "commit_seq": decided.seq,
            "retiring": head.live_run_id,
            "updated_at": self._now(),
        }
        self.runs.write_commit(decided.to_item(), head.rev, [(committing, (RUNNING,))])
        return self._roll_forward(decided, manifest, committing)

    def _decide_superseded(self, head: Head, record: dict[str, Any], manifest: RunManifest) -> CommitOutcome:
        superseded = finished(record, SUPERSEDED, self.retention_days, superseded_by=head.live_run_id)
        self.runs.write_commit(replace(head, rev=head.rev + 1).to_item(), head.rev, [(superseded, (RUNNING,))])
        self._delete_staging(manifest)
        return CommitOutcome(SUPERSEDED, str(head.live_run_id))

    # -------------------------------------------------------------------------------- roll forward
    def complete(self, head: Head) -> CommitOutcome | None:
        """Finish the commit `head` holds a lease for, whoever started it (the lease must have expired).

        Returns None when there is nothing pending.
        """
        if head.pending_run_id is None:
            return None
        record = self.runs.get_run(head.pending_run_id)
        if record is not None and record.get("kind") == "compaction":
            self._compactions(head.source_uri).complete(head.pending_run_id)
            return None
        if record is None or not record.get("manifest_uri"):
            raise SluiceError(f"{head.source_uri}: pending run {head.pending_run_id} has no record or manifest")
        manifest = RunManifest.from_json(self.store.get_json(str(record["manifest_uri"])))
        return self._resume(head, manifest)

    def _resume(self, head: Head, manifest: RunManifest) -> CommitOutcome:
        """Take the lease again (the earlier holder is gone) and roll the decided commit forward."""
        renewed = replace(head, rev=head.rev + 1, lease_until=self._lease_end())
        self.runs.write_commit(renewed.to_item(), head.rev, [])
        record = self.runs.get_run(manifest.run_id) or {"run_id": manifest.run_id}
        return self._roll_forward(renewed, manifest, record)

    def _roll_forward(self, head: Head, manifest: RunManifest, record: Mapping[str, Any]) -> CommitOutcome:
        mine = {o.uri for o in manifest.outputs}
        with ThreadPoolExecutor(COPY_THREADS) as pool:
            list(pool.map(lambda o: self._publish(o.staged_uri, o.uri), manifest.outputs))
        if head.retiring_run_id and head.retiring_compacted:
            self._compactions(head.source_uri).exclude(head.retiring_run_id, head.retiring_compacted)
        retiring = self.runs.get_run(head.retiring_run_id) if head.retiring_run_id else None
        doomed = [u for u in _outputs_of(retiring, self.store) if u not in mine] if retiring else []
        by_bucket: dict[str, list[str]] = {}
        for uri in doomed:
            bucket, key = split_uri(uri)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            self.store.delete_keys(bucket, keys)
        released = replace(
            head, rev=head.rev + 1, pending_run_id=None, retiring_run_id=None, lease_until=None, retiring_compacted=()
        )
        committed = finished(
            dict(record),
            COMMITTED,
            self.retention_days,
            committed_at=self._now(),
            files_published=len(manifest.outputs),
            files_retired=len(doomed),
        )
        writes: list[tuple[Mapping[str, Any], Sequence[str]]] = [(committed, (COMMITTING,))]
        if retiring is not None:
            retired = {
                **retiring,
                "status": SUPERSEDED,
                "superseded_by": manifest.run_id,
                "updated_at": self._now(),
                "expires_at": expiry(SUPERSEDED, self.retention_days, self.clock()),
            }
            writes.append((retired, (*LIVE, SUPERSEDED)))
        self.runs.write_commit(released.to_item(), head.rev, writes)
        self._delete_staging(manifest)
        return CommitOutcome(
            COMMITTED, manifest.run_id, head.seq, head.retiring_run_id, len(manifest.outputs), len(doomed)
        )

    def _compactions(self, uri: str) -> CompactedRows:
        if self.compactions is None:
            raise SluiceError(f"{uri}: its live rows are compacted, and this committer cannot rewrite compactions")
        return self.compactions

    def _publish(self, staged_uri: str, uri: str) -> None:
        bucket, key = split_uri(staged_uri)
        to_bucket, to_key = split_uri(uri)
        self.store.copy(bucket, key, to_bucket, to_key)

    def _delete_staging(self, manifest: RunManifest) -> None:
        """Remove what the run staged (its files are published now, or never will be)."""
        prefix = layout.staging_prefix(manifest.run_id)
        for bucket in {split_uri(o.staged_uri)[0] for o in manifest.outputs}:
            self.store.delete_keys(bucket, [k for k, _, _ in self.store.list_keys(bucket, prefix)])

    def _lease_end(self) -> str:
        return (self.clock() + self.lease).isoformat(timespec="milliseconds")

    def _now(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")
