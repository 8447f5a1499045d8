"""Payloads passed between the state machine's states: pointers and counts only.

Step Functions caps a state's payload at 256 KB, so lists that can grow (output files,
byte ranges) travel as S3 URIs.
"""

from typing import NotRequired, TypedDict


class SourceObject(TypedDict):
    """The raw object a run processes."""

    bucket: str
    key: str
    version_id: NotRequired[str | None]
    etag: NotRequired[str | None]
    size: NotRequired[int]
    # S3's event sequencer: orders the events of one key (events arrive in any order)
    sequencer: NotRequired[str | None]


class RunInput(TypedDict):
    """Input of an execution, written by the Start function."""

    run_id: str
    dataset: str
    source: SourceObject
    received_at: str


class ValidateResult(TypedDict):
    """Output of Validate: the run, the contract version and the decision on fan-out."""

    run_id: str
    dataset: str
    contract_version: int
    source: SourceObject
    mode: str  # "single" | "fanout"
    started_at: str


class PlanRef(TypedDict):
    """Where Plan wrote a fan-out's byte ranges, and what every range needs to know of the file."""

    bucket: str
    key: str  # JSON array of ByteRange (the Distributed Map's ItemReader)
    ranges: int
    header: list[str]  # the file's header cells (empty when the contract has no header)
    header_lines: int  # physical lines before the first data byte (preamble, blank lines, header)
    header_bytes: int  # offset of the first data byte (start of range 0)
    leading_blank_lines: int  # blank lines before the header (counted like the single-worker path)
    range_bytes: int
    max_concurrency: int
    planned_at: str


class ByteRange(TypedDict):
    """One item of a fan-out: bytes ``[start, end)`` of the raw object, starting on a line boundary."""

    index: int
    start: int
    end: int


class PlanResult(ValidateResult):
    """Output of Plan: the validated run plus its plan."""

    plan: PlanRef


class RangeTask(TypedDict):
    """Input of Transform for one byte range (the Distributed Map's ItemSelector builds it)."""

    run_id: str
    dataset: str
    contract_version: int
    source: SourceObject
    started_at: str
    plan: PlanRef
    range: ByteRange


class RangeResult(TypedDict):
    """Output of Transform for one range: counts only (the part manifest in S3 has the rest)."""

    run_id: str
    index: int
    rows_in: int
    rows_out: int
    rows_rejected: int
    lines: int
    part_uri: str


class TransformResult(TypedDict):
    """Output of Transform (and of Merge after a fan-out)."""

    run_id: str
    dataset: str
    contract_version: int
    source: SourceObject
    started_at: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    bytes_in: int
    bytes_out: int
    output_files: int
    manifest_uri: str  # JSON: output files, partitions, schema, reject counts per rule
    quarantine_uri: NotRequired[str | None]
    duration_ms: int
    # JSON list of the run's partial aggregate records (sluice.aggregates.partials.PartialAggregator.records)
    partials_uri: NotRequired[str]
    # rows Athena's partition projection would not see, and why (sluice.pipeline.catalog.unprojected)
    rows_unprojected: NotRequired[int]
    warnings: NotRequired[list[str]]


class CommitInfo(TypedDict):
    """What the commit did with a run (``sluice.pipeline.commit.CommitOutcome``)."""

    status: str  # COMMITTED | SUPERSEDED
    live_run_id: str
    seq: int | None  # the run's publication order among the key's commits
    retired_run_id: str | None  # the previous version's run (Publish withdraws what it no longer has)
    published: int
    retired: int


class CommittedResult(TransformResult):
    """Output of Summarize: the converted run plus its commit."""

    commit: CommitInfo


class FailureInput(TypedDict):
    """Input of RecordFailure: the run and the error Step Functions caught."""

    run_id: str
    dataset: NotRequired[str]
    source: NotRequired[SourceObject]
    started_at: NotRequired[str]
    error: dict[str, str]  # {"Error": ..., "Cause": ...}
