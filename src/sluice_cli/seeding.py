"""Sample data and event files for local runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sluice_cli.connection import REGION, Connection

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def sample_files(root: Path) -> list[tuple[Path, str]]:
    """``(file, raw key)`` for every sample: ``samples/<key>`` lands at ``<key>`` in the raw bucket."""
    folder = root / "samples"
    return sorted((p, p.relative_to(folder).as_posix()) for p in folder.rglob("*") if p.is_file())


def upload_samples(conn: Connection, root: Path, only: list[str] | None = None) -> list[str]:
    """Upload the sample files (or those whose key is in `only`) to the raw bucket; returns keys."""
    s3 = conn.client("s3")
    bucket = conn.resource("RawBucket")
    keys = []
    for path, key in sample_files(root):
        if only is None or key in only:
            s3.upload_file(str(path), bucket, key)
            keys.append(key)
    return keys


def resolve_placeholders(document: Any, resources: dict[str, str]) -> Any:
    """Replace ``${LogicalId}`` in every string of `document` with the physical resource name."""
    if isinstance(document, str):
        return _PLACEHOLDER.sub(lambda m: resources.get(m.group(1), m.group(0)), document)
    if isinstance(document, list):
        return [resolve_placeholders(v, resources) for v in document]
    if isinstance(document, dict):
        return {k: resolve_placeholders(v, resources) for k, v in document.items()}
    return document


def load_event(path: Path, conn: Connection) -> dict[str, Any]:
    """An event file with its placeholders resolved against `conn`'s resources."""
    resolved = resolve_placeholders(json.loads(path.read_text()), conn.resources)
    if not isinstance(resolved, dict):
        raise ValueError(f"{path}: an event must be a JSON object")
    return resolved


def redeliver(conn: Connection, key: str, version_id: str | None = None) -> dict[str, Any]:
    """Send the ingest queue the "Object Created" event of a raw object version again; returns the event.

    EventBridge and SQS deliver at least once: this is what a duplicate (or late) delivery looks like.
    """
    from localcloud.events import object_created_event

    bucket = conn.resource("RawBucket")
    extra = {"VersionId": version_id} if version_id else {}
    head = conn.client("s3").head_object(Bucket=bucket, Key=key, **extra)
    event = object_created_event(bucket, key, head, REGION, "123456789012")
    conn.client("sqs").send_message(QueueUrl=conn.resource("IngestQueue"), MessageBody=json.dumps(event))
    return event
