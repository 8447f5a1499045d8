"""S3 adapter: streaming reads, finished-file uploads, small JSON documents."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypedDict, cast

from boto3.s3.transfer import TransferConfig

from sluice.adapters.aws_errors import mapped, mapping_methods
from sluice.adapters.clients import client
from sluice.uris import s3_uri, split_uri

if TYPE_CHECKING:
    from datetime import datetime

    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# Parts of 16 MiB, at most 4 at a time: bounded memory for large uploads.
_TRANSFER = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=4)


class _Version(TypedDict, total=False):
    VersionId: str


def _version(version_id: str | None) -> _Version:
    return {"VersionId": version_id} if version_id and version_id != "null" else {}


@mapping_methods
class S3Store:
    """:class:`sluice.ports.ObjectStore` on Amazon S3 (throttling, 5xx, dropped connections: TransientError)."""

    def __init__(self) -> None:
        self._s3: S3Client = client("s3")

    def open(self, bucket: str, key: str, version_id: str | None = None) -> BinaryIO:
        """Stream the object with one GET (no seeks, no ranged re-reads)."""
        return _buffered(self._s3.get_object(Bucket=bucket, Key=key, **_version(version_id))["Body"])

    def open_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> BinaryIO:
        """Stream bytes ``[start, end)`` with one ranged GET (an empty range reads nothing)."""
        if end <= start:
            return cast(BinaryIO, io.BytesIO(b""))
        return _buffered(self._get_range(bucket, key, start, end, version_id))

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Mapping[str, Any]:
        """The object's metadata (``ContentLength``, ``ETag``, ``VersionId``)."""
        return cast(Mapping[str, Any], self._s3.head_object(Bucket=bucket, Key=key, **_version(version_id)))

    def read_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None = None) -> bytes:
        """Bytes ``[start, end)`` of the object."""
        return self._get_range(bucket, key, start, end, version_id).read() if end > start else b""

    def _get_range(self, bucket: str, key: str, start: int, end: int, version_id: str | None) -> StreamingBody:
        resp = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **_version(version_id))
        return resp["Body"]

    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        """Upload a finished local file (multipart above 16 MiB)."""
        extra = {"ContentType": content_type} if content_type else None
        self._s3.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=_TRANSFER)

    def copy(self, bucket: str, key: str, to_bucket: str, to_key: str) -> None:
        """Server-side copy (multipart copy above 16 MiB, so objects over 5 GB copy too)."""
        self._s3.copy({"Bucket": bucket, "Key": key}, to_bucket, to_key, Config=_TRANSFER)

    def put_json(self, bucket: str, key: str, document: Any) -> str:
        """Write `document` as JSON; returns its URI."""
        body = json.dumps(document, separators=(",", ":"), default=str).encode("utf-8")
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        return s3_uri(bucket, key)

    def get_json(self, uri: str) -> Any:
        """Read a JSON document."""
        bucket, key = split_uri(uri)
        return json.loads(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def list_keys(self, bucket: str, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        """``(key, size, last_modified)`` under `prefix`."""
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["Size"], obj["LastModified"]

    def delete_keys(self, bucket: str, keys: list[str]) -> int:
        """Delete `keys` in batches of 1000."""
        return self._delete(bucket, [{"Key": k} for k in keys])

    def version_ids(self, bucket: str, key: str) -> list[str]:
        """Version ids of `key`, newest first (S3's order); empty for an unversioned object."""
        ids = []
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            ids += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key and v["VersionId"] != "null"]
        return ids

    def list_versions(self, bucket: str, prefix: str) -> Iterator[tuple[str, str, bool, datetime]]:
        """``(key, version id, is latest, last modified)`` under `prefix` (S3's order: newest first per key)."""
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                yield v["Key"], v["VersionId"], bool(v["IsLatest"]), v["LastModified"]

    def delete_versions(self, bucket: str, versions: list[tuple[str, str]]) -> int:
        """Delete object versions in batches of 1000."""
        return self._delete(bucket, [{"Key": k, "VersionId": v} for k, v in versions])

    def _delete(self, bucket: str, objects: list[ObjectIdentifierTypeDef]) -> int:
        deleted = 0
        for i in range(0, len(objects), 1000):
            chunk = objects[i : i + 1000]
            resp = self._s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            deleted += len(chunk) - len(resp.get("Errors", []))
        return deleted


def _buffered(body: StreamingBody) -> BinaryIO:
    """`body` behind a 1 MiB buffer; a connection dropped while it streams raises TransientError."""
    return cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, _BodyReader(body)), buffer_size=1 << 20))


class _BodyReader(io.RawIOBase):
    """A raw reader over botocore's StreamingBody, so it can be buffered."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        with mapped():  # a connection reset or timed out mid-stream: the state machine retries
            data = self._body.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        self._body.close()
        super().close()
