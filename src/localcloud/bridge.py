"""WSGI middleware in front of moto: Lambda Invoke runs our handlers, ``/_sluice/*`` drives the cloud.

Armed request faults (:class:`localcloud.faults.RequestFault`, for tests) answer a matching AWS
request with an error status, or cut its real answer short, before or instead of moto.

Every other request goes to moto under one lock: moto's backends are not thread-safe (two
concurrent Kinesis puts can get the same sequence number, two conditional DynamoDB writes can both
succeed), and handlers in several workers call them at once. Long polls (SQS ReceiveMessage) and
synchronous executions stay outside the lock, because they wait on other requests.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

from localcloud.faults import Fault, Faults, RequestFault
from localcloud.pool import FunctionPool, InvokeResult
from localcloud.server import WSGIApp

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<fn>[^/]+)/invocations/?$")
_UNLOCKED_TARGETS = ("AmazonSQS.ReceiveMessage", "AWSStepFunctions.StartSyncExecution")
StartResponse = Callable[..., Any]


class Control(Protocol):
    """What the middleware needs from the running local cloud."""

    def find_pool(self, name_or_arn: str) -> FunctionPool | None:
        """The pool of a deployed function by logical id, name, or (partial) ARN."""

    def describe(self) -> dict[str, Any]:
        """``{endpoint, resources, pid, stack, region}``."""

    def tick(self, at: datetime | None = None, detail: dict[str, Any] | None = None) -> list[InvokeResult]:
        """Fire every schedule (as if at `at`, with `detail` in the Scheduled Event)."""

    def wait_idle(self, timeout: float = 120, *, flush_windows: bool = True) -> None:
        """Block until nothing is in flight."""

    def flush_windows(self, timeout: float = 60) -> None:
        """Close open tumbling windows now."""

    def run_async(self, pool: FunctionPool, event: Any) -> None:
        """Invoke in the background (``InvocationType=Event``)."""

    @property
    def faults(self) -> Faults:
        """The armed faults."""


def _json_response(
    start_response: StartResponse, status: str, body: Any, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    return body


class Bridge:
    """The middleware (a WSGI app wrapping moto's)."""

    def __init__(self, app: WSGIApp, control: Control) -> None:
        self._app = app
        self._control = control
        self._moto_lock = threading.RLock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route one request."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        match = _INVOKE.match(path)
        if match and method == "POST":
            pool = self._control.find_pool(unquote(match["fn"]))
            if pool is not None:
                return self._invoke(pool, environ, start_response)
        if path.startswith("/_sluice/"):
            return self._route(path, method, environ, start_response)
        query = environ.get("QUERY_STRING", "")
        fault = self._control.faults.take_request(
            method, f"{path}?{query}" if query else path, ranged="HTTP_RANGE" in environ
        )
        if fault is not None:
            return self._faulted(fault, environ, start_response)
        return self._forward(environ, start_response)

    def _forward(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._needs_lock(environ):
            return self._app(environ, start_response)
        with self._moto_lock:
            return list(self._app(environ, start_response))

    def _faulted(self, fault: RequestFault, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """An error answer, or the real answer cut short (its Content-Length kept; werkzeug closes the connection)."""
        if fault.reset_after is not None:
            return [b"".join(self._forward(environ, start_response))[: fault.reset_after]]
        content_type, body = fault.error_body(json_protocol="HTTP_X_AMZ_TARGET" in environ)
        start_response(
            f"{fault.status} {HTTPStatus(fault.status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(body))), ("x-amzn-ErrorType", fault.code)],
        )
        return [body]

    def _needs_lock(self, environ: dict[str, Any]) -> bool:
        if environ.get("HTTP_X_AMZ_TARGET", "") in _UNLOCKED_TARGETS:
            return False
        if "Action=ReceiveMessage" in environ.get("QUERY_STRING", ""):
            return False
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            return b"Action=ReceiveMessage" not in body
        return True

    def _invoke(self, pool: FunctionPool, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        raw = _read_body(environ)
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return _json_response(
                start_response,
                "400 Bad Request",
                {"Type": "User", "message": f"Could not parse request body into json: {exc}"},
                [("x-amzn-ErrorType", "InvalidRequestContentException")],
            )
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if kind == "DryRun":
            start_response("204 No Content", [("Content-Length", "0")])
            return [b""]
        if kind == "Event":
            self._control.run_async(pool, event)
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        result = pool.invoke(event)
        headers = [("X-Amz-Executed-Version", "$LATEST"), ("x-amzn-RequestId", result.request_id)]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", result.function_error))
        if environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail":
            headers.append(("X-Amz-Log-Result", result.log_result_header()))
        return _json_response(start_response, "200 OK", result.payload, headers)

    def _route(self, path: str, method: str, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], tuple[str, Any]]] = {
            ("GET", "/_sluice/resources"): lambda body: ("200 OK", self._control.describe()),
            ("POST", "/_sluice/tick"): self._tick,
            ("POST", "/_sluice/wait-idle"): self._wait_idle,
            ("POST", "/_sluice/flush-windows"): self._flush,
            ("POST", "/_sluice/invoke"): self._invoke_route,
            ("GET", "/_sluice/faults"): self._faults_armed,
            ("POST", "/_sluice/faults"): self._arm_fault,
            ("DELETE", "/_sluice/faults"): self._clear_faults,
            ("POST", "/_sluice/request-faults"): self._arm_request_fault,
        }
        route = routes.get((method, path))
        if route is None:
            return _json_response(start_response, "404 Not Found", {"error": f"no route {method} {path}"})
        try:
            status, payload = route(json.loads(_read_body(environ) or b"{}"))
        except TimeoutError as exc:
            status, payload = "408 Request Timeout", {"error": str(exc)}
        except (ValueError, KeyError) as exc:
            status, payload = "400 Bad Request", {"error": str(exc)}
        return _json_response(start_response, status, payload)

    def _tick(self, body: dict[str, Any]) -> tuple[str, Any]:
        at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00")) if body.get("at") else None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        detail = body.get("detail")
        if detail is not None and not isinstance(detail, dict):
            return "400 Bad Request", {"error": "detail must be a JSON object"}
        return "200 OK", {"results": [r.to_json() for r in self._control.tick(at, detail)]}

    def _faults_armed(self, body: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", {"faults": [f.to_json() for f in self._control.faults.armed()]}

    def _arm_fault(self, body: dict[str, Any]) -> tuple[str, Any]:
        fault = Fault.from_json(body)
        pool = self._control.find_pool(fault.function)
        if pool is None:
            return "404 Not Found", {"error": f"no function {fault.function!r} in this stack"}
        fault.function = pool.spec.logical_id
        self._control.faults.arm(fault)
        return "200 OK", {"armed": fault.to_json()}

    def _arm_request_fault(self, body: dict[str, Any]) -> tuple[str, Any]:
        fault = RequestFault.from_json(body)
        self._control.faults.arm_request(fault)
        return "200 OK", {"armed": fault.to_json()}

    def _clear_faults(self, body: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", {"cleared": [f.to_json() for f in self._control.faults.clear()]}

    def _wait_idle(self, body: dict[str, Any]) -> tuple[str, Any]:
        self._control.wait_idle(float(body.get("timeout", 120)), flush_windows=bool(body.get("flush_windows", True)))
        return "200 OK", {"idle": True}

    def _flush(self, body: dict[str, Any]) -> tuple[str, Any]:
        self._control.flush_windows(float(body.get("timeout", 60)))
        return "200 OK", {"flushed": True}

    def _invoke_route(self, body: dict[str, Any]) -> tuple[str, Any]:
        pool = self._control.find_pool(str(body["function"]))
        if pool is None:
            return "404 Not Found", {"error": f"no function {body['function']!r} in this stack"}
        timeout = body.get("timeout")
        result = pool.invoke(body.get("event", {}), None if timeout is None else float(timeout))
        return "200 OK", result.to_json()
