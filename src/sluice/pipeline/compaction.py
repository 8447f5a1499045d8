"""Compaction: a partition's many small files rewritten into few, through the commit protocol.

Every run writes one file per partition it touches, so a dataset fed hourly becomes thousands of
tiny files. The scheduled cleanup plans, per partition, *bins* of small files of committed runs
(:func:`plan_partition`), and commits each bin as one **compaction**, a record of the runs table
(``run_id`` ``cmp-<hash>``, ``kind: compaction``) moved through the same states as a run:

1. **Stage.** The bin's files are rewritten into one Parquet file in the work bucket
   (``staging/<compaction id>/<curated key>``), one row group per source run: the file's
   manifest says which row groups each run owns (``owners``), so rows of different runs stay
   identifiable.
2. **Decide.** One transaction writes the record (COMMITTING, with a lease) and takes the lease of
   every member run's key head (``pending_run_id``), adding the compaction to the head's
   ``compacted`` list - only if no head moved since the plan (a commit of one of those keys
   meanwhile aborts the compaction, nothing is published).
3. **Swap.** The compacted file is copied to its curated key; one conditional write marks the
   compaction ``published`` (from then on readers of the committed state, :mod:`sluice.pipeline.visibility`,
   see it instead of the files it replaces); the replaced files are deleted in one batch request.
4. **Release.** One transaction marks the compaction COMMITTED and releases the heads (for a
   rewrite: and marks the compaction it rewrote SUPERSEDED).

A new version of a member key supersedes exactly the old run's rows: its commit finds the
compactions in the head's ``compacted`` list and *excludes* the retired run from each
(:meth:`Compactor.exclude`): the compacted file is rewritten without the run's row groups, as a
new compaction that supersedes the old one (the same four steps, the old compaction's record
standing for the lease). Every step is idempotent; whoever finds a lease expired (the next
commit of a member key, or the next cleanup) rolls the compaction forward. See
docs/commit-protocol.md ("Compaction").
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.errors import CommitBusyError, CommitConflictError
from sluice.pipeline import layout
from sluice.pipeline.commit import Head
from sluice.pipeline.runs import COMMITTED, COMMITTING, SUCCEEDED, SUPERSEDED, expiry
from sluice.ports import Guard, ObjectStore, RunTable
from sluice.uris import s3_uri, split_uri

KIND = "compaction"
PREFIX = "cmp-"
MAX_MEMBERS = 90  # runs per compaction: their heads and the record fit one DynamoDB transaction (100 items)
STEPS = ("stage", "decide", "swap", "release")  # swap: copy the output, mark it published, delete what it replaces


def shows(record: Mapping[str, Any] | None) -> bool:
    """Whether readers of the committed state see a compaction's output (and not what it replaces).

    From the moment its output was copied and marked ``published`` (still COMMITTING) until it is
    superseded.
    """
    if record is None or record.get("kind") != KIND:
        return False
    return record.get("status") == COMMITTED or (record.get("status") == COMMITTING and bool(record.get("published")))


def is_compaction(owner_id: str) -> bool:
    """Whether a curated file's owner id (its name's prefix) is a compaction."""
    return owner_id.startswith(PREFIX)


# ------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class SmallFile:
    """A curated file a compaction may take: its URI, size and the committed run that owns it."""

    uri: str
    size: int
    run_id: str
    schema: str = ""  # the run's schema, as text: only files of one schema are compacted together


@dataclass(frozen=True)
class Bin:
    """Files of one partition to be rewritten as one file (a compaction)."""

    partition: str  # curated prefix ``s3://bucket/<dataset>/<k=v/...>/``
    files: tuple[SmallFile, ...]

    @property
    def bytes(self) -> int:
        """Bytes in (the output is about as large)."""
        return sum(f.size for f in self.files)

    @property
    def members(self) -> list[str]:
        """Runs whose rows the bin holds, in file order."""
        return list(dict.fromkeys(f.run_id for f in self.files))

    @property
    def compaction_id(self) -> str:
        """Deterministic id: the same bin planned again (after a crash) is the same compaction."""
        digest = hashlib.sha256("\n".join([self.partition, *sorted(f.uri for f in self.files)]).encode())
        return f"{PREFIX}{digest.hexdigest()[:32]}"

    def to_json(self) -> dict[str, Any]:
        """The plan's view of the bin (dry run)."""
        return {
            "compaction_id": self.compaction_id,
            "partition": self.partition,
            "files": len(self.files),
            "runs": len(self.members),
            "bytes": self.bytes,
            "replaces": [f.uri for f in self.files],
        }


def plan_partition(
    partition: str, files: Iterable[SmallFile], *, target_bytes: int, min_files: int, max_members: int = MAX_MEMBERS
) -> list[Bin]:
    """Bins of `files` (one partition's) to compact, each near `target_bytes`; none below `min_files` small files.

    A file is small below three quarters of the target. Files are taken in URI order, a run's
    files in one partition always in the same bin, one schema per bin; a bin closes before it
    would pass the target or `max_members` runs. Bins of one file are dropped (nothing to gain).
    """
    small = sorted((f for f in files if f.size < target_bytes * 3 // 4), key=lambda f: (f.schema, f.uri))
    if len(small) < max(min_files, 2):
        return []
    groups: dict[tuple[str, str], list[SmallFile]] = {}
    for f in small:
        groups.setdefault((f.schema, f.run_id), []).append(f)
    bins: list[Bin] = []
    current: list[SmallFile] = []
    schema = None
    for (group_schema, _run), group in groups.items():
        size = sum(f.size for f in group)
        runs = len({f.run_id for f in current})
        full = current and (
            sum(f.size for f in current) + size > target_bytes or runs >= max_members or group_schema != schema
        )
        if full:
            bins.append(Bin(partition, tuple(current)))
            current = []
        current += group
        schema = group_schema
    if current:
        bins.append(Bin(partition, tuple(current)))
    return [b for b in bins if len(b.files) > 1]


# ------------------------------------------------------------------------------------------ budget
@dataclass
class Budget:
    """How much one cleanup invocation may still do: time (the Lambda context's) and, optionally, actions.

    Each compaction step and each batch of deletions is one action. When the budget is spent the
    pass stops between steps and the next one resumes from what is stored.
    """

    remaining_ms: Callable[[], int] = lambda: 1 << 40
    reserve_ms: int = 120_000  # kept for the step in progress (a stage of a 128 MB file, a batch delete)
    max_actions: int | None = None
    actions: int = 0
    stopped: str | None = None  # why the pass stopped early (None: it did everything)

    def allows(self, what: str) -> bool:
        """Whether one more action fits; records why not."""
        if self.stopped is not None:
            return False
        if self.max_actions is not None and self.actions >= self.max_actions:
            self.stopped = f"max_actions {self.max_actions} reached before {what}"
        elif self.remaining_ms() < self.reserve_ms:
            self.stopped = f"less than {self.reserve_ms} ms left before {what}"
        return self.stopped is None

    def spend(self) -> None:
        """Count one action."""
        self.actions += 1


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Compaction:
    """A compaction record: its files, the files it replaces, its member runs."""

    compaction_id: str
    dataset: str
    status: str
    rev: int
    outputs: tuple[str, ...]  # curated URIs of the compacted file (none: all its rows were excluded)
    replaces: tuple[str, ...]  # curated URIs it replaces (small files, or the superseded compaction's)
    members: tuple[str, ...]
    manifest_uri: str
    lease_until: str | None = None
    heads: tuple[str, ...] = ()  # raw keys whose head lease it holds until released (first compactions)
    supersedes: str | None = None  # the compaction a rewrite replaces
    rewriting: str | None = None  # on a committed compaction: the rewrite that will supersede it
    superseded_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_item(self) -> dict[str, Any]:
        """The runs-table item."""
        return {
            **self.extra,
            "run_id": self.compaction_id,
            "kind": KIND,
            "dataset": self.dataset,
            "status": self.status,
            "rev": self.rev,
            "outputs": list(self.outputs),
            "replaces": list(self.replaces),
            "members": list(self.members),
            "manifest_uri": self.manifest_uri,
            "lease_until": self.lease_until,
            "heads": list(self.heads) or None,
            "supersedes": self.supersedes,
            "rewriting": self.rewriting,
            "superseded_by": self.superseded_by,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Compaction:
        """Inverse of :meth:`to_item`."""
        known = {
            "run_id", "kind", "dataset", "status", "rev", "outputs", "replaces", "members", "manifest_uri",
            "lease_until", "heads", "supersedes", "rewriting", "superseded_by",
        }  # fmt: skip
        return cls(
            str(item["run_id"]),
            str(item.get("dataset") or ""),
            str(item["status"]),
            int(item.get("rev") or 0),
            tuple(item.get("outputs") or ()),
            tuple(item.get("replaces") or ()),
            tuple(item.get("members") or ()),
            str(item.get("manifest_uri") or ""),
            item.get("lease_until"),
            tuple(item.get("heads") or ()),
            item.get("supersedes"),
            item.get("rewriting"),
            item.get("superseded_by"),
            {k: v for k, v in item.items() if k not in known},
        )


@dataclass
class Outcome:
    """What one compaction call did."""

    compaction_id: str
    status: str  # COMMITTED, STOPPED (budget; resumable), ABANDONED (a head moved: nothing published)
    step: str = ""  # the last step done
    files_in: int = 0
    files_out: int = 0
    rows: int = 0


# ------------------------------------------------------------------------------------------ compactor
@dataclass
class Compactor:
    """Runs compactions and rewrites them when a member run is superseded (the commit's :class:`CompactedRows`)."""

    runs: RunTable
    store: ObjectStore
    work_bucket: str
    retention_days: int
    lease: timedelta = timedelta(minutes=6)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    budget: Budget = field(default_factory=Budget)
    scratch: Path | None = None

    # ---------------------------------------------------------------- first compaction of small files
    def compact(self, planned: Bin, dataset: str) -> Outcome:
        """Commit `planned` as one compaction (stage, decide, swap, release), as far as the budget allows."""
        cid = planned.compaction_id
        outcome = Outcome(cid, COMMITTING, files_in=len(planned.files))
        heads = self._member_heads(planned.members)
        if heads is None:
            outcome.status = "ABANDONED"
            return outcome
        curated_bucket, partition_key = split_uri(planned.partition)
        out_uri = s3_uri(curated_bucket, f"{partition_key}{cid}-0.parquet")
        manifest_key = layout.manifest_key(cid)
        staged = self._staged_before(cid)  # an earlier pass staged this very bin, then stopped: resume
        if staged is None:
            if not self.budget.allows("stage"):
                outcome.status = "STOPPED"
                return outcome
            groups = [(run, [f.uri for f in planned.files if f.run_id == run]) for run in planned.members]
            staged = self._stage(cid, out_uri, groups)
            self.store.put_json(self.work_bucket, manifest_key, {**staged, "kind": KIND})
            self.budget.spend()
        outcome.step, outcome.rows = "stage", int(staged["rows"])
        record = Compaction(
            cid,
            dataset,
            COMMITTING,
            1,
            (out_uri,) if staged["rows"] else (),
            tuple(f.uri for f in planned.files),
            tuple(planned.members),
            s3_uri(self.work_bucket, manifest_key),
            self._lease_end(),
            tuple(h.source_uri for h in heads),
            extra=self._stamps(started=True)
            | {
                "rows_out": int(staged["rows"]),
                "files_in": len(planned.files),
                "output_files": 1 if staged["rows"] else 0,
            },
        )
        if not self.budget.allows("decide"):
            outcome.status = "STOPPED"  # staged only: the next pass plans the same bin, the same id
            return outcome
        locked = [
            replace(h, rev=h.rev + 1, pending_run_id=cid, lease_until=record.lease_until, compacted=(*h.compacted, cid))
            for h in heads
        ]
        try:
            guarded = [(n.to_item(), Guard(rev=o.rev)) for n, o in zip(locked, heads, strict=True)]
            self.runs.write_all([(record.to_item(), Guard(rev=0)), *guarded])
        except CommitConflictError:
            self._delete_staging(cid)
            self.store.delete_keys(self.work_bucket, [manifest_key])
            outcome.status = "ABANDONED"
            return outcome
        self.budget.spend()
        outcome.step = "decide"
        return self._roll_forward(record, outcome)

    def _staged_before(self, cid: str) -> dict[str, Any] | None:
        """The manifest of compaction `cid` if an earlier pass staged it completely (the manifest is written last)."""
        key = layout.manifest_key(cid)
        if not any(k == key for k, _, _ in self.store.list_keys(self.work_bucket, key)):
            return None
        manifest: dict[str, Any] = self.store.get_json(s3_uri(self.work_bucket, key))
        staged = {split_uri(o["staged_uri"])[1] for o in manifest.get("outputs", [])}
        present = {k for k, _, _ in self.store.list_keys(self.work_bucket, layout.staging_prefix(cid))}
        return manifest if staged <= present else None

    def _member_heads(self, members: Sequence[str]) -> list[Head] | None:
        """The heads of the member runs' keys, if every run is still its key's live, settled version."""
        heads = []
        for run_id in members:
            record = self.runs.get_run(run_id)
            if record is None or record.get("status") not in (COMMITTED, SUCCEEDED) or not record.get("source_uri"):
                return None
            uri = str(record["source_uri"])
            head = Head.from_item(uri, self.runs.get_head(uri))
            if head.live_run_id != run_id or head.pending_run_id is not None:
                return None
            heads.append(head)
        return heads

    # ---------------------------------------------------------------- roll forward (both kinds)
    def _roll_forward(self, record: Compaction, outcome: Outcome) -> Outcome:
        manifest = self.store.get_json(record.manifest_uri)
        if self._swapped(record):
            return self._finish(record, outcome)
        if not self.budget.allows("swap"):
            self._yield_lease(record)
            outcome.status = "STOPPED"
            return outcome
        for out in manifest.get("outputs", []):
            bucket, key = split_uri(out["staged_uri"])
            to_bucket, to_key = split_uri(out["uri"])
            self.store.copy(bucket, key, to_bucket, to_key)
        self._mark_published(record)  # the commit point for readers of the committed state
        by_bucket: dict[str, list[str]] = {}
        for uri in record.replaces:
            bucket, key = split_uri(uri)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            self.store.delete_keys(bucket, keys)
        self.budget.spend()
        outcome.step, outcome.files_out = "swap", len(record.outputs)
        return self._finish(record, outcome)

    def _swapped(self, record: Compaction) -> bool:
        """Whether an earlier holder finished the swap (published, and nothing it replaces is left)."""
        current = self._get(record.compaction_id)
        if current is None or not current.extra.get("published"):
            return False
        left = set(record.replaces)
        for prefix in {u.rsplit("/", 1)[0] + "/" for u in left}:
            bucket, key = split_uri(prefix)
            if any(s3_uri(bucket, k) in left for k, _, _ in self.store.list_keys(bucket, key)):
                return False
        return True

    def _finish(self, record: Compaction, outcome: Outcome) -> Outcome:
        if not self.budget.allows("release"):
            self._yield_lease(record)
            outcome.status = "STOPPED"
            return outcome
        self._release(record)
        self.budget.spend()
        self._delete_staging(record.compaction_id)
        outcome.step, outcome.status = "release", COMMITTED
        return outcome

    def _release(self, record: Compaction) -> None:
        current = self._get(record.compaction_id)
        if current is None or current.status != COMMITTING:
            return
        writes: list[tuple[Mapping[str, Any], Guard]] = [
            (replace(current, status=COMMITTED, rev=current.rev + 1, lease_until=None).to_item()
             | self._stamps(finished=COMMITTED), Guard(rev=current.rev)),
        ]  # fmt: skip
        for uri in current.heads:
            head = Head.from_item(uri, self.runs.get_head(uri))
            if head.pending_run_id == current.compaction_id:
                released = replace(head, rev=head.rev + 1, pending_run_id=None, lease_until=None)
                writes.append((released.to_item(), Guard(rev=head.rev)))
        if current.supersedes:
            old = self._get(current.supersedes)
            if old is not None and old.status != SUPERSEDED:
                retired = replace(
                    old, status=SUPERSEDED, rev=old.rev + 1, rewriting=None, superseded_by=current.compaction_id
                )
                writes.append((retired.to_item() | self._stamps(finished=SUPERSEDED), Guard(rev=old.rev)))
        self.runs.write_all(writes)

    def _mark_published(self, record: Compaction) -> None:
        """One conditional write: from here ``visibility`` shows the output instead of what it replaces."""
        current = self._get(record.compaction_id)
        if current is None or current.status != COMMITTING or current.extra.get("published"):
            return
        marked = replace(current, rev=current.rev + 1, extra={**current.extra, "published": True})
        self.runs.write_all([(marked.to_item(), Guard(rev=current.rev))])

    def _yield_lease(self, record: Compaction) -> None:
        """Stopping for the budget: the lease ends now, so the next pass (or a member's commit) resumes at once."""
        current = self._get(record.compaction_id)
        if current is not None and current.status == COMMITTING:
            ended = replace(current, rev=current.rev + 1, lease_until=self._now())
            with contextlib.suppress(CommitConflictError):  # someone took it over meanwhile: theirs now
                self.runs.write_all([(ended.to_item(), Guard(rev=current.rev))])

    def complete(self, compaction_id: str, *, force: bool = False) -> Outcome | None:
        """Roll forward compaction `compaction_id` if its lease expired (or `force`); None if it is not pending.

        Raises
        ------
        CommitBusyError
            Its holder's lease has not expired.

        """
        record = self._get(compaction_id)
        if record is None or record.status != COMMITTING:
            return None
        if not force and record.lease_until and self.clock() < datetime.fromisoformat(record.lease_until):
            raise CommitBusyError(f"compaction {compaction_id} is being committed (lease until {record.lease_until})")
        renewed = replace(record, rev=record.rev + 1, lease_until=self._lease_end())
        self.runs.write_all([(renewed.to_item(), Guard(rev=record.rev))])
        outcome = Outcome(compaction_id, COMMITTING, step="decide", files_in=len(record.replaces))
        return self._roll_forward(renewed, outcome)

    def pending(self) -> list[str]:
        """Ids of compactions decided but not released (COMMITTING)."""
        return [r for r in self.runs.run_ids_with_status(COMMITTING) if is_compaction(r)]

    # ---------------------------------------------------------------- rewrite without a superseded run
    def exclude(self, run_id: str, compactions: Sequence[str]) -> int:
        """Rewrite every compaction (or its successor) holding rows of `run_id` without them; returns rewrites.

        Raises
        ------
        CommitBusyError
            One of them is being committed or rewritten by a holder whose lease has not expired.

        """
        rewritten = 0
        for start in compactions:
            cid: str | None = start
            for _ in range(100):
                record = self._get(cid) if cid else None
                if record is None:
                    break
                if record.status == SUPERSEDED:
                    cid = record.superseded_by
                    continue
                if record.status == COMMITTING:
                    self.complete(record.compaction_id)
                    continue
                if record.rewriting:
                    if self.complete(record.rewriting) is None:  # a rewrite that never decided: take over
                        self._clear_rewriting(record)
                    continue
                if run_id in record.members:
                    self._rewrite(record, run_id)
                    rewritten += 1
                break
        return rewritten

    def _clear_rewriting(self, record: Compaction) -> None:
        cleared = replace(record, rev=record.rev + 1, rewriting=None)
        self.runs.write_all([(cleared.to_item(), Guard(rev=record.rev))])

    def _rewrite(self, record: Compaction, run_id: str) -> None:
        manifest = self.store.get_json(record.manifest_uri)
        cid = f"{PREFIX}{hashlib.sha256(f'{record.compaction_id}-{run_id}'.encode()).hexdigest()[:32]}"
        staged = self._stage_without(cid, manifest, run_id)
        members = tuple(m for m in record.members if m != run_id)
        rewrite = Compaction(
            cid,
            record.dataset,
            COMMITTING,
            1,
            tuple(o["uri"] for o in staged["outputs"]),
            record.outputs,
            members,
            self.store.put_json(self.work_bucket, layout.manifest_key(cid), {**staged, "kind": KIND}),
            self._lease_end(),
            supersedes=record.compaction_id,
            extra=self._stamps(started=True) | {"excludes": run_id},
        )
        marked = replace(record, rev=record.rev + 1, rewriting=cid)
        self.runs.write_all([(rewrite.to_item(), Guard(rev=0)), (marked.to_item(), Guard(rev=record.rev))])
        with_budget, self.budget = self.budget, Budget()  # a commit's rewrite is never left half-way
        try:
            self._roll_forward(rewrite, Outcome(cid, COMMITTING))
        finally:
            self.budget = with_budget

    # ---------------------------------------------------------------- Parquet (pyarrow only here)
    def _stage(self, cid: str, out_uri: str, groups: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Any]:
        """Write the groups' files as one Parquet file in the staging, one row group per run."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            out = Path(tmp) / "out.parquet"
            writer: pq.ParquetWriter | None = None
            schema: pa.Schema | None = None
            owners: dict[str, list[int]] = {}
            rows = groups_written = 0
            for run_id, uris in groups:
                tables = [pq.read_table(self._download(u, Path(tmp))) for u in uris]
                table = pa.concat_tables(tables, promote_options="none") if len(tables) > 1 else tables[0]
                if table.num_rows == 0:
                    continue
                if writer is None or schema is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(out, schema, compression="zstd")
                writer.write_table(table.cast(schema), row_group_size=table.num_rows)
                owners[run_id] = [groups_written]
                groups_written += 1
                rows += table.num_rows
            if writer is not None:
                writer.close()
            return self._upload_staged(cid, out_uri, out if writer else None, owners, rows)

    def _stage_without(self, cid: str, manifest: Mapping[str, Any], run_id: str) -> dict[str, Any]:
        """The compacted file(s) of `manifest` without the row groups of `run_id`."""
        import pyarrow.parquet as pq

        outputs: list[dict[str, Any]] = []
        rows = 0
        with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            for n, output in enumerate(manifest.get("outputs", [])):
                source = pq.ParquetFile(self._download(output["uri"], Path(tmp)))
                keep = {r: g for r, g in output["owners"].items() if r != run_id}
                bucket, key = split_uri(output["uri"])
                out_uri = s3_uri(bucket, f"{key.rsplit('/', 1)[0]}/{cid}-{n}.parquet")
                if not keep:
                    continue
                out = Path(tmp) / f"out-{n}.parquet"
                owners: dict[str, list[int]] = {}
                written = 0
                with pq.ParquetWriter(out, source.schema_arrow, compression="zstd") as writer:
                    for run, groups in keep.items():
                        owners[run] = []
                        for g in groups:
                            table = source.read_row_group(g)
                            writer.write_table(table, row_group_size=max(table.num_rows, 1))
                            owners[run].append(written)
                            written += 1
                            rows += table.num_rows
                outputs += self._upload_staged(cid, out_uri, out, owners, -1)["outputs"]
        return {"compaction_id": cid, "outputs": outputs, "rows": rows}

    def _scratch(self) -> Path | None:
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch

    def _download(self, uri: str, folder: Path) -> Path:
        bucket, key = split_uri(uri)
        path = folder / f"in-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.parquet"
        with self.store.open(bucket, key) as body, path.open("wb") as f:
            while chunk := body.read(1 << 20):
                f.write(chunk)
        return path

    def _upload_staged(
        self, cid: str, out_uri: str, path: Path | None, owners: dict[str, list[int]], rows: int
    ) -> dict[str, Any]:
        if path is None:
            return {"compaction_id": cid, "outputs": [], "rows": 0}
        _, curated_key = split_uri(out_uri)
        staged_key = layout.staged_key(cid, curated_key)
        self.store.upload_file(path, self.work_bucket, staged_key, "application/vnd.apache.parquet")
        output = {
            "uri": out_uri,
            "staged_uri": s3_uri(self.work_bucket, staged_key),
            "bytes": path.stat().st_size,
            "owners": owners,
        }
        return {"compaction_id": cid, "outputs": [output], "rows": rows}

    # ---------------------------------------------------------------- helpers
    def _delete_staging(self, cid: str) -> None:
        prefix = layout.staging_prefix(cid)
        self.store.delete_keys(self.work_bucket, [k for k, _, _ in self.store.list_keys(self.work_bucket, prefix)])

    def _get(self, cid: str | None) -> Compaction | None:
        item = self.runs.get_run(cid) if cid else None
        return Compaction.from_item(item) if item and item.get("kind") == KIND else None

    def _stamps(self, *, started: bool = False, finished: str | None = None) -> dict[str, Any]:
        now = self._now()
        stamps: dict[str, Any] = {"updated_at": now}
        if started:
            stamps["started_at"] = now
        if finished:
            stamps["finished_at"] = now
            stamps["expires_at"] = expiry(finished, self.retention_days, self.clock())
        return stamps

    def _lease_end(self) -> str:
        return (self.clock() + self.lease).isoformat(timespec="milliseconds")

    def _now(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")
