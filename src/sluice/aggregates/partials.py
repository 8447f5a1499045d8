"""The Arrow side: a conversion's checked batches folded into partial aggregates per window and group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sluice.aggregates.records import partial_record
from sluice.aggregates.spec import AggregateSpec
from sluice.aggregates.values import OPS, ItemKey, Values, canonical_text, numeric_value
from sluice.contracts import Contract
from sluice.errors import ContractError

if TYPE_CHECKING:
    import pyarrow as pa


class PartialAggregator:
    """Observer of a run's valid typed rows: accumulates partial aggregates per (bucket, group).

    Call it with each ``pa.Table``/``pa.RecordBatch`` of valid rows (contract column names and
    types); :meth:`records` gives the compact partial records, in a deterministic order.
    """

    def __init__(self, contract: Contract, run_id: str) -> None:
        self.spec = AggregateSpec.of(contract)
        self.run_id = run_id
        self.rows = 0
        self._items: dict[ItemKey, Values] = {}

    def __call__(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Fold a batch of valid rows."""
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        spec = self.spec
        keys = {"__bucket": _bucket_column(table.column(spec.time_column.name), spec.bucket_seconds)}
        for i, c in enumerate(spec.dimensions):
            keys[f"__d{i}"] = table.column(c.name)
        columns = dict(keys)
        aggregations: list[tuple[Any, str]] = [([], "count_all")]
        for i, m in enumerate(spec.measures):
            name = f"__m{i}"
            columns[name] = table.column(m.column.name)
            aggregations.append((name, "count"))
            if m.column.type == "float64":
                aggregations.append((name, "list"))  # summed exactly in decimal, below
            else:
                aggregations.extend((name, op) for op in OPS if op in m.ops)
        grouped = pa.table(columns).group_by(list(keys), use_threads=False).aggregate(aggregations)
        for row in grouped.to_pylist():
            self._fold(self._key_of(row), self._values_of(row))
        for c in spec.distinct:
            self._fold_distinct(keys, table.column(c.name), c.name)

    def _key_of(self, row: Mapping[str, Any]) -> ItemKey:
        return self.spec.key(row["__bucket"], [row[f"__d{i}"] for i in range(len(self.spec.dimensions))])

    def _values_of(self, row: Mapping[str, Any]) -> Values:
        values = self.spec.new_values()
        values.count = row["count_all"]
        for i, m in enumerate(self.spec.measures):
            measure = values.measures[m.column.name]
            if m.column.type == "float64":
                for v in row[f"__m{i}_list"]:
                    if v is not None:
                        measure.add(numeric_value(v))
                continue
            measure.n = row[f"__m{i}_count"]
            if measure.n:
                for op in m.ops:
                    raw = row[f"__m{i}_{op}"]
                    setattr(measure, op, numeric_value(raw) if m.kind == "num" else canonical_text(raw))
        return values

    def _fold(self, key: ItemKey, values: Values) -> None:
        current = self._items.get(key)
        if current is None:
            self._items[key] = values
        else:
            current.merge(values)

    def _fold_distinct(self, keys: dict[str, Any], column: Any, name: str) -> None:
        import pyarrow as pa

        pairs = pa.table({**keys, "__v": column}).group_by([*keys, "__v"], use_threads=False).aggregate([])
        for row in pairs.to_pylist():
            if row["__v"] is not None:
                self._items[self._key_of(row)].distinct[name].add(canonical_text(row["__v"]))

    def items(self) -> dict[ItemKey, Values]:
        """The accumulated values per item (live objects; do not mutate)."""
        return self._items

    def records(self) -> list[dict[str, Any]]:
        """Partial records, ``seq`` 0..n-1 in (bucket, group) order."""
        keys = sorted(self._items, key=ItemKey.sort_key)
        return [
            partial_record(
                k, self._items[k], run_id=self.run_id, seq=i, n=len(keys), contract_version=self.spec.version
            )
            for i, k in enumerate(keys)
        ]


def _bucket_column(column: Any, bucket_seconds: int) -> Any:
    """Int64 bucket starts (epoch seconds) of a timestamp or date column; nulls stay null."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(column.type):
        micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False).cast(pa.int64())
        unit = bucket_seconds * 1_000_000
    elif pa.types.is_date(column.type):
        micros = pc.multiply(pc.cast(pc.cast(column, pa.date32()), pa.int64()), 86_400)  # days -> seconds
        unit = bucket_seconds
    else:
        raise ContractError(f"time column must be a timestamp or date, got {column.type}")
    valid = pc.is_valid(micros).to_numpy(zero_copy_only=False)
    raw = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.floor_divide(raw, unit) * bucket_seconds
    return pa.array(starts, type=pa.int64(), mask=~valid)
