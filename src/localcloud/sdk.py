"""SDK access to a local cloud's endpoint (shared by the in-process and the remote handle)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=910)
_lock = threading.Lock()
_sessions: list[Any] = []  # one session: each new one re-reads botocore's data files (~0.1 s per client)


def sdk_env(endpoint: str, region: str) -> dict[str, str]:
    """``AWS_ENDPOINT_URL``, dummy credentials and region for SDKs in other processes."""
    return {"AWS_ENDPOINT_URL": endpoint, **CREDENTIALS, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}


def client(endpoint: str, region: str, service: str) -> Any:
    """A boto3 client bound to ``endpoint`` (clients are thread-safe; creating them is serialised)."""
    with _lock:
        if not _sessions:
            _sessions.append(boto3.session.Session())
        return _sessions[0].client(
            service,
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=_CONFIG,
        )
