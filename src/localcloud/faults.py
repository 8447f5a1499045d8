"""Injected faults: make a deployed function fail, lose its response, or run slowly - to test recovery.

A fault is armed through the control API (``POST /_sluice/faults``, ``RemoteCloud.inject_fault``)
and hits the next invocations of one function, however they arrive (the state machine, a queue
or stream poller, ``sluice invoke``):

- ``when="before"``: the handler does not run; the invocation fails with ``error`` (a crash, a
  throttle, a dependency down);
- ``when="after"``: the handler runs to the end, then the invocation fails anyway (the response
  was lost, or the function timed out after its side effects) - the hardest case for idempotency;
- ``delay``: the handler starts ``delay`` seconds late (with ``error=None``: just a slow function,
  e.g. to make an older run finish after a newer one).

``match`` restricts a fault to invocations whose event (as JSON) contains that text. Nothing in
the project's functions or layers knows about this: it lives in the local cloud only.

A :class:`RequestFault` (``POST /_sluice/request-faults``, ``RemoteCloud.inject_request_fault``)
hits the AWS requests themselves, whoever sends them (a function's boto3, a test): the request
is answered with an error status (``SlowDown`` 503 by default: S3 throttling) or, with
``reset_after``, with its real answer cut after that many body bytes and the connection closed
(a connection reset mid-stream). botocore retries the error statuses itself, so a fault meant to
reach the code must hit every attempt (``times`` = 1 + the client's ``max_attempts``, which counts
the retries only).
``DELETE /_sluice/faults`` disarms both kinds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast


def _construct[F](cls: type[F], data: dict[str, Any]) -> F:
    """``cls(**data)``, refusing unknown fields (and ``hits``, which the cloud counts)."""
    unknown = set(data) - {f.name for f in fields(cast(Any, cls)) if f.name != "hits"}
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    return cls(**data)


@dataclass
class Fault:
    """One armed fault."""

    function: str  # logical id
    error: str | None = "InjectedFault"  # the invocation's errorType (None: no failure, only `delay`)
    message: str = "fault injected by the local cloud"
    when: Literal["before", "after"] = "before"
    times: int = 1  # invocations it hits; 0 = until cleared
    delay: float = 0.0
    match: str = ""
    hits: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """A fault from the control API's body.

        Raises
        ------
        ValueError
            An unknown field or a bad value.

        """
        fault = _construct(cls, data)
        if fault.when not in ("before", "after") or fault.times < 0 or fault.delay < 0:
            raise ValueError(f"bad fault: {data}")
        return fault

    def failure(self) -> dict[str, Any]:
        """The error payload Lambda's Invoke returns for it."""
        return {"errorType": self.error, "errorMessage": self.message, "stackTrace": []}


@dataclass
class RequestFault:
    """One armed fault on AWS requests (not on function invocations)."""

    match: str  # text the request's ``METHOD /path?query`` must contain (an object key, say)
    method: str = "GET"
    ranged: bool | None = None  # True: only requests with a Range header; False: only without; None: any
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    reset_after: int | None = None  # answer for real, but cut the body after this many bytes (no error status)
    times: int = 1  # requests it hits; 0 = until cleared
    hits: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestFault:
        """A fault from the control API's body.

        Raises
        ------
        ValueError
            An unknown field or a bad value.

        """
        fault = _construct(cls, data)
        cut = fault.reset_after
        if not fault.match or fault.times < 0 or (cut is not None and cut < 0) or fault.status < 400:
            raise ValueError(f"bad request fault: {data}")
        return fault

    def hits_request(self, method: str, target: str, ranged: bool) -> bool:
        """Whether this fault applies to a ``method`` request for ``target`` (``/path?query``)."""
        return method == self.method.upper() and self.match in target and (self.ranged is None or self.ranged == ranged)

    def error_body(self, json_protocol: bool) -> tuple[str, bytes]:
        """Content type and body of the error answer (JSON for ``X-Amz-Target`` APIs, else S3's XML)."""
        if json_protocol:
            return "application/x-amz-json-1.0", json.dumps({"__type": self.code, "message": self.message}).encode()
        body = f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>"
        return "application/xml", f"<?xml version='1.0' encoding='UTF-8'?>{body}".encode()


class Faults:
    """The armed faults of a local cloud (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self._requests: list[RequestFault] = []

    def arm(self, fault: Fault) -> None:
        """Add `fault`."""
        with self._lock:
            self._armed.append(fault)

    def arm_request(self, fault: RequestFault) -> None:
        """Add a request fault."""
        with self._lock:
            self._requests.append(fault)

    def clear(self) -> list[Fault | RequestFault]:
        """Disarm every fault, of both kinds; returns them (with their hits)."""
        with self._lock:
            armed, self._armed = self._armed, []
            requests, self._requests = self._requests, []
        return [*armed, *requests]

    def armed(self) -> list[Fault | RequestFault]:
        """The faults still armed."""
        with self._lock:
            return [*self._armed, *self._requests]

    def take_request(self, method: str, target: str, ranged: bool) -> RequestFault | None:
        """The request fault a ``method`` request for ``target`` meets (counted as a hit), if any."""
        return self._take(self._requests, lambda f: f.hits_request(method, target, ranged))

    def take(self, function: str, event: Any) -> Fault | None:
        """The fault this invocation of `function` meets (counted as a hit), if any."""
        return self._take(
            self._armed,
            lambda f: f.function == function and (not f.match or f.match in json.dumps(event, default=str)),
        )

    def _take[F: (Fault, RequestFault)](self, armed: list[F], applies: Callable[[F], bool]) -> F | None:
        with self._lock:
            for fault in armed:
                if applies(fault):
                    fault.hits += 1
                    if fault.times and fault.hits >= fault.times:
                        armed.remove(fault)
                    return fault
        return None
