"""The header check: a file's header cells against its contract's columns (no pyarrow).

Validate checks headers before anything is converted, so this module stays free of the engine's
imports (pyarrow, numpy): importing it costs a cold start nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sluice.contracts import Contract
from sluice.errors import InputRejectedError


def _printable_name(name: str) -> str:
    return json.dumps(name.strip(), ensure_ascii=False)


def check_header(found: Sequence[str], contract: Contract, source_name: str) -> None:
    """Compare the file's header with the contract's columns (names trimmed, order significant).

    Raises
    ------
    InputRejectedError
        The message lists missing, unexpected and misordered columns.

    """
    got = [c.strip() for c in found]
    want = [c.header_name.strip() for c in contract.columns]
    if got == want:
        return
    missing = [w for w in want if w not in got]
    unexpected = [g for g in got if g not in want]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(map(_printable_name, missing)))
    if unexpected:
        problems.append("unexpected " + ", ".join(map(_printable_name, unexpected)))
    if not missing and not unexpected:
        if len(got) != len(want):
            problems.append(f"{len(got)} columns where the contract has {len(want)} (repeated names)")
        else:
            wrong = [
                f"column {i + 1} is {_printable_name(g)}, expected {_printable_name(w)}"
                for i, (g, w) in enumerate(zip(got, want, strict=True))
                if g != w
            ]
            problems.append("misordered: " + "; ".join(wrong[:10]))
    raise InputRejectedError(
        f"{source_name} line {contract.dialect.skip_rows + 1}: the header does not match contract {contract.label} "
        f"(rule file.header): "
        f"{'; '.join(problems)}. Expected {len(want)} columns: {', '.join(map(_printable_name, want))}. "
        f"Fix the file, or the contract (columns[].source maps a header name to a column)"
    )
