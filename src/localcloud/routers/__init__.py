"""Background pollers doing what Lambda's event-source mappings and EventBridge do on AWS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from localcloud.pool import InvokeResult

Emit = Callable[[str, dict[str, Any]], None]
Invoke = Callable[[Any], InvokeResult]
ClientFactory = Callable[[str], Any]


class Router:
    """A stoppable daemon thread running ``run``; ``busy`` says why it is not idle."""

    name = "router"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self.run, name=f"localcloud-{self.name}", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """The polling loop; returns when ``stopping``."""
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stopped."""
        return self._stop.wait(seconds)

    def stop(self, timeout: float = 10) -> None:
        """Ask the thread to end and wait for it (an invocation in progress is waited for up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def busy(self, since: float) -> list[str]:
        """Reasons this router is not idle (``since``: monotonic time the idle check started)."""
        return []
