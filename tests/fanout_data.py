"""Test data for the fan-out: a splittable orders-like contract and CSV files with bad rows."""

from __future__ import annotations

import random
from typing import Any

import yaml

from sluice.contracts import Contract, parse_contract

DATASET = "fanout_orders"

# orders.yaml without `unique` (a contract with unique columns never fans out).
CONTRACT_YAML = """\
dataset: fanout_orders
version: 1
description: Orders split into byte ranges (tests of the fan-out).
match:
  prefix: fanout_orders/
dialect:
  encoding: utf-8
  delimiter: ","
  header: true
columns:
  - {name: order_id, type: string, required: true, pattern: "^O-[0-9]{6}$"}
  - {name: ordered_at, type: timestamp, required: true}
  - {name: customer_id, type: string, required: true}
  - {name: country, type: string, required: true, in: [DE, FR, ES, IT, NL, US, GB]}
  - {name: channel, type: string, required: true, in: [web, store, app]}
  - {name: quantity, type: int64, required: true, min: 1, max: 1000}
  - {name: unit_price, type: "decimal(10,2)", required: true, min: 0}
  - {name: amount, type: "decimal(12,2)", required: true, min: 0}
  - {name: paid, type: bool}
partition:
  - {name: order_date, source: ordered_at, transform: date}
max_reject_ratio: 0.2
aggregates:
  time_column: ordered_at
  bucket_seconds: 3600
  dimensions: [country]
  measures:
    - {column: amount, ops: [sum, min, max]}
    - {column: quantity, ops: [sum]}
  distinct: [customer_id]
"""

HEADER = "order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid"
_BAD = (
    lambda r: r.replace(",DE,", ",XX,").replace(",FR,", ",XX,"),  # country.in (when it applies)
    lambda r: r.rsplit(",", 1)[0],  # too few fields
    lambda r: r.replace("T", " at ", 1),  # unparsable timestamp
    lambda r: r.replace("O-", "Q-", 1),  # order_id.pattern
    lambda r: r + ",extra",  # too many fields
)


def contract(**over: Any) -> Contract:
    """The test contract, with top-level keys replaced (``dialect`` merges)."""
    data = yaml.safe_load(CONTRACT_YAML)
    dialect = over.pop("dialect", {})
    data["dialect"].update(dialect)
    data.update(over)
    return parse_contract(data, "fanout_orders.yaml")


def orders_csv(
    rows: int,
    *,
    seed: int = 7,
    newline: str = "\n",
    bad_every: int = 23,
    blank_every: int = 97,
    header: bool = True,
    preamble: str = "",
    encoding: str = "utf-8",
    final_newline: bool = True,
) -> bytes:
    """`rows` data records (every `bad_every`-th broken, a blank line every `blank_every`)."""
    rnd = random.Random(seed)
    lines = [preamble.rstrip("\r\n")] if preamble else []
    if header:
        lines.append(HEADER)
    countries = ["DE", "FR", "ES", "IT", "NL", "US", "GB"]
    names = ["C-0001", "C-0002", '"C-00,3"', "C-Zoë", "C-0005", "C-0006"]
    for i in range(rows):
        qty = rnd.randint(1, 9)
        price = rnd.randint(100, 9999)
        day, hour, minute = rnd.randint(1, 5), rnd.randint(0, 23), rnd.randint(0, 59)
        row = (
            f"O-{100000 + i:06d},2026-11-{day:02d}T{hour:02d}:{minute:02d}:00Z,{rnd.choice(names)},"
            f"{rnd.choice(countries)},{rnd.choice(['web', 'store', 'app'])},{qty},"
            f"{price // 100}.{price % 100:02d},{qty * price // 100}.{qty * price % 100:02d},"
            f"{rnd.choice(['true', 'false', ''])}"
        )
        if bad_every and i % bad_every == bad_every - 1:
            row = _BAD[(i // bad_every) % len(_BAD)](row)
        lines.append(row)
        if blank_every and i % blank_every == blank_every - 1:
            lines.append("")
    text = newline.join(lines) + (newline if final_newline else "")
    return text.encode(encoding)


def with_quoted_line_break(rows: int, at: int) -> bytes:
    """A file whose row `at` has a quoted customer_id with a line break (the contract forbids them)."""
    base = orders_csv(rows)
    start = base.index(f"O-{100000 + at:06d},".encode())
    field = base.index(b",", base.index(b",", start) + 1) + 1
    return base[:field] + b'"C-0001\nC-0002"' + base[base.index(b",", field) :]
