"""AWS failures mapped to the domain's errors: throttling, 5xx and dropped connections become TransientError.

The state machine retries ``TransientError`` (the Lambda error type is the class name, so the
mapped error is that class itself), so a throttled or reset S3 read in Transform is retried
instead of failing the run. The S3, runs-table, aggregates-table and Kinesis adapters map their
calls (botocore has retried them already). A managed upload's ``S3UploadFailedError`` is judged by
the ClientError it wraps. Everything else (AccessDenied, NoSuchKey, ValidationException) is
raised unchanged: retrying would not help; a failed condition (ConditionalCheckFailed) is an
answer the adapters turn into their result, not an error.
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from sluice.errors import TransientError

# Error codes AWS documents as retryable (throttling, a busy or failing service).
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "TransactionInProgressException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
# botocore's connection errors (refused, closed, reset mid-stream, timed out), urllib3's raised while
# a body streams, the OS's (ConnectionResetError, BrokenPipeError, ...).
_DROPPED = (
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ProtocolError,
    Urllib3Timeout,
    builtins.ConnectionError,
    builtins.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is an AWS failure worth retrying: throttling, a 5xx, a dropped or timed-out connection."""
    if isinstance(exc, S3UploadFailedError):  # boto3 raises it while handling the part's ClientError
        wrapped = exc.__cause__ or exc.__context__
        return wrapped is not None and is_transient(wrapped)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error.get("Code", "") in TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, _DROPPED)


def transient(exc: BaseException) -> TransientError:
    """The domain's TransientError for `exc`, to raise from it."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return TransientError(f"AWS {exc.operation_name}: {error.get('Code')} ({error.get('Message', '')}); retried")
    if isinstance(exc, S3UploadFailedError):
        return TransientError(f"{exc}; retried")
    return TransientError(f"AWS connection failed ({type(exc).__name__}: {exc}); retried")


@contextmanager
def mapped() -> Iterator[None]:
    """Raise transient AWS failures inside the block as TransientError; anything else unchanged."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise transient(exc) from exc


def mapping[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """`func` with transient AWS failures raised as TransientError (a generator's while it iterates)."""
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def iterate(*args: P.args, **kwargs: P.kwargs) -> Any:
            with mapped():
                yield from cast(Iterator[Any], func(*args, **kwargs))

        return cast(Callable[P, R], iterate)

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with mapped():
            return func(*args, **kwargs)

    return call


def mapping_methods[T](cls: type[T]) -> type[T]:
    """`cls` with :func:`mapping` applied to each of its public methods (an adapter's AWS calls)."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, mapping(member))
    return cls
