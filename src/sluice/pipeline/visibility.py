"""What a reader that honours the runs table sees: the committed files of a dataset, each row once.

A plain Hive reader (Athena) lists the curated bucket; S3 has no multi-object transaction, so
during a compaction's swap it may see the compacted file and the files it replaces for the
moment between the copy and the batch delete (docs/commit-protocol.md). ``sluice query``
resolves the listing against the committed state instead: the compaction records are read as
one consistent snapshot (a DynamoDB transactional read), and

- a compacted file is visible iff its compaction is published (its output copied and marked, one
  conditional write: the commit point) and not replaced by a published rewrite;
- a run's file is visible iff its run is live (COMMITTING, COMMITTED, SUCCEEDED) and no
  visible compaction replaces it.

So such a reader never sees both a compaction's inputs and its output, nor neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sluice.pipeline import layout
from sluice.pipeline.compaction import is_compaction, shows
from sluice.pipeline.runs import LIVE, SUPERSEDED
from sluice.uris import split_uri

_MAX_ROUNDS = 5


class Snapshots(Protocol):
    """Consistent reads of run and compaction records (:meth:`sluice.ports.RunTable.get_many`)."""

    def get_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of `run_ids` that exist."""
        ...


def committed_files(uris: Iterable[str], runs: Snapshots) -> list[str]:
    """The files of `uris` (a listing of the curated bucket) that are committed, plus committed compacted files.

    Compacted files come from the compaction records, so a listing taken during a swap still
    yields every committed file once.
    """
    listed = list(dict.fromkeys(uris))
    owners = {u: layout.run_of_output(split_uri(u)[1]) for u in listed}
    compaction_ids = {o for o in owners.values() if o and is_compaction(o)}
    run_ids = sorted({o for o in owners.values() if o and not is_compaction(o)})
    snapshot = runs.get_many(sorted(compaction_ids))
    for _ in range(_MAX_ROUNDS):  # follow rewrites in flight, so both sides are in one snapshot
        linked = {str(r.get(f)) for r in snapshot.values() for f in ("rewriting", "superseded_by") if r.get(f)}
        if linked <= compaction_ids:
            break
        compaction_ids |= linked
        snapshot = runs.get_many(sorted(compaction_ids))
    committed = [
        r
        for r in snapshot.values()
        if shows(r) and r.get("status") != SUPERSEDED and not shows(snapshot.get(str(r.get("rewriting"))))
    ]
    replaced = {str(u) for r in committed for u in r.get("replaces") or ()}
    statuses = {r: rec.get("status") for r, rec in runs.get_many(run_ids).items()}
    visible = [u for u in listed if statuses.get(owners[u] or "") in LIVE and u not in replaced]
    visible += [str(uri) for record in committed for uri in record.get("outputs") or ()]
    return list(dict.fromkeys(visible))
