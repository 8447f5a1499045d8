"""A warm Lambda worker: imports one handler and serves invocations over its stdin/stdout pipes.

Run as a script (``python [-S] .../localcloud/worker.py HANDLER``) so that, in ``build`` mode, nothing
but the code directory, the layers and the runtime directory is importable: this module uses the
standard library only and removes its own directory from ``sys.path``.

Frames are a 4-byte big-endian length followed by UTF-8 JSON. Request: ``{"id", "event",
"deadline_ms", "function_arn"}``; response: ``{"id", "error", "body"}`` where ``body`` is the JSON text
of the handler's return value, or of ``{"errorType", "errorMessage", "stackTrace"}`` when ``error``.
The handler's stdout and stderr (file descriptors 1 and 2) are the log pipe read by the parent; each
invocation is framed by Lambda's ``START``/``END``/``REPORT`` lines.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

_HEADER = struct.Struct(">I")


def write_frame(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON frame and flush."""
    data = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """Read one frame; ``None`` at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, request_id: str, function_arn: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = function_arn
        self.aws_request_id = request_id
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_body(exc: BaseException, error_type: str | None = None) -> str:
    """Lambda's error payload; the stack trace starts in the handler (this module's frames left out)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    body = {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_list(frames),
    }
    return json.dumps(body)


class _Handler:
    """Imports the handler on first use, as the Python runtime does at init (retried after a failure)."""

    def __init__(self, spec: str) -> None:
        self.module_name, _, self.attr = spec.rpartition(".")
        self.func: Callable[[Any, Any], Any] | None = None

    def load(self) -> Callable[[Any, Any], Any]:
        if self.func is None:
            try:
                module = importlib.import_module(self.module_name)
            except Exception as exc:
                sys.modules.pop(self.module_name, None)
                raise _InitError(
                    "Runtime.ImportModuleError", f"Unable to import module '{self.module_name}': {exc}"
                ) from exc
            func = getattr(module, self.attr, None)
            if not callable(func):
                raise _InitError(
                    "Runtime.HandlerNotFound", f"Handler '{self.attr}' missing on module '{self.module_name}'"
                )
            self.func = func
        return self.func


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _invoke(handler: _Handler, request: dict[str, Any]) -> tuple[bool, str]:
    request_id = str(request["id"])
    try:
        func = handler.load()
    except _InitError as exc:
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
        return True, _error_body(exc, exc.error_type)
    context = LambdaContext(request_id, str(request["function_arn"]), int(request["deadline_ms"]))
    try:
        result = func(request["event"], context)
    except Exception as exc:
        traceback.print_exc()
        return True, _error_body(exc)
    try:
        return False, json.dumps(result)
    except (TypeError, ValueError) as exc:
        return True, _error_body(exc, "Runtime.MarshalError")


def main(argv: list[str]) -> int:
    """Serve invocations until the parent closes stdin."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # handler prints go to the log pipe, never into the protocol
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    handler = _Handler(argv[1])
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    while (request := read_frame(proto_in)) is not None:
        request_id = str(request["id"])
        print(f"START RequestId: {request_id} Version: {version}", flush=True)
        started = time.monotonic()
        error, body = _invoke(handler, request)
        elapsed = (time.monotonic() - started) * 1000
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        print(f"REPORT RequestId: {request_id}\tDuration: {elapsed:.2f} ms", flush=True)
        write_frame(proto_out, {"id": request_id, "error": error, "body": body})
    return 0


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    code_dir = os.getcwd()
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    sys.exit(main(sys.argv))
