"""Run identity: the execution name, derived only from the source object."""

import hashlib
import re

from sluice.payloads import SourceObject

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 80


def run_id_for(dataset: str, source: SourceObject) -> str:
    """Deterministic Step Functions execution name for one version of a raw object.

    Same bucket/key/version (etag when unversioned) gives the same name, so a duplicate event
    hits ``ExecutionAlreadyExists`` instead of starting a second run. A new version is a new run.
    The name keeps the dataset and the file's stem readable and stays within 80 characters of
    ``[A-Za-z0-9_-]``.
    """
    identity = "\n".join(
        [source["bucket"], source["key"], source.get("version_id") or "", source.get("etag") or ""]
    )
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]
    stem = source["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    readable = _UNSAFE.sub("-", f"{dataset}-{stem}").strip("-")
    room = MAX_NAME - len(digest) - 1
    return f"{readable[:room]}-{digest}"
