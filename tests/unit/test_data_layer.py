"""A function attaches the DataLayer (pyarrow, pandas, numpy) iff its handler needs those libraries.

Each handler module is imported in a fresh interpreter whose import system refuses pyarrow,
pandas and numpy (a meta path finder that raises): the import succeeds iff the function has no
DataLayer in template.yaml. A few functions import light but reach the data libraries at run time
(lazily, on the path that needs them); they are named below with the reason, keep the layer, and
must still import without it, so their cold start stays light.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
DATA_LAYER = "DataLayer"
BLOCKED = ("pyarrow", "pandas", "numpy")

#: Functions that import without the data libraries but use them at run time (lazy imports).
LAZY_DATA_USERS = {
    "ValidateFunction": "zstd-compressed heads are decompressed with pyarrow (sluice.engine.compressed)",
    "PlanFunction": "reads the header with the engine's CSV reader (sluice.pipeline.fanout.read_file_head)",
    "MergeFunction": "checks the merged partitions against the Glue projection (sluice.pipeline.catalog)",
    "SummarizeFunction": "a new version of a compacted key rewrites the compacted file (sluice.pipeline.compaction)",
    "CleanupFunction": "compaction rewrites small Parquet files into one (sluice.pipeline.compaction)",
}

PROBE = """
import importlib.abc, json, sys
BLOCKED = set(sys.argv[2].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the function has no DataLayer")
        return None
sys.meta_path.insert(0, Block())
try:
    __import__(sys.argv[1])
except ImportError as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
else:
    print(json.dumps({"ok": True, "error": None}))
"""


def _functions() -> dict[str, dict[str, Any]]:
    template = load(str(ROOT / "template.yaml"))
    glob = template.get("Globals", {}).get("Function", {})
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        layers = [layer.get("Ref") for layer in [*glob.get("Layers", []), *props.get("Layers", [])]]
        found[logical_id] = {
            "code": ROOT / str(props.get("CodeUri", glob.get("CodeUri", ""))),
            "module": str(props.get("Handler", glob.get("Handler"))).rsplit(".", 1)[0],
            "data_layer": DATA_LAYER in layers,
        }
    return found


FUNCTIONS = _functions()


def _import_without_data_libs(code: Path, module: str) -> dict[str, Any]:
    env = {"PYTHONPATH": f"{code}:{ROOT / 'src'}", "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module, ",".join(BLOCKED)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_every_function_is_checked() -> None:
    assert len(FUNCTIONS) >= 10
    assert set(LAZY_DATA_USERS) <= set(FUNCTIONS)


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_data_layer_iff_handler_needs_data_libs(function_id: str) -> None:
    fn = FUNCTIONS[function_id]
    imported = _import_without_data_libs(fn["code"], fn["module"])
    if function_id in LAZY_DATA_USERS:
        assert imported["ok"], f"{function_id} must import without the data libraries: {imported['error']}"
        assert fn["data_layer"], f"{function_id} needs the DataLayer at run time: {LAZY_DATA_USERS[function_id]}"
    elif imported["ok"]:
        assert not fn["data_layer"], f"{function_id} imports without pyarrow/pandas/numpy: drop the DataLayer"
    else:
        assert fn["data_layer"], f"{function_id} imports a data library but has no DataLayer: {imported['error']}"
