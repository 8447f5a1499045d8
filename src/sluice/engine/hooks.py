"""The per-batch pandas hook a contract may name (``transform: module:function``).

The function gets each batch of valid rows as a DataFrame (Arrow-backed dtypes,
``pd.ArrowDtype``, so values round-trip exactly; the index is the row position 0..n-1) and
returns a DataFrame. It may add columns (appended after the contract's columns, types fixed
by the first batch) and change values, but the contract's columns must stay castable to their
types. It may drop rows: dropped rows are quarantined under rule ``row.transform``, which is
why the index must be kept (filter with ``df[mask]``, do not ``reset_index``). It runs once per
batch, so memory stays bounded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from sluice.contracts import Contract
from sluice.errors import ContractError, InputRejectedError

BatchHook = Callable[[pd.DataFrame], pd.DataFrame]


def load_hook(spec: str, contract: Contract) -> BatchHook:
    """Import ``module:function``.

    Raises
    ------
    ContractError
        The spec is malformed, or the module or function cannot be found.

    """
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ContractError(f"contract {contract.label}: transform {spec!r} must look like module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ContractError(
            f"contract {contract.label}: cannot import transform module {module_name!r}: {exc}"
        ) from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ContractError(f"contract {contract.label}: {module_name!r} has no function {func_name!r}")
    hook: BatchHook = fn
    return hook


class HookRunner:
    """Run the hook on typed batches and bring its output back to a stable Arrow schema."""

    def __init__(self, spec: str, contract: Contract, contract_schema: pa.Schema, source_name: str) -> None:
        self._spec = spec
        self._fn = load_hook(spec, contract)
        self._contract = contract
        self._schema = contract_schema
        self._source = source_name
        self.extra: pa.Schema | None = None

    def _fail(self, line: int, what: str) -> InputRejectedError:
        return InputRejectedError(
            f"{self._source} (batch from line {line}): transform hook {self._spec} of contract "
            f"{self._contract.label} {what}"
        )

    def __call__(self, table: pa.Table, first_line: int) -> tuple[pa.Table, np.ndarray]:
        """The hook's output and the positions (in `table`) of the rows it dropped."""
        n = table.num_rows
        df = table.to_pandas(types_mapper=pd.ArrowDtype)
        df.index = pd.RangeIndex(n)
        try:
            out = self._fn(df)
        except Exception as exc:  # the hook is user code: any failure is reported, not crashed on
            raise self._fail(first_line, f"raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, pd.DataFrame):
            raise self._fail(first_line, f"returned {type(out).__name__}, not a DataFrame")
        dropped = self._dropped(out, n, first_line)
        missing = [c for c in self._schema.names if c not in out.columns]
        if missing:
            raise self._fail(first_line, f"removed contract column(s) {', '.join(missing)}")
        result = pa.Table.from_pandas(out, preserve_index=False)
        arrays: list[pa.Array | pa.ChunkedArray] = []
        for f in self._schema:
            try:
                arrays.append(result.column(f.name).cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise self._fail(first_line, f"left column {f.name!r} not castable to {f.type}: {exc}") from exc
        extras = [c for c in result.column_names if c not in self._schema.names]
        if self.extra is None:
            self.extra = pa.schema([result.schema.field(c) for c in extras])
        elif extras != self.extra.names:
            raise self._fail(first_line, f"added columns {extras}, but the first batch added {self.extra.names}")
        for f in self.extra:
            try:
                arrays.append(result.column(f.name).cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise self._fail(first_line, f"changed the type of added column {f.name!r}: {exc}") from exc
        schema = pa.schema([*self._schema, *self.extra])
        return pa.Table.from_arrays(arrays, schema=schema), dropped

    def _dropped(self, out: pd.DataFrame, n: int, line: int) -> np.ndarray:
        if len(out) == n and out.index.equals(pd.RangeIndex(n)):
            return np.zeros(0, dtype=np.int64)
        try:
            kept = np.asarray(out.index, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise self._fail(line, "replaced the row index; keep it so dropped rows can be quarantined") from exc
        if len(np.unique(kept)) != len(kept) or (len(kept) and (kept.min() < 0 or kept.max() >= n)):
            raise self._fail(line, "added or duplicated rows (index labels outside the batch); it may only drop rows")
        return np.setdiff1d(np.arange(n, dtype=np.int64), kept)
