"""The settings module: one place reads the environment, names the missing variable, matches the template."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest

from sluice.aggregates.windows import DEFAULT_BUDGET
from sluice.pipeline.cleanup import CompactionSettings
from sluice.pipeline.fanout import FanoutSettings
from sluice.settings import RESOURCES, VARIABLES, Settings, SettingsError
from tests.template_stack import ROOT, function_environment, plain_template

FUNCTIONS = sorted((ROOT / "functions").glob("*/app.py"))


def test_a_missing_resource_is_named() -> None:
    cfg = Settings.from_env({"RUNS_TABLE": "runs"})
    assert cfg.require("runs_table").runs_table == "runs"
    with pytest.raises(SettingsError, match="CURATED_BUCKET") as raised:
        cfg.require("runs_table", "curated_bucket", "work_bucket")
    assert "WORK_BUCKET" in str(raised.value)
    assert "RUNS_TABLE" not in str(raised.value)


def test_an_unused_variable_does_not_matter() -> None:
    cfg = Settings.from_env({"STREAM_NAME": "s", "IDEMPOTENCY_TABLE": "i"})
    assert cfg.require("stream_name", "idempotency_table", "run_retention_days") is cfg


def test_a_bad_number_is_named() -> None:
    with pytest.raises(SettingsError, match="FANOUT_RANGE_BYTES"):
        Settings.from_env({"FANOUT_RANGE_BYTES": "lots"})


def test_an_unknown_setting_is_a_bug() -> None:
    with pytest.raises(ValueError, match="raw_buckets"):
        Settings().require("raw_buckets")


def test_defaults_are_as_documented() -> None:
    cfg = Settings.from_env({})
    assert cfg.contracts_dir == Path("/opt/contracts")
    assert cfg.staging_dir == Path("/tmp/sluice")
    assert (cfg.fanout_threshold_bytes, cfg.run_retention_days, cfg.commit_lease_seconds) == (1 << 30, 90, 360)
    assert cfg.ingest_max_receives == 5
    assert cfg.aggregates_retention_days is None
    assert all(getattr(cfg, name) == "" for name in RESOURCES)
    assert cfg.fanout() == FanoutSettings() == FanoutSettings(256 << 20, 40)
    assert cfg.compaction() == CompactionSettings() == CompactionSettings(128 << 20, 10, timedelta(hours=1))
    assert cfg.window_state_budget_bytes is None and DEFAULT_BUDGET > 0


def test_set_values_are_typed() -> None:
    env = {
        "FANOUT_RANGE_BYTES": "8000",
        "FANOUT_MAX_CONCURRENCY": "3",
        "COMPACTION_MIN_AGE_MINUTES": "5",
        "SLUICE_STAGING_DIR": "/scratch",
        "AGGREGATES_RETENTION_DAYS": "7",
    }
    cfg = Settings.from_env(env)
    assert cfg.fanout() == FanoutSettings(8000, 3)
    assert cfg.compaction() == CompactionSettings(min_age=timedelta(minutes=5))
    assert cfg.staging_dir == Path("/scratch")
    assert cfg.aggregates_retention_days == 7


def test_each_setting_has_one_variable() -> None:
    assert set(VARIABLES) == {f for f in Settings.__dataclass_fields__}
    assert len(set(VARIABLES.values())) == len(VARIABLES)


def _uses(app: Path) -> tuple[set[str], set[str]]:
    """The settings a handler declares in ``USES``, and those it reads (``cfg.x``, ``settings().x``)."""
    tree = ast.parse(app.read_text(encoding="utf-8"))
    declared: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "USES" for t in node.targets):
            declared = set(ast.literal_eval(node.value))
        if isinstance(node, ast.Attribute) and node.attr in VARIABLES:
            read.add(node.attr)
    return declared, read


def _logical_ids() -> dict[str, str]:
    resources = plain_template(("AWS::Serverless::Function",))["Resources"]
    return {res["Properties"]["CodeUri"].strip("/").split("/")[-1]: lid for lid, res in resources.items()}


@pytest.mark.parametrize("app", FUNCTIONS, ids=lambda p: p.parent.name)
def test_the_template_gives_each_function_the_variables_it_uses(app: Path) -> None:
    declared, read = _uses(app)
    assert declared, f"{app} declares no USES"
    assert read <= declared, f"{app} reads settings it does not declare: {read - declared}"
    environment = function_environment(_logical_ids()[app.parent.name], {})
    missing = {VARIABLES[name] for name in declared} - set(environment)
    assert not missing, f"template.yaml does not give {app.parent.name} {missing}"


def test_only_the_settings_module_reads_the_environment() -> None:
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    allowed = {
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "ARROW_DEFAULT_MEMORY_POOL",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    }  # the runtime's, not settings
    for path in [*FUNCTIONS, *(ROOT / "src" / "sluice").rglob("*.py")]:
        if path.name == "settings.py" and path.parent.name == "sluice":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if reads.search(line):
                assert any(name in line for name in allowed), f"{path}: {line.strip()}"
