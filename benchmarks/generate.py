"""Deterministic, realistic orders-like CSV for the benchmark, streamed to disk.

One row per order: the columns of ``contracts/orders.yaml`` plus five more an order export
typically carries (sku, status, discount, shipping city, customer email), so rows are ~150 bytes
and mix ids, timestamps, low- and high-cardinality strings, decimals, ints, bools and nulls.
Timestamps are spread uniformly (in random order) over one year, so partitioning by
``date(ordered_at)`` yields 365 partitions and every chunk of the file touches all of them.
Some shipping cities need quoting (``"Washington, D.C."``) and some are not ASCII (``München``).

With ``--bad-fraction F`` every ``1/F``-th row breaks one contract rule (cycling through type,
required, min/max, ``in``, pattern, ``unique`` and ragged-row faults). The manifest written next
to the CSV (``<name>.json``) holds the expected row count and exact column sums of the valid
rows, which is what the harness checks every engine's Parquet against.

Usage::

    python benchmarks/generate.py --size 1gb            # -> benchmarks/data/orders-1gb-s42.csv
    python benchmarks/generate.py --size 100mb --bad-fraction 0.001
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
MIB = 1 << 20
SIZES = {"10mb": 10 * MIB, "100mb": 100 * MIB, "1gb": 1024 * MIB, "3gb": 3072 * MIB}
#: Bump when the generated data changes, so cached files are regenerated.
FORMAT_VERSION = 1
CHUNK_ROWS = 500_000

HEADER = (
    "order_id",
    "ordered_at",
    "customer_id",
    "country",
    "channel",
    "quantity",
    "unit_price",
    "amount",
    "paid",
    "sku",
    "status",
    "discount",
    "shipping_city",
    "customer_email",
)
COUNTRIES = ("DE", "FR", "ES", "IT", "NL", "US", "GB")
COUNTRY_WEIGHTS = (0.24, 0.16, 0.10, 0.10, 0.07, 0.21, 0.12)
CHANNELS = ("web", "store", "app")
CHANNEL_WEIGHTS = (0.55, 0.15, 0.30)
STATUSES = ("placed", "paid", "shipped", "delivered", "returned", "cancelled")
STATUS_WEIGHTS = (0.05, 0.10, 0.15, 0.62, 0.05, 0.03)
CITIES = (
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt am Main",
    "Düsseldorf",
    "Paris",
    "Lyon",
    "Marseille",
    "Saint-Denis, Réunion",
    "Madrid",
    "Barcelona",
    "Sevilla",
    "A Coruña",
    "Rome",
    "Milan",
    "Napoli",
    "Amsterdam",
    "Rotterdam",
    "'s-Hertogenbosch",
    "New York",
    "Los Angeles",
    "Washington, D.C.",
    "St. Louis",
    "Portland, OR",
    "Portland, ME",
    "London",
    "Manchester",
    "St. John's",
    "Zürich",
    'Dublin "Docklands"',
    "Kraków",
)
FIRST_NAMES = (
    "anna",
    "ben",
    "chloe",
    "david",
    "emma",
    "felix",
    "giulia",
    "hugo",
    "ines",
    "jan",
    "karla",
    "lucas",
    "maria",
    "noah",
    "olga",
    "pablo",
    "quentin",
    "rosa",
    "sven",
    "tara",
    "ugo",
    "vera",
    "willem",
    "zoe",
)
DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.de", "example.fr")
YEAR_START = np.datetime64("2025-01-01T00:00:00", "s").astype(np.int64)
YEAR_SECONDS = 365 * 86_400
#: Faults injected into bad rows, in turn; each breaks exactly one rule of the bench contract.
FAULTS = (
    "quantity.type",
    "quantity.min",
    "country.in",
    "customer_id.required",
    "ordered_at.type",
    "amount.min",
    "order_id.pattern",
    "order_id.unique",
    "row.fields",
    "paid.type",
    "status.in",
    "discount.max",
)


@dataclass(frozen=True)
class Manifest:
    """What a generated file holds; ``valid_*`` cover the rows a contract-checking engine keeps."""

    path: str
    size: str
    seed: int
    bad_fraction: float
    format_version: int
    bytes: int
    rows: int
    bad_rows: int
    valid_rows: int
    valid_amount_cents: int
    valid_quantity: int
    all_amount_cents: int | None
    all_quantity: int | None
    bad_by_fault: dict[str, int]
    days: int
    seconds: float

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def parse_size(text: str) -> int:
    """``100mb``, ``1gb``, ``3gb`` (MiB/GiB) or a plain byte count."""
    key = text.strip().lower()
    if key in SIZES:
        return SIZES[key]
    for suffix, factor in (("kb", 1 << 10), ("mb", MIB), ("gb", 1 << 30)):
        if key.endswith(suffix):
            return int(float(key[: -len(suffix)]) * factor)
    return int(key)


def dataset_path(size: str, seed: int, bad_fraction: float) -> Path:
    bad = f"-bad{bad_fraction:g}" if bad_fraction > 0 else ""
    return DATA_DIR / f"orders-{size.lower()}-s{seed}{bad}.csv"


def _pick(rng: np.random.Generator, values: Sequence[str], n: int, weights: Sequence[float] | None = None) -> pa.Array:
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    idx = rng.choice(len(values), size=n, p=p)
    return pc.take(pa.array(values, pa.string()), pa.array(idx))


def _padded(numbers: np.ndarray, width: int, prefix: str) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def _cents_text(cents: np.ndarray) -> pa.Array:
    """Non-negative integer cents as ``123.45`` text (exact, no float rounding)."""
    whole = pc.cast(pa.array(cents // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(whole, frac, ".")


def _csv_field(values: pa.Array) -> pa.Array:
    """RFC 4180 quoting only where needed (delimiter or quote in the value)."""
    needs = pc.match_substring_regex(values, '[,"]')
    quoted = pc.binary_join_element_wise(pa.scalar('"'), pc.replace_substring(values, '"', '""'), pa.scalar('"'), "")
    return pc.if_else(needs, quoted, values)


@dataclass
class _Chunk:
    fields: dict[str, pa.Array]
    quantity: np.ndarray
    amount_cents: np.ndarray
    bad: np.ndarray  # bool per row
    faults: list[tuple[int, str]]


def _make_chunk(rng: np.random.Generator, first_row: int, n: int, bad_every: int) -> _Chunk:
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    ts = YEAR_START + rng.integers(0, YEAR_SECONDS, size=n, dtype=np.int64)
    quantity = np.minimum(rng.geometric(0.45, size=n), 1000).astype(np.int64)
    price_cents = np.round(np.exp(rng.normal(3.2, 1.0, size=n)) * 100).astype(np.int64) + 49
    amount_cents = quantity * price_cents
    discount_cents = np.where(rng.random(n) < 0.3, rng.integers(0, 5001, size=n), -1)
    fields: dict[str, pa.Array] = {
        "order_id": _padded(rows, 10, "O-"),
        "ordered_at": pc.strftime(pa.array(ts.astype("datetime64[s]")), format="%Y-%m-%dT%H:%M:%SZ"),
        "customer_id": _padded(rng.integers(0, 2_000_000, size=n), 7, "C-"),
        "country": _pick(rng, COUNTRIES, n, COUNTRY_WEIGHTS),
        "channel": _pick(rng, CHANNELS, n, CHANNEL_WEIGHTS),
        "quantity": pc.cast(pa.array(quantity), pa.string()),
        "unit_price": _cents_text(price_cents),
        "amount": _cents_text(amount_cents),
        "paid": pc.if_else(pa.array(rng.random(n) < 0.93), "true", "false"),
        "sku": _padded(rng.zipf(1.3, size=n) % 50_000, 5, "SKU-"),
        "status": _pick(rng, STATUSES, n, STATUS_WEIGHTS),
        "discount": pc.fill_null(
            pc.if_else(
                pa.array(discount_cents >= 0), _cents_text(np.maximum(discount_cents, 0)), pa.scalar(None, pa.string())
            ),
            "",
        ),
        "shipping_city": _csv_field(_pick(rng, CITIES, n)),
        "customer_email": pc.binary_join_element_wise(
            _pick(rng, FIRST_NAMES, n),
            pa.scalar("."),
            pc.cast(pa.array(rng.integers(1, 10**7, size=n)), pa.string()),
            pa.scalar("@"),
            _pick(rng, DOMAINS, n),
            "",
        ),
    }
    bad = np.zeros(n, dtype=bool)
    faults: list[tuple[int, str]] = []
    if bad_every:
        # every bad_every-th row of the file (never two in a row: a duplicate id copies the valid row before it)
        start = (-first_row) % bad_every
        for i in range(start, n, bad_every):
            if first_row + i == 0:
                continue
            faults.append((i, FAULTS[((first_row + i) // bad_every) % len(FAULTS)]))
            bad[i] = True
    return _Chunk(fields, quantity, amount_cents, bad, faults)


def _inject(chunk: _Chunk, first_row: int) -> None:
    """Overwrite the faulty cells of `chunk` (a handful of rows: plain Python is fine)."""
    if not chunk.faults:
        return
    cols = {name: arr.to_pylist() for name, arr in chunk.fields.items()}
    for i, fault in chunk.faults:
        match fault:
            case "quantity.type":
                cols["quantity"][i] = "two"
            case "quantity.min":
                cols["quantity"][i] = "0"
            case "country.in":
                cols["country"][i] = "XX"
            case "customer_id.required":
                cols["customer_id"][i] = ""
            case "ordered_at.type":
                cols["ordered_at"][i] = "2025-13-45T25:61:00Z"
            case "amount.min":
                cols["amount"][i] = "-" + str(cols["amount"][i])
            case "order_id.pattern":
                cols["order_id"][i] = f"ORD{first_row + i}"
            case "order_id.unique":
                cols["order_id"][i] = cols["order_id"][i - 1] if i > 0 else f"O-{first_row - 1:010d}"
            case "row.fields":
                cols["customer_email"][i] = str(cols["customer_email"][i]) + ",unexpected-extra-field"
            case "paid.type":
                cols["paid"][i] = "maybe"
            case "status.in":
                cols["status"][i] = "lost"
            case "discount.max":
                cols["discount"][i] = "250.00"
            case _:
                raise AssertionError(fault)
    chunk.fields = {name: pa.array(values, pa.string()) for name, values in cols.items()}


def _csv_bytes(fields: dict[str, pa.Array]) -> bytes:
    """The CSV text of the rows (one ``\\n``-terminated line each), built without a Python loop."""
    lines = pc.binary_join_element_wise(*[fields[name] for name in HEADER], ",")
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")  # each line + "\n"
    arr = pa.concat_arrays([lines]) if isinstance(lines, pa.Array) else lines.combine_chunks()
    offsets = arr.buffers()[1]
    data = arr.buffers()[2]
    off = np.frombuffer(offsets, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    body: bytes = data[int(off[0]) : int(off[-1])].to_pybytes()
    return body


def generate(
    size: str, *, seed: int = 42, bad_fraction: float = 0.0, path: Path | None = None, quiet: bool = False
) -> Manifest:
    """Write the CSV and its manifest; return the manifest."""
    target = parse_size(size)
    path = path or dataset_path(size, seed, bad_fraction)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad_every = round(1 / bad_fraction) if bad_fraction > 0 else 0
    if bad_every == 1:
        raise ValueError("--bad-fraction must be below 0.5")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    written = rows = bad_rows = 0
    valid_amount = valid_qty = all_amount = all_qty = 0
    by_fault: dict[str, int] = {}
    tmp = path.with_suffix(".csv.part")
    with tmp.open("wb") as out:
        header = (",".join(HEADER) + "\n").encode()
        out.write(header)
        written = len(header)
        while written < target:
            chunk = _make_chunk(rng, rows, CHUNK_ROWS, bad_every)
            _inject(chunk, rows)
            body = _csv_bytes(chunk.fields)
            n = CHUNK_ROWS
            if written + len(body) > target:  # last chunk: cut at a line end so the file is about `target`
                cut = body.rfind(b"\n", 0, target - written) + 1
                if cut <= 0:
                    cut = body.find(b"\n") + 1
                n = body.count(b"\n", 0, cut)
                body = body[:cut]
            ok = ~chunk.bad[:n]
            valid_amount += int(chunk.amount_cents[:n][ok].sum())
            valid_qty += int(chunk.quantity[:n][ok].sum())
            all_amount += int(chunk.amount_cents[:n].sum())
            all_qty += int(chunk.quantity[:n].sum())
            for i, fault in chunk.faults:
                if i < n:
                    by_fault[fault] = by_fault.get(fault, 0) + 1
                    bad_rows += 1
            out.write(body)
            written += len(body)
            rows += n
            if not quiet and sys.stderr.isatty():
                print(f"\r{path.name}: {written / MIB:,.0f} MiB, {rows:,} rows", end="", file=sys.stderr, flush=True)
    os.replace(tmp, path)
    if not quiet:
        print(
            f"\r{path.name}: {written / MIB:,.0f} MiB, {rows:,} rows, {time.perf_counter() - t0:.0f} s", file=sys.stderr
        )
    manifest = Manifest(
        path=str(path),
        size=size,
        seed=seed,
        bad_fraction=bad_fraction,
        format_version=FORMAT_VERSION,
        bytes=written,
        rows=rows,
        bad_rows=bad_rows,
        valid_rows=rows - bad_rows,
        valid_amount_cents=valid_amount,
        valid_quantity=valid_qty,
        # with faults, some "all rows" values are not numbers: peers are only compared on clean files
        all_amount_cents=all_amount if not bad_rows else None,
        all_quantity=all_qty if not bad_rows else None,
        bad_by_fault=dict(sorted(by_fault.items())),
        days=365,
        seconds=round(time.perf_counter() - t0, 2),
    )
    path.with_suffix(".json").write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    return manifest


def ensure_dataset(size: str, *, seed: int = 42, bad_fraction: float = 0.0, quiet: bool = False) -> Manifest:
    """The manifest of the cached file for these parameters, generating it first if needed."""
    path = dataset_path(size, seed, bad_fraction)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        manifest = Manifest.load(meta)
        if manifest.format_version == FORMAT_VERSION and manifest.bytes == path.stat().st_size:
            return manifest
    return generate(size, seed=seed, bad_fraction=bad_fraction, path=path, quiet=quiet)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100mb", help="100mb, 1gb, 3gb (MiB/GiB) or bytes (default 100mb)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of rows breaking a rule (e.g. 0.001)")
    parser.add_argument("--out", type=Path, help="output path (default benchmarks/data/orders-<size>-s<seed>.csv)")
    parser.add_argument("--force", action="store_true", help="regenerate even if a cached file exists")
    args = parser.parse_args(argv)
    if args.out or args.force:
        manifest = generate(args.size, seed=args.seed, bad_fraction=args.bad_fraction, path=args.out)
    else:
        manifest = ensure_dataset(args.size, seed=args.seed, bad_fraction=args.bad_fraction)
    summary: dict[str, Any] = asdict(manifest)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
