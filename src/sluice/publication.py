"""Publish step: put a run's partial aggregates on the stream.

Re-publishing a run is harmless by design: every record carries the run id, a sequence number and
the source it comes from, and the aggregator keeps one contribution per (item, source) - the same
run's record again changes nothing, a later version's replaces an earlier one's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from sluice.aggregates import encode_record, partial_from_json, prepare_publication, source_id
from sluice.payloads import TransformResult
from sluice.ports import ObjectStore
from sluice.uris import s3_uri


class RecordPublisher(Protocol):
    """A stream accepting ``(partition key, data)`` entries."""

    def put(self, entries: Sequence[tuple[str, bytes]]) -> int:
        """Put every entry; returns how many were put."""
        ...


class Published(TypedDict):
    """What Publish adds to the run's payload."""

    records: int
    withdrawn: int  # items of superseded versions this run no longer has (sent as empty partials)


def partials_key(run_id: str) -> str:
    """Work-bucket key of a run's partial aggregates (written by Transform)."""
    return f"runs/{run_id}/partials.json"


def stream_entries(records: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """``(partition key, data)`` of each record: partition key ``dataset#group``."""
    return [(partial_from_json(r).key.partition_key, encode_record(r)) for r in records]


def publish_run(run: TransformResult, store: ObjectStore, stream: RecordPublisher, *, work_bucket: str) -> Published:
    """Read the run's partials (and those of the runs it superseded) and put them on the stream."""
    uri = run.get("partials_uri")
    if not uri:
        return Published(records=0, withdrawn=0)
    partials = store.get_json(uri)
    superseded = []
    for old in run.get("superseded_run_ids") or []:
        key = partials_key(old)
        if any(k == key for k, _, _ in store.list_keys(work_bucket, key)):
            superseded.append(store.get_json(s3_uri(work_bucket, key)))
    source = run["source"]
    records = prepare_publication(
        partials,
        run_id=run["run_id"],
        contract_version=run["contract_version"],
        src=source_id(source["bucket"], source["key"]),
        order=run["started_at"],
        superseded=superseded,
    )
    stream.put(stream_entries(records))
    withdrawn = sum(1 for r in records if r["count"] == 0)
    return Published(records=len(records), withdrawn=withdrawn)
