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
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal


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
        unknown = set(data) - {f for f in cls.__dataclass_fields__ if f != "hits"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**data)
        if fault.when not in ("before", "after") or fault.times < 0 or fault.delay < 0:
            raise ValueError(f"bad fault: {data}")
        return fault

    def failure(self) -> dict[str, Any]:
        """The error payload Lambda's Invoke returns for it."""
        return {"errorType": self.error, "errorMessage": self.message, "stackTrace": []}


class Faults:
    """The armed faults of a local cloud (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        """Add `fault`."""
        with self._lock:
            self._armed.append(fault)

    def clear(self) -> list[Fault]:
        """Disarm every fault; returns them (with their hits)."""
        with self._lock:
            armed, self._armed = self._armed, []
        return armed

    def armed(self) -> list[Fault]:
        """The faults still armed."""
        with self._lock:
            return list(self._armed)

    def take(self, function: str, event: Any) -> Fault | None:
        """The fault this invocation of `function` meets (counted as a hit), if any."""
        with self._lock:
            for fault in self._armed:
                if fault.function != function:
                    continue
                if fault.match and fault.match not in json.dumps(event, default=str):
                    continue
                fault.hits += 1
                if fault.times and fault.hits >= fault.times:
                    self._armed.remove(fault)
                return fault
        return None
