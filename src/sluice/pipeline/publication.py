"""Publish step: put a committed run's partial aggregates on the stream, then mark the run SUCCEEDED.

Re-publishing a run is harmless by design: every record carries the run id, a sequence number,
the source it comes from and the run's *publication order* (its commit number for the key,
:func:`sluice.pipeline.commit.publication_order`); the aggregator keeps one contribution per (item,
source) and the highest order wins. So the same run's records again change nothing, a newer
version's replace an older one's whatever order the stream delivers them in, and a run that a
newer version superseded before it published is skipped (the newer run's records replace it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NotRequired, Protocol, TypedDict

from sluice.aggregates.records import batch_records, prepare_publication, source_id
from sluice.pipeline import layout
from sluice.pipeline.commit import publication_order
from sluice.pipeline.payloads import CommittedResult
from sluice.pipeline.runs import COMMITTED, SUCCEEDED
from sluice.ports import ObjectStore, RunTable
from sluice.uris import s3_uri

MAX_CHAIN = 50


class RecordPublisher(Protocol):
    """A stream accepting ``(partition key, data)`` entries."""

    def put(self, entries: Sequence[tuple[str, bytes]]) -> int:
        """Put every entry; returns how many were put."""
        ...


class Published(TypedDict):
    """What Publish adds to the run's payload."""

    records: int  # partial records (one per item), withdrawals included
    withdrawn: int  # items of the retired version this run no longer has (sent as empty partials)
    stream_records: NotRequired[int]  # Kinesis records they travelled in (``partials`` batches)
    skipped: NotRequired[str]  # why nothing was published


def stream_entries(records: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """The records put together in ``partials`` records of at most 256 KiB, keyed ``dataset#src``.

    A run's records share one partition key, so its few stream records land on one shard in
    order; which version of a source wins never depends on that order.
    """
    if not records:
        return []
    key = f"{records[0]['dataset']}#{records[0].get('src') or records[0]['run_id']}"
    return [(key, data) for data in batch_records(records)]


def publish_run(
    run: CommittedResult,
    store: ObjectStore,
    stream: RecordPublisher,
    *,
    work_bucket: str,
    retired: Sequence[str] = (),
) -> Published:
    """Put the run's partials on the stream, with an empty one for every item only `retired` runs had."""
    uri = run.get("partials_uri")
    seq = run["commit"]["seq"]
    if not uri or seq is None:
        return Published(records=0, withdrawn=0)
    partials = store.get_json(uri)
    superseded = []
    for old in retired:
        key = layout.partials_key(old)
        if any(k == key for k, _, _ in store.list_keys(work_bucket, key)):
            superseded.append(store.get_json(s3_uri(work_bucket, key)))
    source = run["source"]
    records = prepare_publication(
        partials,
        run_id=run["run_id"],
        contract_version=run["contract_version"],
        src=source_id(source["bucket"], source["key"]),
        order=publication_order(seq),
        superseded=superseded,
    )
    put = stream.put(stream_entries(records))
    withdrawn = sum(1 for r in records if r["count"] == 0)
    return Published(records=len(records), withdrawn=withdrawn, stream_records=put)


def unpublished_predecessors(run: CommittedResult, runs: RunTable, limit: int = MAX_CHAIN) -> list[str]:
    """The runs whose aggregates may still count for the key: those `run` retired, back to the last published one.

    A run that committed but never published (its Publish failed, then it was retired) left the
    aggregates holding the run *it* retired, so the chain is followed until a run that did
    publish (its own publication withdrew everything older). Withdrawing an item no older run
    counts is harmless, so the chain errs on the long side.
    """
    chain: list[str] = []
    retired = run["commit"]["retired_run_id"]
    while retired and retired not in chain and len(chain) < limit:
        chain.append(retired)
        record = runs.get_run(retired) or {}
        if record.get("published_at"):
            break
        retired = record.get("retiring")
    return chain


def publish_committed(
    run: CommittedResult, runs: RunTable, publish: Callable[[CommittedResult, list[str]], Published]
) -> Published:
    """Publish `run` if it is still the live version of its key, then mark it SUCCEEDED.

    `publish(run, retired)` puts the records; `retired` lists the runs whose items it withdraws.
    """
    record = runs.get_run(run["run_id"]) or {}
    status = record.get("status")
    if run["commit"]["status"] != COMMITTED or status not in (COMMITTED, SUCCEEDED):
        newer = record.get("superseded_by") or run["commit"]["live_run_id"]
        return Published(records=0, withdrawn=0, skipped=f"superseded by run {newer}, whose publication replaces it")
    published = publish(run, unpublished_predecessors(run, runs))
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    runs.transition(
        run["run_id"],
        (COMMITTED,),
        {"status": SUCCEEDED, "records_published": published["records"], "published_at": now, "updated_at": now},
    )
    return published
