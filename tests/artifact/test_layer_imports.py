"""The deployable artifact is the tested artifact: import every function from the `sam build` output.

(This folder is not called tests/build: pytest never recurses into a folder named ``build``.)

Each function is imported in a fresh ``python -S`` (same minor version as the runtime, no
site-packages) whose path holds only what Lambda would give it: the built function dir, its
built layers' ``python/`` and the runtime's boto3. A module missing from a layer fails here, not
in production.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lambda_artifact import (
    BUILD_DIR,
    REPO,
    built_architecture,
    built_paths,
    ensure_runtime_dir,
    functions,
    host_architecture,
    lambda_environment,
    lambda_python,
    layer_ids,
)

pytestmark = pytest.mark.build

if not (BUILD_DIR / "template.yaml").is_file():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{BUILD_DIR} is missing in CI: `make test` builds before testing")
    pytest.skip(f"no sam build output in {BUILD_DIR}: run `make build` first", allow_module_level=True)

#: Native code built for another architecture (make build ARCH=arm64 on x86_64) can't be loaded here.
runs_here = pytest.mark.skipif(
    built_architecture() not in (None, host_architecture()),
    reason=f"layers built for {built_architecture()}, this machine is {host_architecture()}",
)

#: What the Lambda runtime provides: a layer shipping these would shadow the runtime's copies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "urllib3")
#: Dev-only packages that must never reach Lambda.
DEV_ONLY = ("localcloud", "sluice_cli", "moto", "pytest", "duckdb")

# Runs inside the built environment: import the handler module, then report where every loaded
# module came from so the test can prove nothing was picked up outside the artifact.
PROBE = """
import json, sys, time, importlib
t0 = time.perf_counter()
module = importlib.import_module(sys.argv[1])
handler = getattr(module, sys.argv[2], None)
seconds = time.perf_counter() - t0
import aws_xray_sdk.core  # Powertools Tracer needs it on Lambda (lazy import, so import it here)
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
print(json.dumps({"callable": callable(handler), "seconds": seconds, "files": files}))
"""


@functools.cache
def _stdlib_prefixes() -> tuple[str, ...]:
    out = subprocess.run(
        [lambda_python(), "-S", "-c", "import sys, sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return (out.stdout.strip(),)


@pytest.fixture(scope="session")
def runtime_dir() -> Path:
    return ensure_runtime_dir()


def _function_ids() -> list[str]:
    return sorted(functions())


@runs_here
@pytest.mark.parametrize("function_id", _function_ids())
def test_function_imports_from_built_artifact(
    function_id: str, runtime_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = functions()[function_id]
    if not spec.code_uri.is_dir():
        pytest.skip(f"{spec.code_uri.relative_to(REPO)} does not exist yet (template has {function_id})")
    code_dir = BUILD_DIR / function_id
    assert (code_dir / f"{spec.module}.py").is_file(), (
        f"{function_id}: {spec.module}.py missing from {code_dir}; run `make build`"
    )
    for path in built_paths(function_id)[1:]:
        assert path.is_dir(), f"{function_id}: built layer dir {path} is missing"

    result = subprocess.run(
        [lambda_python(), "-S", "-c", PROBE, spec.module, spec.attribute],
        cwd=code_dir,  # /var/task
        env=lambda_environment(function_id),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{function_id}: importing {spec.handler} from the built artifact failed "
        f"(a module missing from a layer?)\n{result.stderr[-4000:]}"
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["callable"], f"{function_id}: {spec.handler} is not callable"
    with capsys.disabled():
        print(f"\n[built {function_id}] import {spec.handler}: {report['seconds']:.3f} s", end="")

    allowed = (*(str(p) for p in built_paths(function_id)), str(runtime_dir), *_stdlib_prefixes())
    strays = [f for f in report["files"] if not f.startswith(allowed)]
    assert not strays, f"{function_id}: modules loaded from outside the artifact: {strays[:10]}"


def _top_level_names(python_dir: Path) -> set[str]:
    return {
        p.name.removesuffix(".py")
        for p in python_dir.iterdir()
        if p.name != "__pycache__" and not p.name.endswith((".dist-info", ".libs"))
    }


def test_layers_do_not_overlap() -> None:
    """On Lambda all layers merge into one /opt/python: a shared name would silently overwrite."""
    seen: dict[str, str] = {}
    clashes = []
    for layer in layer_ids():
        for name in _top_level_names(BUILD_DIR / layer / "python"):
            if name in seen:
                clashes.append(f"{name} ({seen[name]} and {layer})")
            seen[name] = layer
    assert not clashes, f"packages shipped by two layers: {clashes}"


def test_layers_leave_runtime_sdk_and_dev_tools_out() -> None:
    for layer in layer_ids():
        names = _top_level_names(BUILD_DIR / layer / "python")
        shipped = sorted(names & {*RUNTIME_PACKAGES, *DEV_ONLY})
        assert not shipped, f"{layer} ships {shipped}: the runtime provides the SDK; dev tools stay out"


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_sluice_layer_is_current() -> None:
    """The built layer holds today's src/sluice and contracts (a stale build fails, not deploys)."""
    layer = BUILD_DIR / "SluiceLayer"
    assert _digest(layer / "python" / "sluice") == _digest(REPO / "src" / "sluice"), (
        "SluiceLayer's sluice package differs from src/sluice: run `make build`"
    )
    built = sorted(p.name for p in (layer / "contracts").glob("*.yaml"))
    source = sorted(p.name for p in (REPO / "contracts").glob("*.yaml"))
    assert built == source, "SluiceLayer's contracts differ from contracts/: run `make build`"
    assert _digest(layer / "contracts") == _digest(REPO / "contracts")


def test_layers_are_precompiled() -> None:
    """Every module has unchecked-hash bytecode: /opt is read-only, so a cold start can't cache it."""
    tag = sys.implementation.cache_tag  # cpython-313: same minor version as the runtime
    missing, checked = [], []
    for layer in layer_ids():
        for source in (BUILD_DIR / layer / "python").rglob("*.py"):
            pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            if not pyc.is_file():
                missing.append(str(source.relative_to(BUILD_DIR)))
                continue
            flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
            if flags != 0b01:  # PEP 552: hash-based, check_source off
                checked.append(str(pyc.relative_to(BUILD_DIR)))
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"
    assert not checked, f"{len(checked)} .pyc files are not unchecked-hash, e.g. {checked[:5]}"


@runs_here
def test_cold_import_of_data_layer(capsys: pytest.CaptureFixture[str]) -> None:
    """Measure `import pandas` / `import pyarrow` from the built layer (~0.3 s with bytecode)."""
    paths = [BUILD_DIR / "SluiceLayer" / "python", BUILD_DIR / "DataLayer" / "python"]
    code = (
        "import json, time\n"
        "t0 = time.perf_counter(); import pyarrow, pyarrow.parquet, pyarrow.csv, pyarrow.compute\n"
        "t1 = time.perf_counter(); import pandas\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'pyarrow': t1 - t0, 'pandas': t2 - t1, 'pandas_file': pandas.__file__}))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    runs = []
    for _ in range(2):  # first run also pays the page cache; the second is a warm-disk cold start
        out = subprocess.run([lambda_python(), "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    assert runs[0]["pandas_file"].startswith(str(BUILD_DIR / "DataLayer")), runs[0]["pandas_file"]
    with capsys.disabled():
        for n, run in enumerate(runs, 1):
            print(
                f"\n[cold import from built DataLayer, run {n}] "
                f"pyarrow(+parquet,csv,compute) {run['pyarrow']:.3f} s, pandas {run['pandas']:.3f} s"
            )
    assert runs[-1]["pyarrow"] + runs[-1]["pandas"] < 5.0


ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


def test_native_code_matches_the_build_architecture() -> None:
    """Every shared object in the layers is for the architecture the template asked for."""
    wanted = built_architecture()
    wrong = []
    for layer in layer_ids():
        for lib in (BUILD_DIR / layer / "python").rglob("*.so*"):
            header = lib.read_bytes()[:20]
            if header[:4] != b"\x7fELF":
                continue
            machine = ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "unknown")
            if machine != wanted:
                wrong.append(f"{lib.relative_to(BUILD_DIR)} ({machine})")
    assert not wrong, f"built for {wanted}, but: {wrong[:5]}"
