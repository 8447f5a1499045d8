"""``RemoteCloud``: the ``LocalCloud`` API for a local cloud running in another process.

``spawn`` starts one (``python -m localcloud serve``) and owns it; ``attach`` finds one started by
``sluice local up`` through its state file. Both talk to its ``/_sluice/*`` routes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from localcloud import sdk
from localcloud.pool import InvokeResult
from localcloud.state import read_state, write_state


class RemoteCloud:
    """Handle on a running local cloud; same methods as ``LocalCloud`` once started."""

    def __init__(self, endpoint: str, *, process: subprocess.Popen[bytes] | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._process = process
        info = self._call("GET", "/_sluice/resources", timeout=10)
        self.resources: dict[str, str] = dict(info["resources"])
        self.region = str(info["region"])
        self.stack_name = str(info["stack"])
        self.pid = int(info["pid"])
        self.log_dir = Path(info.get("log_dir", ""))

    @classmethod
    def attach(cls, state_file: Path) -> RemoteCloud:
        """Connect to the local cloud that wrote ``state_file`` (``.sluice/local.json``)."""
        return cls(str(read_state(state_file)["endpoint"]))

    @classmethod
    def spawn(
        cls,
        project_root: Path,
        *,
        template: Path | None = None,
        stack_name: str = "sluice-local",
        region: str = "us-east-1",
        artifact: Literal["source", "build"] = "source",
        workers_per_function: int = 4,
        log_dir: Path | None = None,
        parameters: Mapping[str, str] | None = None,
        startup_timeout: float = 120,
    ) -> RemoteCloud:
        """Start ``python -m localcloud serve`` and wait until it is ready.

        Raises
        ------
        RuntimeError
            The process exited or was not ready within ``startup_timeout`` (its stderr is quoted).

        """
        scratch = Path(tempfile.mkdtemp(prefix="localcloud-"))
        state_file, err_file = scratch / "local.json", scratch / "stderr.log"
        cmd = [
            sys.executable,
            "-m",
            "localcloud",
            "serve",
            "--project-root",
            str(project_root),
            "--stack-name",
            stack_name,
            "--region",
            region,
            "--artifact",
            artifact,
            "--workers",
            str(workers_per_function),
            "--state-file",
            str(state_file),
        ]
        if template is not None:
            cmd += ["--template", str(template)]
        if log_dir is not None:
            cmd += ["--log-dir", str(log_dir)]
        for key, value in (parameters or {}).items():
            cmd += ["--parameter", f"{key}={value}"]
        with err_file.open("wb") as err:
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + startup_timeout
        while not state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                tail = err_file.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"local cloud did not start (exit {process.returncode}):\n{tail}")
            time.sleep(0.05)
        return cls(str(read_state(state_file)["endpoint"]), process=process)

    # ------------------------------------------------------------------ API (as LocalCloud)
    def sdk_env(self) -> dict[str, str]:
        """Environment for SDK clients: endpoint, dummy credentials, region."""
        return sdk.sdk_env(self.endpoint, self.region)

    def client(self, service: str) -> Any:
        """A boto3 client bound to the endpoint."""
        return sdk.client(self.endpoint, self.region, service)

    def invoke(self, function: str, event: Any, *, timeout: float = 900) -> InvokeResult:
        """Run ``function`` (logical id, name or ARN) in its warm worker.

        Raises
        ------
        KeyError
            The stack has no such function.

        """
        body = {"function": function, "event": event, "timeout": timeout}
        return InvokeResult.from_json(self._call("POST", "/_sluice/invoke", body, timeout=timeout + 30))

    def tick(self, at: datetime | None = None, detail: dict[str, Any] | None = None) -> list[InvokeResult]:
        """Fire every schedule once, as if at `at` (the Scheduled Event's ``time``; default now), with `detail`."""
        body: dict[str, Any] = {"at": at.isoformat()} if at is not None else {}
        if detail is not None:
            body["detail"] = detail
        results = self._call("POST", "/_sluice/tick", body, timeout=960)["results"]
        return [InvokeResult.from_json(r) for r in results]

    def inject_fault(self, function: str, **fault: Any) -> dict[str, Any]:
        """Arm a fault on `function` (see ``localcloud.faults.Fault`` for the fields); returns it."""
        armed: dict[str, Any] = self._call("POST", "/_sluice/faults", {"function": function, **fault}, timeout=10)
        return dict(armed["armed"])

    def inject_request_fault(self, match: str, **fault: Any) -> dict[str, Any]:
        """Arm a fault on AWS requests containing `match` (see ``localcloud.faults.RequestFault``); returns it."""
        armed: dict[str, Any] = self._call("POST", "/_sluice/request-faults", {"match": match, **fault}, timeout=10)
        return dict(armed["armed"])

    def clear_faults(self) -> list[dict[str, Any]]:
        """Disarm every fault (of functions and of requests); returns them with how often each hit."""
        return list(self._call("DELETE", "/_sluice/faults", {}, timeout=10)["cleared"])

    def wait_idle(self, timeout: float = 120, *, flush_windows: bool = True) -> None:
        """Block until the cloud is idle (see ``LocalCloud.wait_idle``).

        Raises
        ------
        TimeoutError
            Still busy after ``timeout`` seconds.

        """
        self._call(
            "POST", "/_sluice/wait-idle", {"timeout": timeout, "flush_windows": flush_windows}, timeout=timeout + 30
        )

    def flush_windows(self, timeout: float = 60) -> None:
        """Close open Kinesis tumbling windows now."""
        self._call("POST", "/_sluice/flush-windows", {"timeout": timeout}, timeout=timeout + 30)

    def describe(self) -> dict[str, Any]:
        """``{endpoint, resources, pid, stack, region, ...}`` as the running cloud reports it."""
        info: dict[str, Any] = self._call("GET", "/_sluice/resources", timeout=10)
        return info

    def write_state(self, path: Path) -> None:
        """Write the running cloud's description to ``path``."""
        write_state(path, self.describe())

    @staticmethod
    def read_state(path: Path) -> dict[str, Any]:
        """Read a state file."""
        return read_state(path)

    def stop(self) -> None:
        """Stop the process if this handle spawned it (SIGTERM, then SIGKILL after 30 s); idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RemoteCloud:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ transport
    def _call(self, method: str, path: str, body: Any = None, *, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", str(exc))
            if exc.code == 408:
                raise TimeoutError(detail) from None
            if exc.code == 404 and path == "/_sluice/invoke":
                raise KeyError(detail) from None
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
