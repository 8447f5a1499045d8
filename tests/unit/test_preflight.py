"""Validate step: contract resolution, encoding, header, empty files, fan-out decision."""

from pathlib import Path

import pytest

from sluice.contracts import load_contracts
from sluice.errors import InputRejectedError, UnknownDatasetError
from sluice.pipeline.preflight import validate_run
from tests.fakes import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = load_contracts(ROOT / "contracts")
GOOD = (ROOT / "samples/orders/orders-2026-11-01.csv").read_bytes()


def run_for(store: MemoryStore, key: str, data: bytes, threshold: int = 1 << 30):
    store.put("raw", key, data)
    run = {"run_id": "r1", "dataset": "orders", "source": {"bucket": "raw", "key": key}, "received_at": "x"}
    return validate_run(run, CONTRACTS, store, threshold)


def test_good_file_single_mode_with_resolved_source():
    result = run_for(MemoryStore(), "orders/a.csv", GOOD)
    assert result["mode"] == "single"
    assert result["source"]["size"] == len(GOOD)
    assert result["source"]["etag"] == f"etag-{len(GOOD)}"
    assert result["contract_version"] == 1


def test_large_file_stays_on_one_worker_when_the_contract_has_unique_columns():
    # orders declares order_id unique, which is checked over the whole file (fan-out: tests/unit/test_fanout.py)
    assert run_for(MemoryStore(), "orders/a.csv", GOOD, threshold=100)["mode"] == "single"


def test_header_mismatch_lists_differences():
    bad = GOOD.replace(b"customer_id,", b"customer,", 1)
    with pytest.raises(InputRejectedError) as info:
        run_for(MemoryStore(), "orders/bad.csv", bad)
    message = str(info.value)
    assert "s3://raw/orders/bad.csv line 1" in message
    assert 'missing "customer_id"' in message and 'unexpected "customer"' in message
    assert "rule file.header" in message


def test_a_reordered_header_is_accepted():
    lines = GOOD.split(b"\n")
    lines[0] = b"ordered_at,order_id," + lines[0].split(b",", 2)[2]
    assert run_for(MemoryStore(), "orders/x.csv", b"\n".join(lines))["mode"] == "single"


def test_undecodable_bytes_name_line_and_offset():
    bad = GOOD.replace(b"order_id", b"order_\xe9d", 1)
    with pytest.raises(InputRejectedError, match=r"line 1 \(byte 6\).*not valid utf-8"):
        run_for(MemoryStore(), "orders/x.csv", bad)


def test_bom_is_accepted():
    assert run_for(MemoryStore(), "orders/bom.csv", b"\xef\xbb\xbf" + GOOD)["mode"] == "single"


def test_empty_file_is_rejected():
    with pytest.raises(InputRejectedError, match="empty"):
        run_for(MemoryStore(), "orders/empty.csv", b"")


def test_unknown_dataset():
    with pytest.raises(UnknownDatasetError, match=r"no dataset contract matches key .inbox/x\.csv."):
        run_for(MemoryStore(), "inbox/x.csv", GOOD)
