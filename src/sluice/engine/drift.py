"""Schema drift: a file's header matched to the contract's columns by name, and contract versions compared.

Columns are matched by name, never by position: a reordered header is always accepted. The
contract's ``drift`` settings say whether names match ignoring case, what happens to columns the
contract does not name (reject the file, drop them, keep them as text) and to optional columns the
file lacks (reject the file, or NULL). :func:`compatibility` refuses a contract version that would
make files written under the previous one unreadable together with the new ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.contracts import _DECIMAL, Column, Contract
from sluice.errors import InputRejectedError

if TYPE_CHECKING:  # the header plan is made without pyarrow (Validate's cold start); only shape() needs it
    import pyarrow as pa

_DROPPED = "\x00dropped-"  # parse name of a dropped column (never a contract column's name)


def _shown(name: str) -> str:
    return json.dumps(name.strip(), ensure_ascii=False)


@dataclass(frozen=True)
class HeaderPlan:
    """How a file's columns become the run's columns."""

    contract: Contract  # the run's contract: the dataset's, plus kept extra columns (optional text)
    parse_names: tuple[str, ...]  # one name per column of the file, in file order, for the CSV parser
    missing: tuple[str, ...] = ()  # optional columns the file lacks, loaded as NULL
    dropped: tuple[str, ...] = ()  # header names of dropped columns
    kept: tuple[str, ...] = ()  # names of the extra columns kept as text
    identity: bool = True  # the file's columns are the contract's, in order: nothing to reshape

    def shape(self, table: pa.Table) -> pa.Table:
        """Parsed text columns (named :attr:`parse_names`) as the run contract's columns, in its order."""
        if self.identity:
            return table
        import pyarrow as pa

        n = table.num_rows
        present = set(table.column_names)
        columns = [table.column(c) if c in present else pa.nulls(n, pa.string()) for c in self.contract.column_names]
        return pa.Table.from_arrays(columns, names=list(self.contract.column_names))


def same_header(contract: Contract) -> HeaderPlan:
    """The plan of a file whose columns are the contract's, in order (or a file without header)."""
    return HeaderPlan(contract, contract.column_names)


def plan_header(found: Sequence[str], contract: Contract, source_name: str) -> HeaderPlan:
    """Match the file's header `found` with the contract's columns by name (see module doc).

    Raises
    ------
    InputRejectedError
        A required column is missing, or a column is missing or extra where the contract's
        ``drift`` policy rejects it, or a header name is repeated; the message lists them all.

    """
    drift = contract.drift

    def key(name: str) -> str:
        name = name.strip()
        return name.casefold() if drift.case_insensitive else name

    wanted: dict[str, list[Column]] = {}
    for c in contract.columns:
        wanted.setdefault(key(c.header_name), []).append(c)
    # a name the contract lists n times (columns[].source) matches its first n occurrences, in order
    claim = {k: list(cs) for k, cs in wanted.items()}
    matched: list[Column | None] = [claim[k].pop(0) if claim.get(k) else None for k in map(key, found)]
    missing = [c for cs in claim.values() for c in cs]
    extras = [(i, g) for i, (g, m) in enumerate(zip(found, matched, strict=True)) if m is None]
    repeated = sorted({key(g) for _, g in extras if key(g) in wanted})
    extras = [(i, g) for i, g in extras if key(g) not in wanted]
    problems = []
    if repeated:
        problems.append("repeated " + ", ".join(map(_shown, repeated)))
    required = [c for c in missing if c.required or drift.missing_columns == "reject"]
    if required:
        problems.append("missing " + ", ".join(_shown(c.header_name) for c in required))
    if extras and drift.extra_columns == "reject":
        problems.append("unexpected " + ", ".join(_shown(g) for _, g in extras))
    if problems:
        want = [c.header_name for c in contract.columns]
        raise InputRejectedError(
            f"{source_name} line {contract.dialect.skip_rows + 1}: the header does not match contract "
            f"{contract.label} (rule file.header): {'; '.join(problems)}. Expected {len(want)} columns "
            f"(in any order): {', '.join(map(_shown, want))}. Fix the file, or the contract "
            "(columns[].source maps a header name to a column; `drift` accepts extra columns, missing "
            "optional ones, other letter case)"
        )
    names: list[str] = []
    taken = set(contract.column_names) | {p.name for p in contract.partition}
    kept: list[str] = []
    for i, (g, column) in enumerate(zip(found, matched, strict=True)):
        if column is not None:
            names.append(column.name)
        elif drift.extra_columns == "drop":
            names.append(f"{_DROPPED}{i}")
        else:
            name = g.strip() or f"column_{i + 1}"
            while name in taken:
                name = f"{name}_{i + 1}"
            taken.add(name)
            kept.append(name)
            names.append(name)
    run_contract = contract
    if kept:
        data = contract.model_dump(by_alias=True, exclude_defaults=True)
        data["columns"] = [*data["columns"], *({"name": n, "type": "string"} for n in kept)]
        run_contract = Contract.model_validate(data)
    identity = tuple(names) == contract.column_names
    return HeaderPlan(
        run_contract,
        tuple(names),
        missing=tuple(c.name for c in missing),
        dropped=tuple(g for _, g in extras) if drift.extra_columns == "drop" else (),
        kept=tuple(kept),
        identity=identity,
    )


# ------------------------------------------------------------------------------- contract versions
def _digits(column_type: str) -> tuple[int, int] | None:
    """(integer digits, scale) of a decimal type, else None."""
    m = _DECIMAL.match(column_type)
    return (int(m.group(1)) - int(m.group(2)), int(m.group(2))) if m else None


def _widens(old: str, new: str) -> bool:
    """Whether every value of type `old` is a value of type `new`, stored so that readers merge both."""
    if old == new:
        return True
    a, b = _digits(old), _digits(new)
    if a is not None and b is not None:
        return b[0] >= a[0] and b[1] >= a[1]
    return False


def compatibility(old: Contract, new: Contract) -> list[str]:
    """Why `new` cannot follow `old` as the dataset's next contract version (empty: it can).

    Additive changes pass: a new optional column (old files read it as NULL), a column made
    optional, a decimal made wider. Refused, each with the migration that makes it possible: a
    removed or new required column, a type that narrows or changes, a changed partitioning, a
    version that does not increase.
    """
    problems = []
    if old.dataset != new.dataset:
        return [f"the contracts are of different datasets ({old.dataset}, {new.dataset})"]
    if new.version <= old.version:
        problems.append(
            f"version {new.version} does not follow {old.version}: give the new contract version > {old.version}"
        )
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    for name, c in before.items():
        if name not in after and c.required:
            problems.append(
                f"required column {name!r} is removed: files of v{old.version} hold it and queries may rely on it. "
                f"Migrate in two versions: first make it optional (required: false), then remove it once readers no "
                "longer use it"
            )
    for name, c in after.items():
        was = before.get(name)
        if was is None:
            if c.required:
                problems.append(
                    f"new column {name!r} is required: files of v{old.version} do not have it. Add it as optional "
                    "(old files read it as NULL); make it required in a later version only after rerunning the old "
                    "files under the new contract"
                )
            continue
        if not _widens(was.type, c.type):
            problems.append(
                f"column {name!r} changes type {was.type} -> {c.type}: files of v{old.version} hold {was.type}, and "
                "readers cannot merge both under one type. Keep the type (widen a decimal only), or add a new "
                f"column (e.g. {name}_v{new.version}) with the new type and rerun the old files to fill it"
            )
        if c.required and not was.required:
            problems.append(
                f"column {name!r} becomes required: files of v{old.version} may hold NULLs in it. Rerun the old files "
                "under the new contract (they are checked again) before relying on it"
            )
    if [(p.name, p.source, p.transform) for p in old.partition] != [
        (p.name, p.source, p.transform) for p in new.partition
    ]:
        problems.append(
            "the partitioning changes: old files sit in the old folders, which the new Glue table does not read. "
            "Keep the partition columns, or write the new layout as a new dataset and rerun the files into it"
        )
    return problems
