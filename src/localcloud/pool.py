"""Warm worker processes per function: spawn on demand, reuse, restart after a crash or timeout."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localcloud.faults import Faults
from localcloud.worker import read_frame, write_frame

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
LOG_TAIL_BYTES = 4096

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one deployed function's handler locally."""

    logical_id: str
    name: str
    arn: str
    handler: str
    timeout: int
    memory: int
    code_dir: Path
    command: tuple[str, ...]
    env: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class InvokeResult:
    """One invocation's outcome, as Lambda's Invoke API reports it."""

    payload: Any
    function_error: str | None
    logs_tail: str
    request_id: str = ""
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (for the control routes)."""
        return {
            "payload": self.payload,
            "function_error": self.function_error,
            "logs_tail": self.logs_tail,
            "request_id": self.request_id,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InvokeResult:
        """Inverse of ``to_json``."""
        return cls(
            data["payload"],
            data.get("function_error"),
            data.get("logs_tail", ""),
            data.get("request_id", ""),
            float(data.get("duration_ms", 0.0)),
        )

    def log_result_header(self) -> str:
        """Base64 of the last 4 KB of logs (``X-Amz-Log-Result``)."""
        return base64.b64encode(self.logs_tail.encode()[-LOG_TAIL_BYTES:]).decode()


class _Worker:
    """One subprocess running ``worker.py`` for one function."""

    def __init__(self, spec: FunctionSpec, log_file: IO[str], log_lock: threading.Lock, sink: EventSink) -> None:
        self.spec = spec
        self._log_file = log_file
        self._log_lock = log_lock
        self._sink = sink
        self._buffer: list[str] = []
        self._end_marker = ""
        self._ended = threading.Event()
        self.proc = subprocess.Popen(
            [*spec.command, str(WORKER_SCRIPT), spec.handler],
            cwd=spec.code_dir,
            env=spec.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._read_logs, daemon=True, name=f"logs-{spec.logical_id}-{self.proc.pid}"
        )
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read_logs(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace")
            with self._log_lock:
                if not self._log_file.closed:
                    self._log_file.write(line)
                    self._log_file.flush()
            self._buffer.append(line)
            self._sink("log", {"function": self.spec.logical_id, "line": line.rstrip("\n")})
            if self._end_marker and self._end_marker in line:
                self._ended.set()
        self._ended.set()

    def invoke(self, request_id: str, event: Any, timeout: float) -> tuple[str | None, str, str]:
        """Run one invocation: ``(error_type_or_None, body_json, logs)``; kills the worker on timeout."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._buffer = []
        self._ended.clear()
        self._end_marker = f"END RequestId: {request_id}"
        deadline_ms = int((time.time() + self.spec.timeout) * 1000)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            self.kill()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            write_frame(
                self.proc.stdin,
                {"id": request_id, "event": event, "deadline_ms": deadline_ms, "function_arn": self.spec.arn},
            )
            response = read_frame(self.proc.stdout)
        except (BrokenPipeError, OSError, ValueError):
            response = None
        finally:
            timer.cancel()
        if response is None:
            self.kill()
            self._ended.wait(2)
            if timed_out.is_set():
                error_type, message = "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"
            else:
                error_type = "Runtime.ExitError"
                message = f"Runtime exited with error: exit status {self.proc.returncode}"
            body = json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"})
            return "Unhandled", body, "".join(self._buffer)
        self._ended.wait(2)
        return ("Unhandled" if response["error"] else None), str(response["body"]), "".join(self._buffer)

    def kill(self) -> None:
        """Kill the worker's process group."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Ask the worker to exit (end of stdin), then kill it if it lingers."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class FunctionPool:
    """Up to ``size`` warm workers of one function."""

    def __init__(
        self, spec: FunctionSpec, size: int, log_path: Path, sink: EventSink, faults: Faults | None = None
    ) -> None:
        self.spec = spec
        self._faults = faults or Faults()
        self._size = max(1, size)
        self._sink = sink
        self._idle: deque[_Worker] = deque()
        self._all: set[_Worker] = set()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_path.open("a", encoding="utf-8")
        self._log_lock = threading.Lock()
        self.in_flight = 0

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("local cloud stopped")
                while self._idle:
                    worker = self._idle.popleft()
                    if worker.alive:
                        return worker
                    self._count -= 1
                    self._all.discard(worker)
                    worker.close()
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            worker = _Worker(self.spec, self._log_file, self._log_lock, self._sink)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._all.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
                self._all.discard(worker)
                worker.close()
            self._cond.notify()

    def invoke(self, event: Any, timeout: float | None = None) -> InvokeResult:
        """Run the handler with ``event`` in a warm worker (timeout: the function's, or less)."""
        limit = float(self.spec.timeout) if timeout is None else min(timeout, float(self.spec.timeout))
        request_id = str(uuid.uuid4())
        if not self.spec.code_dir.is_dir():
            module = self.spec.handler.rpartition(".")[0]
            missing = {
                "errorType": "Runtime.ImportModuleError",
                "errorMessage": f"Unable to import module '{module}': code directory "
                f"{self.spec.code_dir} does not exist",
                "stackTrace": [],
            }
            return InvokeResult(missing, "Unhandled", "", request_id)
        with self._cond:
            self.in_flight += 1
        self._sink("invoke", {"function": self.spec.logical_id, "request_id": request_id})
        started = time.monotonic()
        fault = self._faults.take(self.spec.logical_id, event)
        error: str | None
        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.error and fault.when == "before":
                error, body, logs = "Unhandled", "", "[local cloud] the handler did not run\n"
            else:
                worker = self._acquire()
                try:
                    error, body, logs = worker.invoke(request_id, event, limit)
                finally:
                    self._release(worker)
        finally:
            with self._cond:
                self.in_flight -= 1
        duration = (time.monotonic() - started) * 1000
        payload = json.loads(body) if body else None
        if fault is not None and fault.error:
            error, payload = "Unhandled", fault.failure()
            logs += f"[local cloud] invocation failed by an injected fault ({fault.when}): {fault.error}\n"
        self._sink(
            "invoked",
            {
                "function": self.spec.logical_id,
                "request_id": request_id,
                "error": error,
                "duration_ms": round(duration, 1),
            },
        )
        return InvokeResult(payload, error, logs[-LOG_TAIL_BYTES:], request_id, duration)

    def close(self) -> None:
        """Stop every worker; later invocations fail."""
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.close()
        with self._log_lock:
            self._log_file.close()
