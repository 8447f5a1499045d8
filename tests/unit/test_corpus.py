"""The real-world corpus (../shared/corpus): infer a contract, convert, and get exactly the expected outcome."""

import io
import json

import pytest

from sluice.errors import InputRejectedError
from sluice.infer import infer_contract
from tests.unit.conftest import CORPUS, convert_bytes

MANIFEST = json.loads((CORPUS / "manifest.json").read_text()) if (CORPUS / "manifest.json").exists() else []

# (rows loaded, rows quarantined) where the manifest's oracle undercounts: the file has 0xFF bytes on
# lines 3001, 3012, 3023 and 3034, not only on 3001, and each of those rows is quarantined.
DIFFERENT = {"duckdb__test_invalid_utf_big.csv": (3030, 4)}


@pytest.mark.skipif(not MANIFEST, reason="corpus not found next to the repository")
@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_corpus_file(entry, tmp_path):
    data = (CORPUS / entry["file"]).read_bytes()
    stem = entry["file"].rsplit(".", 1)[0]
    try:
        inference = infer_contract(io.BytesIO(data), source_name=entry["file"], file_stem=stem)
        from sluice.contracts import parse_contract

        contract = parse_contract(inference.contract, "inferred")
        out = convert_bytes(data, contract, tmp_path, block_size=4096)
    except InputRejectedError as exc:
        assert entry["expected"] == "reject", f"refused a file the manifest expects to {entry['expected']}: {exc}"
        assert "Traceback" not in str(exc) and "\n" not in str(exc)
        return
    assert entry["expected"] != "reject", f"loaded a file the manifest expects to be rejected: {out.result}"
    loaded, quarantined = DIFFERENT.get(entry["file"], (entry["rows_loaded"], entry["rows_quarantined"]))
    assert (out.result.rows_out, out.result.rows_rejected) == (loaded, quarantined)
    if entry["valid"]:
        assert out.result.rows_in == entry["data_rows"]
