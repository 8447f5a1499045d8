"""``LocalCloud``: moto + our handlers + the routing AWS would do, deployed from template.yaml."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from localcloud import postdeploy, sdk
from localcloud.bridge import Bridge
from localcloud.deploy import Deployment, deploy
from localcloud.faults import Faults
from localcloud.pool import FunctionPool, InvokeResult
from localcloud.routers import Router
from localcloud.routers.kinesis import KinesisMapping, KinesisRouter
from localcloud.routers.schedule import ScheduleRouter
from localcloud.routers.sqs import SqsRouter
from localcloud.runtime import Artifact, Layout, function_spec
from localcloud.server import MotoServer, WSGIApp, detach_moto_pollers
from localcloud.state import read_state, write_state

log = logging.getLogger("localcloud")
OnEvent = Callable[[str, dict[str, Any]], None]


def function_name_of(ref: str) -> str:
    """``name`` from a function name, full or partial ARN, with or without a qualifier."""
    if ":function:" in ref:
        ref = ref.split(":function:", 1)[1]
    return ref.split(":", 1)[0]


class LocalCloud:
    """An embedded AWS for sluice: moto server, template deployed, real handlers, event routing.

    moto's state is global to a process: run one ``LocalCloud`` per process, and not in a process
    that also uses ``moto.mock_aws`` (which resets every backend). Tests use the ``local_cloud``
    fixture, which runs it in a subprocess.
    """

    def __init__(
        self,
        project_root: Path,
        *,
        port: int = 0,
        stack_name: str = "sluice-local",
        region: str = "us-east-1",
        artifact: Artifact = "source",
        workers_per_function: int = 4,
        log_dir: Path | None = None,
        on_event: OnEvent | None = None,
        template: Path | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.template = Path(template).resolve() if template else self.project_root / "template.yaml"
        self.stack_name = stack_name
        self.region = region
        self.artifact: Artifact = artifact
        self.workers_per_function = workers_per_function
        self.log_dir = Path(log_dir) if log_dir else self.project_root / ".sluice" / "logs"
        self.parameters = dict(parameters or {})
        self.resources: dict[str, str] = {}
        self.startup_seconds = 0.0
        self._port = port
        self._on_event = on_event
        self._server: MotoServer | None = None
        self._deployment: Deployment | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._by_name: dict[str, str] = {}
        self._roles: dict[str, str] = {}
        self._routers: list[Router] = []
        self._schedule: ScheduleRouter | None = None
        self.faults = Faults()
        self._async = 0
        self._async_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCloud:
        """Serve on 127.0.0.1, deploy the template, start the routers."""
        started = time.monotonic()
        layout = Layout(self.project_root, self.template.parent, self.artifact)

        def wrap(app: WSGIApp) -> WSGIApp:
            return Bridge(app, self)

        self._server = MotoServer(wrap, self._port)
        self._server.start()
        try:
            server = self._server
            server.configure({"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": False}})
            dep = deploy(
                self.client,
                self.template,
                stack_name=self.stack_name,
                region=self.region,
                parameters=self.parameters,
                enable_asl=lambda: server.configure({"stepfunctions": {"execute_state_machine": True}}),
            )
            postdeploy.apply(self.client, dep, self._emit)
            self._deployment = dep
            self.resources = {k: v for k, v in dep.resources.items() if v}
            self._start_functions(dep, layout)
            self._start_routers(dep)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._emit("ready", {"endpoint": self.endpoint, "seconds": round(self.startup_seconds, 2)})
        return self

    def _start_functions(self, dep: Deployment, layout: Layout) -> None:
        lam = self.client("lambda")
        env = self.sdk_env()
        for lid, fn in dep.functions.items():
            config = lam.get_function_configuration(FunctionName=fn.name)
            spec = function_spec(fn, config, layout, env)
            log = self.log_dir / f"{lid}.log"
            self._pools[lid] = FunctionPool(spec, self.workers_per_function, log, self._emit, self.faults)
            self._by_name[fn.name] = lid
            self._roles[lid] = str(config.get("Role", ""))

    def _start_routers(self, dep: Deployment) -> None:
        detach_moto_pollers()
        lam = self.client("lambda")
        for page in lam.get_paginator("list_event_source_mappings").paginate():
            for esm in page["EventSourceMappings"]:
                lid = self._logical_id(str(esm.get("FunctionArn", "")))
                if lid is None or esm.get("State", "Enabled") != "Enabled":
                    continue
                source = str(esm.get("EventSourceArn", ""))
                invoke = self._pools[lid].invoke
                router: Router
                if source.startswith("arn:aws:sqs:"):
                    router = SqsRouter(esm, lid, invoke, client=self.client, region=self.region, emit=self._emit)
                elif source.startswith("arn:aws:kinesis:"):
                    mapping = KinesisMapping.from_esm(esm, self._roles.get(lid, ""))
                    router = KinesisRouter(
                        mapping, lid, invoke, client=self.client, region=self.region, emit=self._emit
                    )
                else:
                    self._emit("router.unsupported", {"function": lid, "source": source})
                    continue
                router.start()
                self._routers.append(router)
        self._schedule = ScheduleRouter(self.client, self.find_pool, self.region, dep.account)

    def stop(self) -> None:
        """Stop routers, workers and the server; idempotent."""
        routers, self._routers = self._routers, []
        for router in routers:
            router.stop(timeout=0)
        for router in routers:
            router.stop(timeout=5)
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalCloud:
        return self if self._server is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ access
    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("local cloud not started")
        return self._server.endpoint

    def sdk_env(self) -> dict[str, str]:
        """Environment for SDK clients in other processes: endpoint, dummy credentials, region."""
        return sdk.sdk_env(self.endpoint, self.region)

    def client(self, service: str) -> Any:
        """A boto3 client bound to the local endpoint."""
        return sdk.client(self.endpoint, self.region, service)

    def _logical_id(self, ref: str) -> str | None:
        if ref in self._pools:
            return ref
        return self._by_name.get(function_name_of(ref))

    def find_pool(self, name_or_arn: str) -> FunctionPool | None:
        """The pool of a deployed function (logical id, name or ARN)."""
        lid = self._logical_id(name_or_arn)
        return None if lid is None else self._pools.get(lid)

    def invoke(self, function: str, event: Any, *, timeout: float = 900) -> InvokeResult:
        """Run ``function`` (logical id, name or ARN) on ``event`` in its warm worker.

        Raises
        ------
        KeyError
            The stack has no such function.

        """
        pool = self.find_pool(function)
        if pool is None:
            raise KeyError(f"no function {function!r} in stack {self.stack_name} (known: {sorted(self._pools)})")
        return pool.invoke(event, timeout)

    def run_async(self, pool: FunctionPool, event: Any) -> None:
        """``InvocationType=Event``: run in the background (no retries), counted by ``wait_idle``."""
        with self._async_lock:
            self._async += 1

        def run() -> None:
            try:
                pool.invoke(event)
            finally:
                with self._async_lock:
                    self._async -= 1

        threading.Thread(target=run, daemon=True, name=f"async-{pool.spec.logical_id}").start()

    def tick(self, at: datetime | None = None, detail: dict[str, Any] | None = None) -> list[InvokeResult]:
        """Fire every schedule (EventBridge rule with a schedule expression) with a real Scheduled Event.

        `at` is the event's ``time``: the scheduled functions act as if it were then. `detail`
        replaces the event's empty ``detail`` (e.g. ``{"dry_run": true}`` for the cleanup).
        """
        if self._schedule is None:
            raise RuntimeError("local cloud not started")
        return self._schedule.tick(at, detail)

    # ------------------------------------------------------------------ idleness
    def flush_windows(self, timeout: float = 60) -> None:
        """Close every open Kinesis tumbling window now (final invoke, ``isWindowTerminatedEarly``)."""
        problems = [p for r in self._routers if isinstance(r, KinesisRouter) for p in r.flush(timeout)]
        if problems:
            raise TimeoutError(f"tumbling windows not closed: {'; '.join(problems)}")

    def wait_idle(self, timeout: float = 120, *, flush_windows: bool = True) -> None:
        """Block until nothing is queued, in flight or running, then close open windows and wait again.

        Idle means: no message visible, in flight or delayed in a mapped queue, no RUNNING execution,
        every Kinesis poller caught up, no invocation running. ``flush_windows`` closes open
        tumbling windows once idle (final invocations with ``isWindowTerminatedEarly``).

        Raises
        ------
        TimeoutError
            Still busy after ``timeout`` seconds; the message says with what.

        """
        deadline = time.monotonic() + timeout
        self._wait_quiet(deadline, timeout)
        if flush_windows and any(isinstance(r, KinesisRouter) for r in self._routers):
            self.flush_windows(max(0.1, deadline - time.monotonic()))
            self._wait_quiet(deadline, timeout)

    def _wait_quiet(self, deadline: float, timeout: float) -> None:
        quiet_rounds = 0
        while quiet_rounds < 2:
            since = time.monotonic()
            time.sleep(0.25)
            reasons = self.busy(since)
            if not reasons:
                quiet_rounds += 1
                continue
            quiet_rounds = 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"local cloud still busy after {timeout} s: {'; '.join(reasons)}")

    def busy(self, since: float | None = None) -> list[str]:
        """Why the cloud is not idle (empty list: idle)."""
        since = time.monotonic() if since is None else since
        reasons = [
            f"{lid}: {pool.in_flight} invocation(s) running" for lid, pool in self._pools.items() if pool.in_flight
        ]
        if self._async:
            reasons.append(f"{self._async} asynchronous invocation(s) running")
        for router in self._routers:
            reasons += router.busy(since)
        sfn = self.client("stepfunctions")
        for lid, kind in self._deployment.types.items() if self._deployment else []:
            if kind == "AWS::StepFunctions::StateMachine" and lid in self.resources:
                running = sfn.list_executions(stateMachineArn=self.resources[lid], statusFilter="RUNNING")
                names = [e["name"] for e in running["executions"]]
                if names:
                    reasons.append(f"{lid}: {len(names)} execution(s) running ({', '.join(names[:3])})")
        return reasons

    # ------------------------------------------------------------------ state
    def describe(self) -> dict[str, Any]:
        """``{endpoint, resources, pid, stack, region, artifact, log_dir}``."""
        return {
            "endpoint": self.endpoint,
            "resources": dict(self.resources),
            "pid": os.getpid(),
            "stack": self.stack_name,
            "region": self.region,
            "artifact": self.artifact,
            "log_dir": str(self.log_dir),
        }

    def write_state(self, path: Path) -> None:
        """Write ``describe()`` to ``path`` (``.sluice/local.json``) for CLI commands in other processes."""
        write_state(path, self.describe())

    @staticmethod
    def read_state(path: Path) -> dict[str, Any]:
        """Read what ``write_state`` wrote."""
        return read_state(path)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        log.debug("%s %s", kind, data)
        if self._on_event is not None:
            try:
                self._on_event(kind, data)
            except Exception:
                log.exception("on_event callback failed for %s", kind)
