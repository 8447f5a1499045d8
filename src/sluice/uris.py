"""S3 URIs."""

from urllib.parse import urlparse


def s3_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def split_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")
