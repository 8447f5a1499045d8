"""Cold start budget: every handler of the `sam build` output imports in under 0.5 s (median of 5).

Each import runs in a fresh ``python -S`` with exactly Lambda's search path (the built function
dir, its layers' ``python/``, the runtime's boto3; see lambda_artifact.py), so it pays what a cold
start pays: reading the bytecode of every module the handler pulls in. The budget holds the lesser
of the import's wall time and its CPU time (user + system, all threads): on an idle machine they are
the same for a single-threaded import, wall time grows when other processes share the CPUs, CPU
time when the import starts threads (numpy's, pyarrow's), so the lesser is the idle wall time either
way. Functions without the DataLayer must not load pyarrow, pandas or numpy at all.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest
from lambda_artifact import (
    BUILD_DIR,
    REPO,
    built_architecture,
    ensure_runtime_dir,
    functions,
    host_architecture,
    lambda_environment,
    lambda_python,
)

pytestmark = pytest.mark.build

if not (BUILD_DIR / "template.yaml").is_file():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{BUILD_DIR} is missing in CI: `make test` builds before testing")
    pytest.skip(f"no sam build output in {BUILD_DIR}: run `make build` first", allow_module_level=True)

if built_architecture() not in (None, host_architecture()):
    pytest.skip(
        f"layers built for {built_architecture()}, this machine is {host_architecture()}", allow_module_level=True
    )

BUDGET_SECONDS = 0.5
RUNS = 5
DATA_LIBS = ("pyarrow", "pandas", "numpy")

PROBE = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
__import__(sys.argv[1])
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
print(json.dumps({"cpu": cpu, "wall": wall, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


@pytest.fixture(scope="session")
def runtime_dir() -> Path:
    return ensure_runtime_dir()


def _import_once(function_id: str) -> dict[str, object]:
    spec = functions()[function_id]
    out = subprocess.run(
        [lambda_python(), "-S", "-c", PROBE, spec.module],
        cwd=BUILD_DIR / function_id,
        env=lambda_environment(function_id),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"{function_id}: import failed\n{out.stderr[-3000:]}"
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("function_id", sorted(functions()))
def test_handler_import_within_budget(function_id: str, runtime_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = functions()[function_id]
    if not spec.code_uri.is_dir():
        pytest.skip(f"{spec.code_uri.relative_to(REPO)} does not exist (template has {function_id})")
    runs = [_import_once(function_id) for _ in range(RUNS)]
    cpu = statistics.median(float(str(r["cpu"])) for r in runs)
    wall = statistics.median(float(str(r["wall"])) for r in runs)
    with capsys.disabled():
        print(f"\n[cold start {function_id}] import median of {RUNS}: {cpu:.3f} s CPU, {wall:.3f} s wall", end="")
    took = min(cpu, wall)
    assert took < BUDGET_SECONDS, f"{function_id}: importing {spec.handler} takes {took:.3f} s (budget 0.5 s)"
    if "DataLayer" not in spec.layers:
        loaded = sorted(set(DATA_LIBS) & set(runs[0]["modules"]))  # type: ignore[arg-type]
        assert not loaded, f"{function_id} has no DataLayer but its import loads {loaded}"
