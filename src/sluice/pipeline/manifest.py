"""The run manifest: everything a run produced, written once its conversion is complete.

Transform (or Merge, after a fan-out) writes it to ``runs/<run_id>/manifest.json`` in the work
bucket; the commit reads it to publish the staged files, and Summarize to record the run. It is
the one description of a run's output: the single-worker path, the fan-out and ``sluice
convert`` all build it with :func:`RunManifest.build`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sluice.engine.counts import counts_json
from sluice.pipeline.payloads import SourceObject, TransformResult


@dataclass(frozen=True)
class OutputRef:
    """One Parquet file of a run: where readers will find it, and where it waits until the commit."""

    uri: str  # s3://<curated bucket>/<dataset>/<partition>/<run_id>-<n>.parquet (or a local path)
    staged_uri: str  # s3://<work bucket>/staging/<run_id>/<curated key> (or a local path)
    rows: int
    bytes: int
    partition: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "uri": self.uri,
            "staged_uri": self.staged_uri,
            "rows": self.rows,
            "bytes": self.bytes,
            "partition": dict(self.partition),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputRef:
        """Inverse of :meth:`to_json`."""
        return cls(
            str(data["uri"]),
            str(data.get("staged_uri") or data["uri"]),
            int(data["rows"]),
            int(data["bytes"]),
            dict(data.get("partition") or {}),
        )


@dataclass(frozen=True)
class RunManifest:
    """What one run produced: counts, schema, output files, quarantine and partial aggregates."""

    run_id: str
    dataset: str
    contract_version: int
    source: dict[str, Any]
    rows_in: int
    rows_out: int
    rows_rejected: int
    bytes_in: int
    bytes_out: int
    blank_lines: int
    rejects_by_rule: dict[str, int]
    schema: list[list[str]]
    partition_columns: list[str]
    outputs: tuple[OutputRef, ...]
    quarantine_uri: str | None = None
    partials_uri: str | None = None
    fanout: dict[str, Any] | None = field(default=None)
    rows_unprojected: int = 0  # rows in partition folders the Glue projection does not cover
    warnings: tuple[str, ...] = ()

    @property
    def partitions(self) -> list[str]:
        """Hive partition paths the run wrote to (``k=v/k2=v2``), sorted."""
        return sorted({"/".join(f"{k}={v}" for k, v in o.partition.items()) for o in self.outputs if o.partition})

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the document in the work bucket)."""
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "source": dict(self.source),
            **counts_json(self),
            "outputs": [o.to_json() for o in self.outputs],
            "quarantine_uri": self.quarantine_uri,
            "partials_uri": self.partials_uri,
            "fanout": self.fanout,
            "rows_unprojected": self.rows_unprojected,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunManifest:
        """Inverse of :meth:`to_json`."""
        return cls(
            run_id=str(data["run_id"]),
            dataset=str(data["dataset"]),
            contract_version=int(data["contract_version"]),
            source=dict(data["source"]),
            rows_in=int(data["rows_in"]),
            rows_out=int(data["rows_out"]),
            rows_rejected=int(data["rows_rejected"]),
            bytes_in=int(data["bytes_in"]),
            bytes_out=int(data["bytes_out"]),
            blank_lines=int(data.get("blank_lines") or 0),
            rejects_by_rule={str(k): int(v) for k, v in (data.get("rejects_by_rule") or {}).items()},
            schema=[list(c) for c in data.get("schema") or []],
            partition_columns=list(data.get("partition_columns") or []),
            outputs=tuple(OutputRef.from_json(o) for o in data.get("outputs") or []),
            quarantine_uri=data.get("quarantine_uri"),
            partials_uri=data.get("partials_uri"),
            fanout=data.get("fanout"),
            rows_unprojected=int(data.get("rows_unprojected") or 0),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
        )

    def result(self, manifest_uri: str, started_at: str, duration_ms: int) -> TransformResult:
        """The state payload Transform (or Merge) returns for this run: pointers and counts."""
        result = TransformResult(
            run_id=self.run_id,
            dataset=self.dataset,
            contract_version=self.contract_version,
            source=cast(SourceObject, dict(self.source)),
            started_at=started_at,
            rows_in=self.rows_in,
            rows_out=self.rows_out,
            rows_rejected=self.rows_rejected,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            output_files=len(self.outputs),
            manifest_uri=manifest_uri,
            quarantine_uri=self.quarantine_uri,
            duration_ms=duration_ms,
        )
        if self.partials_uri:
            result["partials_uri"] = self.partials_uri
        if self.warnings:
            result["rows_unprojected"] = self.rows_unprojected
            result["warnings"] = list(self.warnings)
        return result


def output_uris(outputs: Sequence[OutputRef]) -> list[str]:
    """The curated URIs of `outputs`, in order."""
    return [o.uri for o in outputs]
