"""The header check: a file's header cells against its contract's columns (no pyarrow).

Validate checks headers before anything is converted, so this module stays free of the engine's
imports (pyarrow, numpy): importing it costs a cold start nothing. Columns are matched by name
under the contract's ``drift`` settings (:mod:`sluice.drift`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sluice.contracts import Contract
from sluice.drift import HeaderPlan, plan_header


def check_header(found: Sequence[str], contract: Contract, source_name: str) -> HeaderPlan:
    """Match the file's header with the contract's columns by name (:func:`sluice.drift.plan_header`).

    Raises
    ------
    InputRejectedError
        The message lists missing, unexpected and repeated columns, with the rule ``file.header``.

    """
    return plan_header(found, contract, source_name)
