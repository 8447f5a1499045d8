"""Ports: what the domain needs from AWS, as Protocols (adapters implement them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol


class ObjectStore(Protocol):
    """S3-like object storage."""

    def open(self, bucket: str, key: str, version_id: str | None = None) -> BinaryIO:
        """A streaming, non-seekable reader of the object's bytes."""
        ...

    def open_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> BinaryIO:
        """A streaming, non-seekable reader of bytes ``[start, end)`` (one ranged GET)."""
        ...

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Mapping[str, Any]:
        """Size (``ContentLength``), ``ETag``, ``VersionId`` of the object."""
        ...

    def read_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> bytes:
        """Bytes ``[start, end)`` of the object."""
        ...

    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        """Upload a finished local file (multipart when large)."""
        ...

    def copy(self, bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        """Server-side copy of an object (multipart when large)."""
        ...

    def put_json(self, bucket: str, key: str, document: Any) -> str:
        """Write a JSON document; returns its ``s3://`` URI."""
        ...

    def get_json(self, uri: str) -> Any:
        """Read a JSON document written by :meth:`put_json`."""
        ...

    def list_keys(self, bucket: str, prefix: str) -> Iterator[tuple[str, int, Any]]:
        """``(key, size, last_modified)`` of every object under `prefix`."""
        ...

    def delete_keys(self, bucket: str, keys: list[str]) -> int:
        """Delete `keys`; returns how many were deleted."""
        ...

    def version_ids(self, bucket: str, key: str) -> list[str]:
        """Version ids of `key`, newest first, as S3 orders them (empty when unversioned)."""
        ...

    def list_versions(self, bucket: str, prefix: str) -> Iterator[tuple[str, str, bool, datetime]]:
        """``(key, version id, is latest, last modified)`` of each version under `prefix`, newest first per key."""
        ...

    def delete_versions(self, bucket: str, versions: list[tuple[str, str]]) -> int:
        """Delete object versions ``(key, version id)`` for good; returns how many were deleted."""
        ...


@dataclass(frozen=True)
class Guard:
    """The condition of one put in :meth:`RunTable.write_all`.

    ``rev``: the stored item is at this revision (0: there is no item yet). ``statuses``: the
    stored status is one of these (or there is no item). Both empty: unconditional.
    """

    rev: int | None = None
    statuses: tuple[str, ...] = ()


class RunTable(Protocol):
    """The runs table."""

    def put_run(self, item: Mapping[str, Any]) -> None:
        """Create or replace a run record."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run record, or None."""
        ...

    def runs_of_dataset(self, dataset: str, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of `dataset`, newest first."""
        ...

    def runs_by_source(self, source_uri: str) -> list[dict[str, Any]]:
        """Every run of ``s3://bucket/key`` (all versions), newest first."""
        ...

    def run_ids_with_status(self, status: str) -> list[str]:
        """Ids of every run in `status` (index ``by-status``)."""
        ...

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest runs of all datasets, newest first."""
        ...

    def get_head(self, source_uri: str) -> dict[str, Any] | None:
        """The commit head of raw key `source_uri` (:class:`sluice.pipeline.commit.Head` as a dict), or None."""
        ...

    def write_commit(
        self, head: Mapping[str, Any], expected_rev: int, runs: Sequence[tuple[Mapping[str, Any], Sequence[str]]]
    ) -> None:
        """Atomically put `head` and run records, or nothing.

        The write happens only if the stored head is still at revision `expected_rev` (0: no
        head yet) and each run's stored status is one of its listed statuses (none listed: any).

        Raises
        ------
        CommitConflictError
            A condition failed: someone else moved the head or the run first.

        """
        ...

    def write_all(self, puts: Sequence[tuple[Mapping[str, Any], Guard]]) -> None:
        """Atomically put every item whose guard holds, or none (at most 100 items).

        Raises
        ------
        CommitConflictError
            A guard failed: someone else wrote one of the items first.

        """
        ...

    def get_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of `run_ids` that exist, read as one consistent snapshot per 25 ids."""
        ...

    def transition(self, run_id: str, expected: Sequence[str], changes: Mapping[str, Any]) -> bool:
        """Apply `changes` to the run's record if its status is one of `expected`; False if it is not."""
        ...

    def clear_expiry(self, run_id: str, statuses: Sequence[str]) -> bool:
        """Remove the record's ``expires_at`` (TTL) if its status is one of `statuses`; False if it is not."""
        ...


class Executions(Protocol):
    """Step Functions executions."""

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> bool:
        """Start an execution; False when one with `name` already exists."""
        ...

    def ended_badly_since(self, state_machine_arn: str, since: datetime) -> Iterator[dict[str, Any]]:
        """Executions that failed, timed out or were aborted since `since`, newest first.

        Each is ``{"name", "status", "stopped_at", "error", "cause", "input"}`` (input parsed).
        """
        ...
