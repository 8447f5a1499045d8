"""Run identity: the execution name, derived only from the source object (and the attempt)."""

import hashlib
import re

from sluice.errors import SluiceError
from sluice.pipeline.payloads import SourceObject

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
MAX_NAME = 80


class InvalidRunIdError(SluiceError):
    """A payload's run id is not one sluice makes: it is never used for a path or an S3 key."""


def checked(run_id: object) -> str:
    """`run_id` if it has the shape :func:`run_id_for` gives (1-80 of ``[A-Za-z0-9_-]``).

    Paths under ``/tmp`` and S3 keys are derived from run ids; a payload cannot smuggle in
    ``../`` or ``/`` through one.

    Raises
    ------
    InvalidRunIdError
        It has another shape.

    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise InvalidRunIdError(f"run id {str(run_id)[:100]!r} is not 1-80 characters of A-Z, a-z, 0-9, _ and -")
    return run_id


def upload_identity(source: SourceObject) -> str:
    """What tells one upload of a key from another: version id, else S3's event sequencer, else ETag."""
    version = source.get("version_id")
    if version and version != "null":
        return f"version:{version}"
    if source.get("sequencer"):
        return f"sequencer:{source['sequencer']}"
    return f"etag:{(source.get('etag') or '').strip(chr(34))}"


def run_id_for(dataset: str, source: SourceObject, *, attempt: int = 1) -> str:
    """Deterministic Step Functions execution name for one upload of a raw object.

    The identity is bucket, key and the upload (:func:`upload_identity`): the same event
    delivered twice, or late, hits ``ExecutionAlreadyExists`` instead of starting a second run,
    and every new upload of the key - new content, or the same bytes dropped again after a
    failed run - is a new run. `attempt` > 1 names a rerun of the same upload (``sluice
    rerun``). The name keeps the dataset and the file's stem readable and stays within Step
    Functions' 80 characters of ``[A-Za-z0-9_-]``.
    """
    parts = [source["bucket"], source["key"], upload_identity(source)]
    if attempt > 1:
        parts.append(f"attempt:{attempt}")
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:20]
    stem = source["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    readable = _UNSAFE.sub("-", f"{dataset}-{stem}").strip("-")
    room = MAX_NAME - len(digest) - 1
    return f"{readable[:room]}-{digest}"
