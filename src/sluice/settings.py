"""Typed settings read from the environment (names match the template's variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sluice.contracts import Contract, load_contracts


@dataclass(frozen=True)
class Settings:
    """What a handler needs to know about its deployment."""

    contracts_dir: Path
    raw_bucket: str  # cleanup: a contract's raw retention
    curated_bucket: str
    quarantine_bucket: str
    work_bucket: str
    runs_table: str
    state_machine_arn: str
    fanout_threshold_bytes: int
    run_retention_days: int
    commit_lease_seconds: int
    ingest_max_receives: int
    staging_dir: Path
    compaction_target_bytes: int = 128 << 20
    compaction_min_files: int = 10
    compaction_min_age_minutes: int = 60

    @classmethod
    def from_env(cls) -> Settings:
        """Read settings from ``os.environ``; unset resources are empty strings."""
        env = os.environ
        return cls(
            contracts_dir=Path(env.get("CONTRACTS_DIR", "/opt/contracts")),
            raw_bucket=env.get("RAW_BUCKET", ""),
            curated_bucket=env.get("CURATED_BUCKET", ""),
            quarantine_bucket=env.get("QUARANTINE_BUCKET", ""),
            work_bucket=env.get("WORK_BUCKET", ""),
            runs_table=env.get("RUNS_TABLE", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
            fanout_threshold_bytes=int(env.get("FANOUT_THRESHOLD_BYTES", str(1 << 30))),
            run_retention_days=int(env.get("RUN_RETENTION_DAYS", "90")),
            commit_lease_seconds=int(env.get("COMMIT_LEASE_SECONDS", "360")),
            ingest_max_receives=int(env.get("INGEST_MAX_RECEIVES", "5")),
            staging_dir=Path(env.get("SLUICE_STAGING_DIR", "/tmp/sluice")),
            compaction_target_bytes=int(env.get("COMPACTION_TARGET_BYTES", str(128 << 20))),
            compaction_min_files=int(env.get("COMPACTION_MIN_FILES", "10")),
            compaction_min_age_minutes=int(env.get("COMPACTION_MIN_AGE_MINUTES", "60")),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Settings of this process (read once per cold start)."""
    return Settings.from_env()


@lru_cache(maxsize=4)
def contracts(directory: Path) -> tuple[Contract, ...]:
    """Contracts shipped with the functions (read once per cold start)."""
    return load_contracts(directory)
