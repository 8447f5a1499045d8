"""boto3 clients, built once per process with sluice's retry configuration, typed with the boto3 stubs.

Endpoints come only from the standard SDK configuration (``AWS_ENDPOINT_URL``, region,
credentials), so the same code runs on AWS and on the embedded local cloud.

``client("s3")`` is an ``S3Client`` to mypy (one overload per service the adapters use), so every
call an adapter makes is checked against the API. The stubs (``mypy_boto3_*``) are development
dependencies only: they are imported for type checking, never at run time (the layer has none).
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Literal, cast, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kinesis.client import KinesisClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_stepfunctions.client import SFNClient

RETRIES = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=120,
    max_pool_connections=32,
)


# For calls made on behalf of one message of a batch: a slow or throttled dependency fails that
# message within seconds instead of holding up the others until the function times out.
QUICK = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)

Service = Literal["s3", "dynamodb", "kinesis", "stepfunctions"]


@overload
def client(service: Literal["s3"], *, quick: bool = False) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], *, quick: bool = False) -> DynamoDBClient: ...
@overload
def client(service: Literal["kinesis"], *, quick: bool = False) -> KinesisClient: ...
@overload
def client(service: Literal["stepfunctions"], *, quick: bool = False) -> SFNClient: ...
def client(service: Service, *, quick: bool = False) -> S3Client | DynamoDBClient | KinesisClient | SFNClient:
    """The cached boto3 client for `service` (`quick`: bounded retries and timeouts, see QUICK).

    One per endpoint and region in the environment, so a process that points the SDK elsewhere
    (the CLI's ``Connection.environment()``) does not reuse a client of the previous endpoint.
    """
    where = (os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    return cast("S3Client | DynamoDBClient | KinesisClient | SFNClient", _cached(service, quick, where))


@cache
def _cached(service: Service, quick: bool, where: tuple[str | None, str | None]) -> BaseClient:
    return boto3.session.Session().client(service, config=QUICK if quick else RETRIES)


def clear_cache() -> None:
    """Forget every client (tests that switch endpoints or credentials)."""
    _cached.cache_clear()
