"""The window state stays under Lambda's 1 MB limit, even for a window of a million records."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from functools import partial

from sluice.aggregates.windows import DEFAULT_BUDGET, STATE_LIMIT, Window, WindowState, window_state_size
from sluice.contracts import contract_by_name, load_contract
from tests.fakes.aggregate_store import MemoryAggregateStore

ORDERS = load_contract("contracts/orders.yaml")
COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "US", "GB"]
RECORDS = 1_000_000
BATCH = 10_000  # the largest batch a Kinesis event-source mapping delivers
TEMPLATE = (
    '{"dataset":"orders","rows":[{"ordered_at":"2026-11-01T%02d:17:00Z","customer_id":"C-%d",'
    '"country":"%s","quantity":1,"amount":"%d.%02d"}]}'
)


def test_a_million_records_in_one_window_keep_the_state_under_1_mb():
    rng = random.Random(7)
    store = MemoryAggregateStore()
    lookup = partial(contract_by_name, contracts=[ORDERS])
    state: dict | None = None
    largest = 0
    cents = 0
    for start in range(0, RECORDS, BATCH):
        window = Window(WindowState.from_json(state, "shardId-000000000000"), store, lookup, workers=1)
        for i in range(start, start + BATCH):
            # 7 countries x 24 hourly buckets, each with a HyperLogLog sketch: ~170 items of up to 5.5 kB.
            bits = rng.getrandbits(64)
            amount = 1 + bits % 99_999
            cents += amount
            data = TEMPLATE % (
                (bits >> 17) % 24,
                bits >> 24 & 0xFFFFF,
                COUNTRIES[(bits >> 44) % 7],
                amount // 100,
                amount % 100,
            )
            window.handle(str(10**20 + i), data.encode())
        state = json.loads(json.dumps(window.close(final=False)))
        largest = max(largest, window_state_size(state))
    window = Window(WindowState.from_json(state, "shardId-000000000000"), store, lookup)
    window.close(final=True)

    assert largest <= DEFAULT_BUDGET < STATE_LIMIT
    assert window.state.folded == RECORDS and window.state.flushes > 1
    aggregates = store.aggregates.values()
    assert sum(a.values.count for a in aggregates) == RECORDS
    assert sum(a.values.measures["amount"].sum for a in aggregates) == Decimal(cents) / 100
    assert sum(a.values.measures["quantity"].sum for a in aggregates) == RECORDS
