"""The functions' settings: every environment variable they read, named once, read once per cold start.

Each field's variable is in :data:`VARIABLES` (names match template.yaml's ``Environment``).
Resources (buckets, tables, the state machine, the stream) have no default: a handler asks for
the ones it uses with :meth:`Settings.require`, which fails before any work with the missing
variable's name, and a function is never stopped by a variable it does not use. Tuning values
have documented defaults; those of fan-out, compaction and the window-state budget are the
domain's own (``FanoutSettings``, ``CompactionSettings``, ``windows.DEFAULT_BUDGET``) and apply
when the variable is unset. A value that is not a whole number fails with its variable's name.
(The Lambda runtime's own variables, e.g. ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` read by
``sluice.engine.transform.available_cpus``, are not settings.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.contracts import Contract, load_contracts
from sluice.errors import SluiceError

if TYPE_CHECKING:
    from sluice.pipeline.cleanup import CompactionSettings
    from sluice.pipeline.fanout import FanoutSettings


class SettingsError(SluiceError):
    """An environment variable a function needs is unset, or not a whole number."""


VARIABLES: dict[str, str] = {
    "contracts_dir": "CONTRACTS_DIR",
    "raw_bucket": "RAW_BUCKET",  # cleanup: a contract's raw retention
    "curated_bucket": "CURATED_BUCKET",
    "quarantine_bucket": "QUARANTINE_BUCKET",
    "work_bucket": "WORK_BUCKET",
    "runs_table": "RUNS_TABLE",
    "state_machine_arn": "STATE_MACHINE_ARN",
    "stream_name": "STREAM_NAME",
    "idempotency_table": "IDEMPOTENCY_TABLE",
    "aggregates_table": "AGGREGATES_TABLE",
    "aggregates_retention_days": "AGGREGATES_RETENTION_DAYS",
    "fanout_threshold_bytes": "FANOUT_THRESHOLD_BYTES",
    "fanout_range_bytes": "FANOUT_RANGE_BYTES",
    "fanout_max_concurrency": "FANOUT_MAX_CONCURRENCY",
    "run_retention_days": "RUN_RETENTION_DAYS",
    "commit_lease_seconds": "COMMIT_LEASE_SECONDS",
    "ingest_max_receives": "INGEST_MAX_RECEIVES",
    "staging_dir": "SLUICE_STAGING_DIR",
    "compaction_target_bytes": "COMPACTION_TARGET_BYTES",
    "compaction_min_files": "COMPACTION_MIN_FILES",
    "compaction_min_age_minutes": "COMPACTION_MIN_AGE_MINUTES",
    "window_state_budget_bytes": "WINDOW_STATE_BUDGET_BYTES",
}
"""Each setting's environment variable."""

RESOURCES = frozenset(
    {
        "raw_bucket",
        "curated_bucket",
        "quarantine_bucket",
        "work_bucket",
        "runs_table",
        "state_machine_arn",
        "stream_name",
        "idempotency_table",
        "aggregates_table",
    }
)
"""Settings without a default: :meth:`Settings.require` fails when one of them is unset."""


@dataclass(frozen=True)
class Settings:
    """What a handler needs to know about its deployment (resources are ``""`` until required)."""

    contracts_dir: Path = Path("/opt/contracts")
    raw_bucket: str = ""
    curated_bucket: str = ""
    quarantine_bucket: str = ""
    work_bucket: str = ""
    runs_table: str = ""
    state_machine_arn: str = ""
    stream_name: str = ""
    idempotency_table: str = ""
    aggregates_table: str = ""
    aggregates_retention_days: int | None = None  # None: aggregate items never expire
    fanout_threshold_bytes: int = 1 << 30
    fanout_range_bytes: int | None = None  # None: FanoutSettings' default
    fanout_max_concurrency: int | None = None
    run_retention_days: int = 90
    commit_lease_seconds: int = 360
    ingest_max_receives: int = 5
    staging_dir: Path = Path("/tmp/sluice")
    compaction_target_bytes: int | None = None  # None: CompactionSettings' defaults
    compaction_min_files: int | None = None
    compaction_min_age_minutes: int | None = None
    window_state_budget_bytes: int | None = None  # None: windows.DEFAULT_BUDGET

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables that are set (``os.environ`` by default); unset ones keep their defaults."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(VARIABLES[f.name], "")
            if raw == "":
                continue
            if f.name.endswith("_dir"):
                values[f.name] = Path(raw)
            elif f.name in RESOURCES:
                values[f.name] = raw
            else:
                values[f.name] = _whole_number(VARIABLES[f.name], raw)
        return cls(**values)  # type: ignore[arg-type]

    def require(self, *names: str) -> Settings:
        """These settings, after checking that the resources among `names` are set.

        `names` are the settings a function uses (all of them, so template.yaml can be checked
        against them); those with a default always pass. Raises :class:`SettingsError` naming
        each unset variable.
        """
        unknown = [n for n in names if n not in VARIABLES]
        if unknown:
            raise ValueError(f"not settings: {', '.join(unknown)}")
        missing = [VARIABLES[n] for n in names if n in RESOURCES and not getattr(self, n)]
        if missing:
            raise SettingsError(f"environment variable(s) not set: {', '.join(missing)}")
        return self

    def fanout(self) -> FanoutSettings:
        """How Plan splits files: FANOUT_RANGE_BYTES, FANOUT_MAX_CONCURRENCY over the domain's defaults."""
        from sluice.pipeline.fanout import FanoutSettings

        return replace(
            FanoutSettings(), **_given(range_bytes=self.fanout_range_bytes, max_concurrency=self.fanout_max_concurrency)
        )

    def compaction(self) -> CompactionSettings:
        """When cleanup compacts a partition: COMPACTION_* over the domain's defaults."""
        from sluice.pipeline.cleanup import CompactionSettings

        minutes = self.compaction_min_age_minutes
        return replace(
            CompactionSettings(),
            **_given(
                target_bytes=self.compaction_target_bytes,
                min_files=self.compaction_min_files,
                min_age=None if minutes is None else timedelta(minutes=minutes),
            ),
        )


def _whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a whole number, not {raw!r}") from None


def _given(**values: object) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Settings of this process (read once per cold start)."""
    return Settings.from_env()


@lru_cache(maxsize=4)
def contracts(directory: Path) -> tuple[Contract, ...]:
    """Contracts shipped with the functions (read once per cold start)."""
    return load_contracts(directory)
