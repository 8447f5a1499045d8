"""In-memory implementations of sluice's ports, shared by the unit tests."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sluice.errors import CommitConflictError
from sluice.pipeline.runs import head_id
from sluice.ports import Guard
from sluice.uris import s3_uri, split_uri


class MemoryStore:
    """ObjectStore in memory: {(bucket, key): bytes}, with modification times."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.modified: dict[tuple[str, str], datetime] = {}
        self.versions: dict[tuple[str, str], list[str]] = {}  # newest first, as S3 lists them
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # modification times
        self.range_reads: list[tuple[str, str, int, int]] = []  # (bucket, key, start, end) of every ranged read
        self.version_times: dict[tuple[str, str, str], datetime] = {}

    def put(
        self, bucket: str, key: str, data: bytes, modified: datetime | None = None, version_id: str | None = None
    ) -> str:
        """Store `data` as a new version of the key; returns its version id."""
        self.objects[(bucket, key)] = data
        self.modified[(bucket, key)] = modified or self.clock()
        history = self.versions.setdefault((bucket, key), [])
        version = version_id or f"v{len(history) + 1}"
        history.insert(0, version)
        self.version_times[(bucket, key, version)] = self.modified[(bucket, key)]
        return version

    def list_versions(self, bucket: str, prefix: str) -> Iterator[tuple[str, str, bool, datetime]]:
        for (b, k), history in sorted(self.versions.items()):
            if b == bucket and k.startswith(prefix):
                for i, v in enumerate(history):
                    yield k, v, i == 0, self.version_times[(b, k, v)]

    def delete_versions(self, bucket: str, versions: list[tuple[str, str]]) -> int:
        n = 0
        for key, version in versions:
            history = self.versions.get((bucket, key), [])
            if version in history:
                if history[0] == version:
                    self.objects.pop((bucket, key), None)
                history.remove(version)
                n += 1
        return n

    def version_ids(self, bucket: str, key: str) -> list[str]:
        return list(self.versions.get((bucket, key), []))

    def open(self, bucket: str, key: str, version_id: str | None = None) -> BinaryIO:
        return io.BytesIO(self.objects[(bucket, key)])

    def open_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> BinaryIO:
        self.range_reads.append((bucket, key, start, end))
        return io.BytesIO(self.objects[(bucket, key)][start:end])

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Mapping[str, Any]:
        data = self.objects[(bucket, key)]
        return {"ContentLength": len(data), "ETag": f'"etag-{len(data)}"', "VersionId": version_id or "v1"}

    def read_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> bytes:
        self.range_reads.append((bucket, key, start, end))
        return self.objects[(bucket, key)][start:end]

    def copy(self, bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        self.put(to_bucket, to_key, self.objects[(bucket, key)])

    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        self.put(bucket, key, Path(path).read_bytes())

    def put_json(self, bucket: str, key: str, document: Any) -> str:
        self.put(bucket, key, json.dumps(document, default=str).encode())
        return s3_uri(bucket, key)

    def get_json(self, uri: str) -> Any:
        return json.loads(self.objects[split_uri(uri)])

    def list_keys(self, bucket: str, prefix: str) -> Iterator[tuple[str, int, Any]]:
        for (b, k), data in sorted(self.objects.items()):
            if b == bucket and k.startswith(prefix):
                yield k, len(data), self.modified[(b, k)]

    def delete_keys(self, bucket: str, keys: list[str]) -> int:
        n = 0
        for k in keys:
            n += self.objects.pop((bucket, k), None) is not None
        return n


class MemoryRunTable:
    """RunTable in memory."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def put_run(self, item: Mapping[str, Any]) -> None:
        self.items[item["run_id"]] = _stored(item)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self.items.get(run_id)

    def _newest(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda i: str(i.get("started_at", "")), reverse=True)

    def runs_of_dataset(self, dataset: str, limit: int = 50) -> list[dict[str, Any]]:
        return self._newest([i for i in self.items.values() if i.get("dataset") == dataset])[:limit]

    def runs_by_source(self, source_uri: str) -> list[dict[str, Any]]:
        return self._newest([i for i in self.items.values() if i.get("source_uri") == source_uri])

    def run_ids_with_status(self, status: str) -> list[str]:
        return [k for k, i in self.items.items() if i.get("status") == status]

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._newest([i for i in self.items.values() if "status" in i])[:limit]

    def get_head(self, source_uri: str) -> dict[str, Any] | None:
        return self.items.get(head_id(source_uri))

    def write_commit(
        self, head: Mapping[str, Any], expected_rev: int, runs: Sequence[tuple[Mapping[str, Any], Sequence[str]]]
    ) -> None:
        stored = self.items.get(head["run_id"])
        if (stored is None and expected_rev != 0) or (stored is not None and stored.get("rev") != expected_rev):
            raise CommitConflictError(f"head {head['run_id']} is at {stored and stored.get('rev')}, not {expected_rev}")
        for record, statuses in runs:
            current = self.items.get(record["run_id"])
            if statuses and current is not None and current.get("status") not in statuses:
                raise CommitConflictError(f"run {record['run_id']} is {current.get('status')}, not one of {statuses}")
        self.items[head["run_id"]] = _stored(head)
        for record, _ in runs:
            self.items[record["run_id"]] = _stored(record)

    def write_all(self, puts: Sequence[tuple[Mapping[str, Any], Guard]]) -> None:
        for item, guard in puts:
            current = self.items.get(item["run_id"])
            if guard.rev == 0 and current is not None:
                raise CommitConflictError(f"{item['run_id']} exists")
            if guard.rev and (current is None or current.get("rev") != guard.rev):
                raise CommitConflictError(f"{item['run_id']} is at {current and current.get('rev')}, not {guard.rev}")
            if guard.rev is None and guard.statuses and current and current.get("status") not in guard.statuses:
                raise CommitConflictError(f"{item['run_id']} is {current.get('status')}, not in {guard.statuses}")
        for item, _ in puts:
            self.items[item["run_id"]] = _stored(item)

    def get_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {r: dict(self.items[r]) for r in run_ids if r in self.items}

    def clear_expiry(self, run_id: str, statuses: Sequence[str]) -> bool:
        current = self.items.get(run_id)
        if current is None or current.get("status") not in statuses:
            return False
        current.pop("expires_at", None)
        return True

    def transition(self, run_id: str, expected: Sequence[str], changes: Mapping[str, Any]) -> bool:
        current = self.items.get(run_id)
        if current is None or current.get("status") not in expected:
            return False
        self.items[run_id] = _stored({**current, **changes})
        return True


def _stored(item: Mapping[str, Any]) -> dict[str, Any]:
    """What a DynamoDB round trip keeps of `item`: JSON values, no top-level None."""
    return {k: v for k, v in json.loads(json.dumps(dict(item), default=str)).items() if v is not None}


class MemoryExecutions:
    """Executions in memory, refusing a reused name like Step Functions."""

    def __init__(self) -> None:
        self.started: dict[str, Mapping[str, Any]] = {}
        self.ended: list[dict[str, Any]] = []  # what ended_badly_since lists, newest first

    def ended_badly_since(self, state_machine_arn: str, since: datetime) -> Iterator[dict[str, Any]]:
        return iter([e for e in self.ended if e["stopped_at"] >= since])

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> bool:
        if name in self.started:
            return False
        self.started[name] = payload
        return True


class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    def __init__(self, function_name: str = "test-function", timeout_ms: int = 60_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/23/[$LATEST]abcdef"
        self._deadline = timeout_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._deadline
