"""pytest plugin: the session-scoped ``local_cloud`` fixture.

Enable it with one line in ``tests/conftest.py``: ``pytest_plugins = ["localcloud.testing"]``.

The cloud runs in a subprocess (``RemoteCloud.spawn``): moto keeps its state in process globals and
``moto.mock_aws`` resets them, so an in-process cloud would be wiped by the first functional test
using ``mock_aws``. Settings come from the environment:

- ``SLUICE_LOCAL_ARTIFACT``: ``source`` (default) or ``build`` (the ``sam build`` output);
- ``SLUICE_LOCAL_WORKERS``: warm workers per function (default 2).

Logs of the handlers go to ``.sluice/test-logs/<LogicalId>.log``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, cast

import pytest

from localcloud.remote import RemoteCloud


@pytest.fixture(scope="session")
def local_cloud(request: pytest.FixtureRequest) -> Iterator[RemoteCloud]:
    """The project's template deployed on a local cloud, shared by the whole test session."""
    root = Path(request.config.rootpath)
    artifact = os.environ.get("SLUICE_LOCAL_ARTIFACT", "source")
    if artifact not in ("source", "build"):
        raise pytest.UsageError(f"SLUICE_LOCAL_ARTIFACT must be source or build, not {artifact!r}")
    cloud = RemoteCloud.spawn(
        root,
        artifact=cast(Literal["source", "build"], artifact),
        log_dir=root / ".sluice" / "test-logs",
        workers_per_function=int(os.environ.get("SLUICE_LOCAL_WORKERS", "2")),
        stack_name="sluice-test",
    )
    try:
        yield cloud
    finally:
        cloud.stop()
