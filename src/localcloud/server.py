"""moto's server app, in this process, on 127.0.0.1 and a free port, behind our middleware."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from localcloud import cfnmodels, motofixes

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_lock = threading.Lock()
_running: dict[str, MotoServer] = {}  # at most one entry: moto's state is per process
# moto's ASL engine logs every task failure (even caught ones) at ERROR with the whole state's repr.
_QUIET_LOGGERS = ("moto.stepfunctions.parser.asl.component.eval_component",)


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without one stderr line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Drop the access log."""


class MotoServer:
    """A threaded werkzeug server running moto's app wrapped by ``wrap``.

    moto keeps its backends in module globals and reads ``MOTO_PORT`` from the environment, so only
    one server may run per process; ``start`` refuses a second one. ``stop`` restores the moto
    configuration and ``MOTO_PORT`` it changed.
    """

    def __init__(self, wrap: Callable[[WSGIApp], WSGIApp], port: int = 0) -> None:
        self._wrap = wrap
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_port: str | None = None
        self._saved_config: dict[str, Any] | None = None
        self._saved_levels: dict[str, int] = {}

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_port)

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Bind, set ``MOTO_PORT``, reset moto's backends and serve in a daemon thread."""
        with _lock:
            if _running:
                raise RuntimeError("a local cloud is already running in this process (moto state is global)")
            _running["server"] = self
        try:
            motofixes.apply()
            cfnmodels.register()
            moto_app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                "127.0.0.1", self._port, self._wrap(moto_app), threaded=True, request_handler=_QuietHandler
            )
            for name in _QUIET_LOGGERS:
                self._saved_levels[name] = logging.getLogger(name).level
                logging.getLogger(name).setLevel(logging.CRITICAL)
            self._saved_port = os.environ.get("MOTO_PORT")
            # moto's ASL engine calls Lambda and other services at http://localhost:$MOTO_PORT.
            os.environ["MOTO_PORT"] = str(self.port)
            self._thread = threading.Thread(target=self._server.serve_forever, name="localcloud-server", daemon=True)
            self._thread.start()
            self.request("POST", "/moto-api/reset")
            self._saved_config = self.request("GET", "/moto-api/config")
        except BaseException:
            self.stop()
            raise

    def configure(self, config: dict[str, Any]) -> None:
        """``POST /moto-api/config`` (e.g. ``{"lambda": {"use_docker": False}}``)."""
        self.request("POST", "/moto-api/config", config)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send a JSON request to the server and decode its JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.endpoint}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        """Shut down, restore the moto config and ``MOTO_PORT``; idempotent."""
        if self._server is not None:
            if self._saved_config is not None:
                with contextlib.suppress(OSError):
                    self.configure(
                        {k: self._saved_config[k] for k in ("lambda", "stepfunctions") if k in self._saved_config}
                    )
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            if self._saved_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = self._saved_port
            self._server = None
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels = {}
        with _lock:
            if _running.get("server") is self:
                del _running["server"]


def detach_moto_pollers() -> int:
    """Stop moto from acting on event-source mappings itself; returns how many it had.

    With ``lambda.use_docker`` off, moto answers an SQS send to a mapped queue by "invoking" its echo
    backend and deleting the messages, and calls the function (via Docker) on every Kinesis put: it
    would steal or duplicate what the routers deliver. The mappings stay listed by the Lambda API.
    """
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.sqs.models import sqs_backends

    detached = 0
    for backends, attr in ((sqs_backends, "queues"), (kinesis_backends, "streams"), (dynamodb_backends, "tables")):
        for regions in backends.values():
            for backend in regions.values():
                for resource in getattr(backend, attr, {}).values():
                    mappings = getattr(resource, "lambda_event_source_mappings", None)
                    if mappings:
                        detached += len(mappings)
                        mappings.clear()
    return detached
