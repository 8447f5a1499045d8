"""Functional tier: handlers in-process against moto, resources built from template.yaml."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.fakes import FakeLambdaContext
from tests.template_stack import apply_ignored_settings, deploy, function_environment

ROOT = Path(__file__).resolve().parents[2]


def _reset_caches() -> None:
    from sluice import settings
    from sluice.adapters import clients

    settings.settings.cache_clear()
    settings.contracts.cache_clear()
    clients.clear_cache()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A moto account holding the template's buckets, tables, queues and streams."""
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        resources = deploy(boto3.client("cloudformation"))
        apply_ignored_settings(boto3.client("s3"), resources)
        _reset_caches()
        yield resources
    _reset_caches()


@pytest.fixture
def handler_of(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[str], Callable[[dict[str, Any]], Any]]:
    """Load `functions/<dir>/app.py` of a template function with its environment; returns a caller."""

    def load(logical_id: str, **env: str) -> Callable[[dict[str, Any]], Any]:
        from cfnlint.decode.cfn_yaml import load as load_yaml

        props = load_yaml(str(ROOT / "template.yaml"))["Resources"][logical_id]["Properties"]
        for name, value in {**function_environment(logical_id, aws), **env}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CONTRACTS_DIR", str(ROOT / "contracts"))
        monkeypatch.setenv("SLUICE_STAGING_DIR", str(tmp_path / "staging"))
        _reset_caches()
        path = ROOT / str(props["CodeUri"]) / "app.py"
        spec = importlib.util.spec_from_file_location(f"handler_{logical_id}", path)
        assert spec and spec.loader
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        context = FakeLambdaContext(logical_id)
        return lambda event: module.handler(event, context)

    return load
