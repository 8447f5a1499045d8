"""``.sluice/local.json``: how other processes find a running local cloud."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_STATE_FILE = Path(".sluice") / "local.json"


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(path: Path) -> dict[str, Any]:
    """The state written by ``write_state``.

    Raises
    ------
    FileNotFoundError
        No local cloud wrote ``path`` (start one with ``sluice local up``).

    """
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: is a local cloud running? (sluice local up)") from None
    return data


def process_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
