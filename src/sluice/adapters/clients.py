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


# For calls made on behalf of one message of a batch: a slow or throttled dependency fails that
# message within seconds instead of holding up the others until the function times out.
QUICK = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str, *, quick: bool = False) -> Any:
    """A cached boto3 client for `service` (`quick`: bounded retries and timeouts, see QUICK)."""
    return boto3.session.Session().client(service, config=QUICK if quick else RETRIES)  # type: ignore[call-overload]
