"""Fuzz: `sluice contract infer` and `sluice convert` on any bytes end with exit 0, or exit 2 and one clear line.

Bytes-level: random bytes, CSV-like text, truncated UTF-8 and UTF-16, stray quotes, NULs, fields
past Python csv's limit and past ``limits.max_row_bytes``, compressed and cut-short streams,
archives. Never a traceback, never an "internal error": every refusal is a SluiceError naming
the file, and a refused conversion leaves no Parquet (only a quarantine when it failed for its
rejects). ``SLUICE_FUZZ=N`` runs N examples instead of 300.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.contracts import parse_contract
from sluice_cli.main import main

EXAMPLES = int(os.environ.get("SLUICE_FUZZ", "300"))
HEADERED = {
    "dataset": "fuzz",
    "match": {"prefix": "fuzz/"},
    "columns": [
        {"name": "a", "type": "int64", "min": 0},
        {"name": "b", "pattern": "^[a-z]*$"},
        {"name": "c", "type": "date"},
        {"name": "d", "type": "decimal(6,2)"},
    ],
    "partition": [{"name": "p", "source": "b"}],
    "limits": {"max_row_bytes": "4 KiB", "max_quarantine_bytes": "8 KiB"},
    "max_reject_ratio": 0.5,
}
HEADERLESS = {
    "dataset": "fuzz",
    "match": {"prefix": "fuzz/"},
    "dialect": {"header": False, "newlines_in_values": True},
    "columns": [{"name": "x"}, {"name": "y", "type": "float64"}],
}
ATOMS = [
    b"a",
    b"b,c",
    b"1",
    b"-2",
    b"2024-01-05",
    b"1.5",
    b"1e3",
    b",",
    b";",
    b"\t",
    b'"',
    b'""',
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xe9",
    "é".encode()[:1],  # a cut UTF-8 sequence
    "€".encode(),
    b"=cmd|' /C calc'!A0",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    "a,b\n1,x\n".encode("utf-16-le")[:7],  # UTF-16 cut mid-character
    b"PK\x03\x04",
    b"7z\xbc\xaf\x27\x1c",
]


def huge(n: int) -> bytes:
    return b"x" * n


@st.composite
def files(draw: Any) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(ATOMS),
                st.binary(max_size=12),
                st.integers(0, 300_000).map(huge),  # past Python csv's 131072 field limit, past 4 KiB rows
            ),
            max_size=30,
        )
    )
    body = b"".join(parts)
    if draw(st.booleans()):
        body = b"a,b,c,d\n" + body
    wrap = draw(st.sampled_from(["plain"] * 6 + ["gzip", "bzip2", "cut gzip", "utf-16"]))
    if wrap == "gzip":
        return gzip.compress(body)
    if wrap == "bzip2":
        return bz2.compress(body)
    if wrap == "cut gzip":
        packed = gzip.compress(body)
        return packed[: draw(st.integers(0, len(packed)))]
    if wrap == "utf-16":
        text = body.decode("utf-8", "replace").encode("utf-16")
        return text[: draw(st.integers(0, len(text)))]
    return body


def refused_cleanly(err: str, path: Path) -> None:
    """One line on stderr, from sluice, naming the file, and not a bug."""
    assert err.startswith("sluice: error: "), err
    assert err.count("\n") == 1, err
    assert str(path) in err or path.name in err, err
    assert "internal error" not in err, err


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contracts")
    paths = {}
    for name, data in (("headered", HEADERED), ("headerless", HEADERLESS)):
        parse_contract(data)
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(data))
    return paths


def convert_cleanly(path: Path, contract: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(out, ignore_errors=True)
    code = main(["convert", str(path), "--contract", str(contract), "--out", str(out), "--block-size-mib", "1"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # a summary whatever happened
    assert code in (0, 2)
    if code == 0:
        assert summary["status"] == "succeeded" and not captured.err
        assert summary["rows_in"] == summary["rows_out"] + summary["rows_rejected"]
        return
    refused_cleanly(captured.err, path)
    assert summary["status"] == "failed" and summary["error"]["message"]
    assert not list(out.rglob("*.parquet")), "a refused file leaves no Parquet"
    assert not list(out.glob(".staging-*"))
    if summary["error"]["type"] != "RejectThresholdError":
        assert not list(out.rglob("*.csv")) and not summary["quarantine_files"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=files())
def test_infer_and_convert_never_crash(tmp_path, capsys, contracts, data):
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    code = main(["contract", "infer", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        refused_cleanly(captured.err, path)
        assert not captured.out
    else:
        inferred = tmp_path / "inferred.yaml"
        inferred.write_text(captured.out)
        parse_contract(yaml.safe_load(captured.out))
        convert_cleanly(path, inferred, tmp_path / "out-inferred", capsys)
    for contract in contracts.values():
        convert_cleanly(path, contract, tmp_path / "out", capsys)


def test_infer_on_a_field_longer_than_the_csv_module_allows(tmp_path, capsys):
    """It used to end in `_csv.Error: field larger than field limit (131072)`."""
    path = tmp_path / "log.csv"
    path.write_bytes(b"id,message\n1," + b"x" * 300_000 + b"\n2,ok\n")
    assert main(["contract", "infer", str(path)]) == 0
    assert "{name: message, type: string}" in capsys.readouterr().out
    path.write_bytes(b'id,message\n1,"' + b"x" * (2 << 20) + b'"\n2,ok\n')  # a field longer than the sample
    assert main(["contract", "infer", str(path), "--sample-mib", "1"]) == 2
    err = capsys.readouterr().err
    refused_cleanly(err, path)
    assert "line 2: no record ends within the first 1 MiB" in err and "--sample-mib" in err


def test_a_bug_is_one_line_too(tmp_path, capsys, contracts, monkeypatch):
    """The last resort: an unexpected exception is reported as a bug, with the file, and exit 2."""
    import sluice_cli.convert_cmd as cmd

    def broken(*_a: Any, **_k: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(cmd, "land", broken)
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b,c,d\n1,x,2024-01-01,1.5\n")
    assert main(["convert", str(path), "--contract", str(contracts["headered"]), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sluice: error: {path}: internal error (KeyError: 'boom'); nothing was written")
    assert json.loads(captured.out)["error"]["type"] == "KeyError"
