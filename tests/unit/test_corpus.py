"""The real-world corpus (../shared/corpus): infer a contract, convert, and get exactly the expected outcome.

An extra beside the repository: without it these tests skip (`require_corpus`). The shapes it
exercises are also written out by the project itself in test_csv_shapes.py.
"""

import json

import pytest

from sluice.errors import InputRejectedError
from tests.unit.conftest import CORPUS, infer_and_convert, require_corpus

MANIFEST = json.loads((CORPUS / "manifest.json").read_text()) if (CORPUS / "manifest.json").is_file() else []
# One placeholder when the corpus is absent, so that its absence shows as one skip with its reason.
ENTRIES = [pytest.param(e, id=e["file"]) for e in MANIFEST] or [pytest.param(None, id="corpus-absent")]

# (rows loaded, rows quarantined) where the manifest's oracle undercounts: the file has 0xFF bytes on
# lines 3001, 3012, 3023 and 3034, not only on 3001, and each of those rows is quarantined.
DIFFERENT = {"duckdb__test_invalid_utf_big.csv": (3030, 4)}


@pytest.mark.parametrize("entry", ENTRIES)
def test_corpus_file(entry, tmp_path):
    require_corpus()
    data = (CORPUS / entry["file"]).read_bytes()
    try:
        _, out = infer_and_convert(data, tmp_path, entry["file"])
    except InputRejectedError as exc:
        assert entry["expected"] == "reject", f"refused a file the manifest expects to {entry['expected']}: {exc}"
        assert "Traceback" not in str(exc) and "\n" not in str(exc)
        return
    assert entry["expected"] != "reject", f"loaded a file the manifest expects to be rejected: {out.result}"
    loaded, quarantined = DIFFERENT.get(entry["file"], (entry["rows_loaded"], entry["rows_quarantined"]))
    assert (out.result.rows_out, out.result.rows_rejected) == (loaded, quarantined)
    if entry["valid"]:
        assert out.result.rows_in == entry["data_rows"]
