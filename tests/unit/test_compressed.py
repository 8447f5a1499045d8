"""gzip and bzip2 raw objects: converted through a streaming decompressor, checked by Validate, never fanned out."""

import bz2
import gzip
import io
import random

import pytest

from sluice.engine.compressed import _Prepended, open_source, sniff
from sluice.errors import InputRejectedError
from sluice.pipeline.preflight import SAMPLE_BYTES
from tests.unit.conftest import REPO
from tests.unit.test_preflight import GOOD, run_for

SAMPLE = (REPO / "samples/orders/orders-2026-11-01.csv").read_bytes()


def zstd(data: bytes) -> bytes:
    import pyarrow as pa

    out = pa.BufferOutputStream()
    with pa.CompressedOutputStream(out, "zstd") as stream:
        stream.write(data)
    return bytes(out.getvalue().to_pybytes())


@pytest.mark.parametrize(
    "pack",
    [gzip.compress, bz2.compress, zstd, lambda b: gzip.compress(b[:5000]) + gzip.compress(b[5000:])],
    ids=["gzip", "bzip2", "zstd", "gzip-two-members"],
)
@pytest.mark.parametrize("step", [None, 7])
def test_compressed_files_convert_to_what_the_plain_file_gives(run_convert, orders_contract, pack, step):
    plain = run_convert(SAMPLE, orders_contract)
    packed = pack(SAMPLE)
    seen = []
    out = run_convert(packed, orders_contract, step=step, block_size=4096, progress=seen.append)
    assert out.rows == plain.rows and out.rejected == plain.rejected
    assert out.result.bytes_in == len(SAMPLE)  # CSV bytes
    assert seen[-1].bytes_read == len(packed)  # progress counts the object's bytes: a share of its size


@pytest.mark.parametrize(("pack", "kind"), [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (zstd, "zstd")])
def test_a_cut_short_stream_is_refused_and_leaves_no_parquet(run_convert, orders_contract, tmp_path, pack, kind):
    packed = pack(b"".join(SAMPLE.replace(b"O-", f"O{i}-".encode()) for i in range(40)))  # not all repeats
    with pytest.raises(InputRejectedError, match=rf"s3://raw/t/file.csv .*the {kind} stream is corrupt or cut short"):
        run_convert(packed[: len(packed) // 2], orders_contract, block_size=4096)
    assert not list(tmp_path.rglob("*.parquet"))


def test_sniffing_and_putting_the_head_back():
    assert [sniff(b"\x1f\x8b\x08"), sniff(b"BZh9"), sniff(b"\x28\xb5\x2f\xfd"), sniff(b"id,")] == [
        "gzip",
        "bzip2",
        "zstd",
        None,
    ]
    raw = _Prepended(b"abc", io.BytesIO(b"defg"))
    assert [raw.read(1), raw.read(1), raw.read(3), raw.read(-1), raw.read(5)] == [b"a", b"b", b"cde", b"fg", b""]
    assert raw.consumed == 7
    stream, _, kind = open_source(io.BytesIO(b"ab"), "f")  # shorter than a magic number
    assert kind is None and stream.read(10) == b"ab"


def test_validate_checks_the_header_inside_a_compressed_file():
    """(That a compressed file never fans out: tests/unit/test_fanout.py.)"""
    from tests.fakes import MemoryStore

    packed = gzip.compress(GOOD)
    assert run_for(MemoryStore(), "orders/a.csv.gz", packed)["source"]["size"] == len(packed)
    assert run_for(MemoryStore(), "orders/a.csv.bz2", bz2.compress(GOOD))["mode"] == "single"
    noise = random.Random(4).randbytes(600_000).hex().encode()  # incompressible: the sample ends mid-stream
    big = zstd(GOOD.split(b"\n", 1)[0] + b"\n" + noise)
    assert len(big) > SAMPLE_BYTES
    assert run_for(MemoryStore(), "orders/a.csv.zst", big)["mode"] == "single"
    with pytest.raises(InputRejectedError, match=r'b\.csv\.zst line 1: .*unexpected "customer"'):
        run_for(MemoryStore(), "orders/b.csv.zst", zstd(b"order_id,customer\n" + noise))
    bad = gzip.compress(GOOD.replace(b"customer_id,", b"customer,", 1))
    with pytest.raises(InputRejectedError, match='missing "customer_id"'):
        run_for(MemoryStore(), "orders/bad.csv.gz", bad)
    with pytest.raises(InputRejectedError, match="starts like gzip but does not decompress"):
        run_for(MemoryStore(), "orders/junk.csv.gz", b"\x1f\x8b" + b"\x00" * 50)
