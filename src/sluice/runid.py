"""Run identity: the execution name, derived only from the source object."""

import hashlib
import re

from sluice.payloads import SourceObject

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 80


def run_id_for(dataset: str, source: SourceObject, *, with_version: bool = False) -> str:
    """Deterministic Step Functions execution name for one content of a raw object.

    The identity is bucket, key and ETag (the content), falling back to the version id when the
    event carries no ETag: a duplicate event or a second upload of the same bytes hits
    ``ExecutionAlreadyExists`` instead of starting a second run, and new content is a new run.
    `with_version` adds the version id, for content that comes back after another version
    replaced it (A, B, A). The name keeps the dataset and the file's stem readable and stays
    within Step Functions' 80 characters of ``[A-Za-z0-9_-]``.
    """
    etag = (source.get("etag") or "").strip('"')
    version = source.get("version_id") or ""
    parts = [source["bucket"], source["key"], etag or f"version:{version}"]
    if with_version:
        parts.append(f"version:{version}")
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:20]
    stem = source["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    readable = _UNSAFE.sub("-", f"{dataset}-{stem}").strip("-")
    room = MAX_NAME - len(digest) - 1
    return f"{readable[:room]}-{digest}"
