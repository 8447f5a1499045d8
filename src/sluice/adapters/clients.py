"""boto3 clients, built once per process with sluice's retry configuration.

Endpoints come only from the standard SDK configuration (``AWS_ENDPOINT_URL``, region,
credentials), so the same code runs on AWS and on the embedded local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=120,
    max_pool_connections=32,
)


@cache
def client(service: str) -> Any:
    """A cached boto3 client for `service`."""
    return boto3.session.Session().client(service, config=RETRIES)  # type: ignore[call-overload]
