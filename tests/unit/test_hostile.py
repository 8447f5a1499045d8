"""Hostile input: long rows, compression bombs, archives, formula cells, partition values too long for a path.

Every case ends bounded and explained: a row in the quarantine, or the file refused with the
reason, fast, without holding the whole thing in memory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.engine.compressed import RATIO_SLACK
from sluice.engine.quarantine import restore
from sluice.engine.transform import ConvertOptions, convert
from sluice.errors import DecompressionLimitError, InputRejectedError, RejectThresholdError, UnsupportedFormatError
from tests.unit.conftest import Trickle, build_contract, convert_bytes, read_rejected

BASE_MIB = 140  # Python and pyarrow once imported (~85 MB) and the allocators' caches (~30-50 MB): docs/engine.md
MAX_ROW_BYTES = 16 << 20  # the contract's default limits.max_row_bytes


def rss_bound_mib(threads: int) -> int:
    """The engine's documented peak for rows up to the default limit (ConvertOptions.working_memory)."""
    return BASE_MIB + (ConvertOptions(threads=threads).working_memory(MAX_ROW_BYTES) >> 20)


# ------------------------------------------------------------------------------------------ long rows
CHILD = textwrap.dedent(
    """
    import io, json, sys
    from pathlib import Path
    from sluice.contracts import parse_contract
    from sluice.engine.transform import ConvertOptions, convert

    line_bytes, lines, threads, staging = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    class Lines(io.RawIOBase):
        # a header, then `lines` records "1,xxx..." of `line_bytes` bytes, made up as they are read
        def __init__(self):
            self.queue, self.left, self.in_line, self.fill = [b"a,b\\n"], lines, 0, b"x" * (1 << 20)

        def readable(self):
            return True

        def readinto(self, buf):
            view, n = memoryview(buf), 0
            while n < len(buf):
                if self.queue:
                    part = self.queue.pop(0)
                    k = min(len(part), len(buf) - n)
                    view[n : n + k] = part[:k]
                    if k < len(part):
                        self.queue.insert(0, part[k:])
                    n += k
                elif self.in_line:
                    k = min(self.in_line, len(buf) - n, len(self.fill))
                    view[n : n + k] = self.fill[:k]
                    n, self.in_line = n + k, self.in_line - k
                    if not self.in_line and self.left:
                        self.queue.append(b"\\n")
                elif self.left:
                    self.left, self.in_line = self.left - 1, line_bytes - 2
                    self.queue.append(b"1,")
                else:
                    break
            return n

    contract = parse_contract({"dataset": "t", "match": {"prefix": "t/"}, "columns": [{"name": "a"}, {"name": "b"}]})
    result = convert(
        io.BufferedReader(Lines(), 1 << 20), contract, run_id="r", source_name="long.csv",
        staging_dir=Path(staging), options=ConvertOptions(threads=threads),
    )
    # VmHWM: this process's own peak (ru_maxrss would include the parent's RSS at fork time)
    status = Path("/proc/self/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) // 1024
    print(json.dumps({"rows_out": result.rows_out, "rejects": result.rejects_by_rule, "peak_rss_mib": peak}))
    """
)


def peak_rss(tmp_path: Path, line_bytes: int, lines: int, threads: int) -> dict[str, Any]:
    """Convert `lines` lines of `line_bytes` bytes in a fresh process; its peak RSS and counts."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(line_bytes), str(lines), str(threads), str(tmp_path / f"s{threads}")],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


PROC = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")


@PROC
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_lines_longer_than_the_limit_are_quarantined_in_bounded_memory(tmp_path, threads):
    """Eight valid 60 MB lines took 0.8-1.7 GB: now each streams past and is quarantined by line."""
    got = peak_rss(tmp_path, 60 << 20, 8, threads)
    assert got["rows_out"] == 0 and got["rejects"] == {"row.length": 8}
    assert got["peak_rss_mib"] < rss_bound_mib(threads), got


@PROC
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_lines_as_long_as_the_limit_load_in_bounded_memory(tmp_path, threads):
    got = peak_rss(tmp_path, 16 << 20, 8, threads)  # exactly limits.max_row_bytes (16 MiB) with the line break
    assert got["rows_out"] == 8 and got["rejects"] == {}
    assert got["peak_rss_mib"] < rss_bound_mib(threads), got


@pytest.mark.parametrize(("block", "threads"), [(16, 1), (64, 3), (1 << 20, 2)])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_long_line_is_quarantined_by_its_line_number(run_convert, block, threads, eol):
    c = build_contract(["a", "b"], limits={"max_row_bytes": "1 KiB"})
    lines = ["a,b", "1,2", "3," + "x" * 1500, "4,5", "6," + "é" * 600, "7,8", "9," + "y" * 3000]
    out = run_convert(eol.join(lines).encode(), c, block_size=block, threads=threads)
    assert out.rows == [{"a": "1", "b": "2"}, {"a": "4", "b": "5"}, {"a": "7", "b": "8"}]
    got = [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected]
    assert got == [("3", "row.length", "1502"), ("5", "row.length", "1202"), ("7", "row.length", "3002")]
    assert all(r["_text"].startswith(r["_text"][:20]) and len(r["_text"]) <= 1024 + 3 for r in out.rejected)
    assert "more than limits.max_row_bytes (1 KiB)" in out.rejected[0]["_message"]


def test_a_record_longer_than_the_limit_rejects_a_file_with_line_breaks_in_values(run_convert):
    c = build_contract(["a", "b"], dialect={"newlines_in_values": True}, limits={"max_row_bytes": "1 KiB"})
    with pytest.raises(InputRejectedError, match=r"line 3: a quoted value runs for more than 1 KiB \(limits.max_row"):
        run_convert(b'a,b\n1,2\n3,"' + b"x\n" * 1000 + b'"\n', c, block_size=64)


# ---------------------------------------------------------------------------------- compression bombs
BOMB_ROW = b"O-1,2026-11-01T10:00:00Z,C-9,XX,web,1,9.99,9.99,true\n"  # XX breaks country.in
BOMB_HEADER = b"order_id,ordered_at,customer_id,country,channel,quantity,unit_price,amount,paid\n"


class Counting(io.RawIOBase):
    """A source that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.inner.readinto(buffer)
        self.read_bytes += n
        return n


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """256 MiB of one repeated bad row, gzipped to ~0.8 MB."""
    block = BOMB_ROW * ((1 << 20) // len(BOMB_ROW))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as f:
        f.write(BOMB_HEADER)
        for _ in range(256):
            f.write(block)
    return out.getvalue()


def test_a_gzip_bomb_fails_fast_on_its_expansion_ratio(bomb, orders_contract, tmp_path):
    source = Counting(bomb)
    with pytest.raises(DecompressionLimitError, match=r"expands .* times .*limits.max_expansion_ratio 100"):
        convert(source, orders_contract, run_id="r", source_name="bomb.csv.gz", staging_dir=tmp_path / "s")
    assert source.read_bytes < len(bomb) // 4, "stopped early"
    assert not [p for p in (tmp_path / "s").rglob("*") if p.is_file()], "nothing written"


def test_a_bomb_within_the_ratio_stops_at_the_quarantine_bound(bomb, orders_contract, tmp_path):
    lenient = orders_contract.model_copy(
        update={
            "max_reject_ratio": 1.0,
            "limits": orders_contract.limits.model_copy(
                update={"max_expansion_ratio": 10_000.0, "max_quarantine_bytes": 1 << 20}
            ),
        }
    )
    source = Counting(bomb)
    with pytest.raises(RejectThresholdError, match=r"stopped after \d+ rows: .*passed limits.max_quarantine_bytes"):
        convert(source, lenient, run_id="r", source_name="bomb.csv.gz", staging_dir=tmp_path / "s")
    assert source.read_bytes < len(bomb) // 4
    rejected = tmp_path / "s" / "_quarantine" / "rejected.csv"
    assert (1 << 20) < rejected.stat().st_size < (1 << 20) + 512 * 400, "bounded: the limit plus one slice of rows"
    report = json.loads((tmp_path / "s" / "_quarantine" / "report.json").read_text())
    assert "max_quarantine_bytes" in report["stopped_early"] and report["rows_out"] == 0
    assert not list((tmp_path / "s").rglob("*.parquet"))


def test_decompressed_size_limit(orders_contract, tmp_path):
    small = orders_contract.model_copy(
        update={"limits": orders_contract.limits.model_copy(update={"max_decompressed_bytes": 1 << 20})}
    )
    data = bz2.compress(BOMB_HEADER + BOMB_ROW.replace(b"XX", b"DE") * 40_000)
    with pytest.raises(DecompressionLimitError, match=r"decompresses to more than 1 MiB \(limits.max_decompressed"):
        convert(io.BytesIO(data), small, run_id="r", source_name="big.csv.bz2", staging_dir=tmp_path / "s")


def test_a_small_file_that_compresses_very_well_is_not_a_bomb(run_convert, orders_contract):
    data = BOMB_HEADER + BOMB_ROW.replace(b"XX", b"DE") * 1000  # ~55 KB that gzip makes ~1 KB: within the slack
    assert len(data) < RATIO_SLACK and len(data) > 100 * len(gzip.compress(data))
    out = run_convert(gzip.compress(data), orders_contract.model_copy(update={"max_reject_ratio": 1.0}))
    assert out.result.rows_in == 1000


# ------------------------------------------------------------------------------ reject ratio, streaming
def bad_then_good(bad: int, good: int) -> bytes:
    rows = [b"x,1"] * bad + [b"1,1"] * good
    return b"n,m\n" + b"\n".join(rows) + b"\n"


def test_a_file_bound_to_fail_stops_early(tmp_path):
    c = build_contract([{"name": "n", "type": "int64"}, "m"], max_reject_ratio=0.1)
    data = bad_then_good(50_000, 0)
    stopped = r"stopped after (\d+) rows: .* at most \d+ more rows can follow"
    with pytest.raises(RejectThresholdError, match=stopped) as e:
        convert_bytes(data, c, tmp_path, block_size=4096)
    assert int(e.value.args[0].split("stopped after ")[1].split(" ")[0]) < 25_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blocks=st.lists(st.tuples(st.booleans(), st.integers(1, 400)), min_size=1, max_size=6),
    ratio=st.sampled_from([0.0, 0.05, 0.3, 0.5]),
)
def test_stopping_early_never_changes_the_verdict(tmp_path, blocks, ratio):
    """Property: with the file's size known (early stop on) the run fails exactly when it fails without."""
    c = build_contract([{"name": "n", "type": "int64"}], max_reject_ratio=ratio)
    data = b"n\n" + b"".join((b"x\n" if bad else b"1\n") * n for bad, n in blocks)
    verdicts = []
    for step in (None, 5):  # a seekable source tells its size, a trickle does not
        try:
            convert_bytes(data, c, tmp_path, step=step, block_size=64)
            verdicts.append("ok")
        except RejectThresholdError:
            verdicts.append("too many")
    assert verdicts[0] == verdicts[1]
    rejected = sum(n for bad, n in blocks if bad)
    assert verdicts[0] == ("too many" if rejected > ratio * sum(n for _, n in blocks) else "ok")


# ---------------------------------------------------------------------------------------- formulas
def test_formula_cells_in_the_quarantine_are_neutralised_and_reversible(run_convert):
    c = build_contract([{"name": "n", "type": "int64", "min": 0}, {"name": "note", "pattern": "^[a-z]*$"}])
    values = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "@SUM(1+1)", "-2+3+cmd|' /C calc'!A0", "\tx", "'quoted"]
    body = "".join(f'1,"{v}"\n' for v in values) + "-5,ok\n" + '=HYPERLINK("x"),ok\n'
    out = run_convert(("n,note\n" + body).encode(), c)
    cells = {r["_line"]: r for r in out.rejected}
    for line, value in enumerate(values, start=2):
        assert cells[str(line)]["_value"] == "'" + value  # a spreadsheet shows it as text
        assert restore(cells[str(line)]["_value"]) == value
        assert cells[str(line)]["_text"].startswith("1,")  # the row starts with a digit: left alone
    assert cells["8"]["_value"] == "-5"  # a plain number stays a number
    assert cells["9"]["_text"] == "'" + '=HYPERLINK("x"),ok' and restore(cells["9"]["_text"]) == '=HYPERLINK("x"),ok'
    assert all(not c.startswith(("=", "+", "@", "\t", "\r")) for r in out.rejected for c in r.values())
    report = json.loads(out.result.report_path.read_text())  # keeps the values as they were
    assert report["examples"]["note.pattern"][0]["value"] == values[0]


# ------------------------------------------------------------------------------------ partition paths
def test_a_partition_value_too_long_for_a_path_quarantines_its_row(run_convert):
    c = build_contract(["id", "grp"], partition=[{"name": "g", "source": "grp"}])
    # 300, 260 (non-ASCII stays UTF-8) and 270 bytes escaped
    long_ascii, long_utf8, slashes = "x" * 300, "é" * 130, "/" * 90
    body = f"1,a\n2,{long_ascii}\n3,b\n4,{long_utf8}\n5,{slashes}\n6,{'y' * 240}\n"
    out = run_convert(("id,grp\n" + body).encode(), c, threads=2)
    assert sorted(r["id"] for r in out.rows) == ["1", "3", "6"]  # a 240-byte value still fits
    got = [(r["_line"], r["_rule"], r["_value"]) for r in out.rejected]
    assert got == [
        ("3", "grp.partition", long_ascii),
        ("5", "grp.partition", long_utf8),
        ("6", "grp.partition", slashes),
    ]
    assert "a directory name takes at most 255 bytes" in out.rejected[0]["_message"]


# ------------------------------------------------------------------------------------------ archives
def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, data)
    return out.getvalue()


def tar_gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        info = tarfile.TarInfo("orders.csv")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def parquet_bytes() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (zipped("orders.csv", BOMB_HEADER), "it is a ZIP archive"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(40), "it is a 7-Zip archive"),
        (b"Rar!\x1a\x07\x01\x00" + bytes(40), "it is a RAR archive"),
        (b"\xfd7zXZ\x00\x00\x04" + bytes(40), "it is an xz-compressed file"),
        (b"\x04\x22\x4d\x18\x64\x40" + bytes(40), "it is an LZ4 frame"),
        (parquet_bytes(), "it is a Parquet file"),
        (tar_gz(BOMB_HEADER), "gzip-compressed, it holds a tar archive"),
        (gzip.compress(zipped("a.csv", BOMB_HEADER)), "gzip-compressed, it holds a ZIP archive"),
    ],
    ids=["zip", "7z", "rar", "xz", "lz4", "parquet", "tar.gz", "zip.gz"],
)
def test_archives_and_binary_files_get_their_own_error(run_convert, orders_contract, data, what):
    with pytest.raises(UnsupportedFormatError, match=rf"s3://raw/t/file.csv .*: not a CSV file: {what}") as e:
        run_convert(data, orders_contract)
    assert "extract the CSV and upload it" in str(e.value)


def test_validate_refuses_an_archive_before_any_conversion():
    from tests.fakes import MemoryStore
    from tests.unit.test_preflight import run_for

    with pytest.raises(UnsupportedFormatError, match=r"s3://raw/orders/a\.csv: not a CSV file: it is a ZIP archive"):
        run_for(MemoryStore(), "orders/a.csv", zipped("a.csv", BOMB_HEADER))


def test_a_trickled_source_gets_the_same_refusal(orders_contract, tmp_path):
    with pytest.raises(UnsupportedFormatError, match="ZIP"):
        convert(
            io.BufferedReader(Trickle(zipped("a.csv", BOMB_HEADER), 3)),
            orders_contract,
            run_id="r",
            source_name="a.csv",
            staging_dir=tmp_path,
            options=ConvertOptions(),
        )


def test_read_rejected_sees_neutralised_cells(run_convert):
    """The test helper reads rejected.csv as written: cells keep their quote (tests restore them)."""
    c = build_contract([{"name": "n", "type": "int64"}])
    out = run_convert(b"n\n=1+1\n", c)
    assert read_rejected(out.result)[0]["_value"] == "'=1+1"
