"""sluice's engine against pandas, DuckDB, polars and bare pyarrow on the same CSV: time, memory, output, correctness.

Each engine runs in its own process (``benchmarks/peers/<engine>_peer.py``) under
``/usr/bin/time -v`` (wall time, peak RSS), pinned with ``taskset`` to 2 CPUs, 1 CPU or both in
turn. Every output is read back with DuckDB and checked against the generator's manifest (row
count, exact sums of ``amount`` and ``quantity``). Then a table, the ratios of sluice to each peer,
the targets of issue 4 with PASS/MISS, and a JSON record in ``benchmarks/out/``.

Usage::

    python benchmarks/run.py                          # 100 MB, 2 CPUs and 1 CPU (a few minutes)
    python benchmarks/run.py --size 1gb --cpus both   # the figures the targets are defined on
    python benchmarks/run.py --size 100mb --size 1gb --size 3gb --engines sluice,sluice-part  # flat memory
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from generate import MIB, Manifest, ensure_dataset, parse_size

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / "peers"
OUT = HERE / "out"
CONTRACT = HERE / "contracts" / "orders_bench.yaml"
CONTRACT_PARTITIONED = HERE / "contracts" / "orders_bench_partitioned.yaml"
TIME_BIN = Path("/usr/bin/time")
#: Other processes using this many CPUs during a run make its figures unreliable.
NOISE_CPUS = 0.1


@dataclass(frozen=True)
class Engine:
    name: str
    script: str
    contract: Path | None = None  # sluice only: the contract it converts with
    peer: bool = True  # a peer sluice is compared against

    def command(self, source: Path, out_dir: Path, types: str) -> list[str]:
        cmd = [sys.executable, str(PEERS / self.script), str(source), str(out_dir)]
        if self.contract is not None:
            cmd += ["--contract", str(self.contract)]
        elif types == "contract":
            cmd += ["--types", "contract", "--contract", str(CONTRACT)]
        return cmd


ENGINES = {
    "sluice": Engine("sluice", "sluice_peer.py", CONTRACT, peer=False),
    "sluice-part": Engine("sluice-part", "sluice_peer.py", CONTRACT_PARTITIONED, peer=False),
    "polars": Engine("polars", "polars_peer.py"),
    "duckdb": Engine("duckdb", "duckdb_peer.py"),
    "pandas": Engine("pandas", "pandas_peer.py"),
    "pyarrow": Engine("pyarrow", "pyarrow_peer.py"),  # the library under sluice, as write_dataset runs it
    "floor": Engine("floor", "floor_peer.py", CONTRACT),  # pyarrow parse + sluice's writer, no validation
}


@dataclass
class Measurement:
    engine: str
    cpus: int
    dataset: str
    input_bytes: int
    wall_s: float
    user_s: float
    sys_s: float
    cpu_percent: int
    max_rss_kib: int
    exit_code: int
    output_bytes: int = 0
    output_files: int = 0
    rows: int | None = None
    amount_cents: int | None = None
    quantity: int | None = None
    checks: list[str] = field(default_factory=list)  # failures; empty = outputs as expected
    peer: dict[str, Any] = field(default_factory=dict)  # the JSON line the peer printed
    runs_wall_s: list[float] = field(default_factory=list)
    background_cpus: float = 0.0  # CPUs other processes used during the (median) run: noise
    engine_version: str = ""  # fingerprint of src/sluice when the run started (see engine_fingerprint)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.checks

    @property
    def mib_s(self) -> float:
        return self.input_bytes / MIB / self.wall_s if self.wall_s else 0.0

    @property
    def rss_mib(self) -> float:
        return self.max_rss_kib / 1024

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mib_s": round(self.mib_s, 2), "rss_mib": round(self.rss_mib, 1), "ok": self.ok}


# ------------------------------------------------------------------------------------------ running
_TIME_FIELDS = {
    "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
    "User time (seconds)": "user",
    "System time (seconds)": "sys",
    "Percent of CPU this job got": "cpu",
    "Maximum resident set size (kbytes)": "rss",
    "Exit status": "exit",
}


def _wall_seconds(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_time_v(stderr: str) -> dict[str, float]:
    """The fields of ``/usr/bin/time -v`` this harness uses."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        key, sep, value = line.strip().rpartition(": ")
        if sep and key in _TIME_FIELDS:
            name = _TIME_FIELDS[key]
            value = value.strip().rstrip("%")
            found[name] = _wall_seconds(value) if name == "wall" else float(value or 0)
    missing = {"wall", "rss"} - set(found)
    if missing:
        raise RuntimeError(f"/usr/bin/time -v output lacks {missing}:\n{stderr[-2000:]}")
    return found


def cpu_busy_seconds() -> float:
    """CPU-seconds all CPUs of the machine have been busy since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, threshold: float = 0.15) -> float:
    """Wait (up to `limit_s`) until other processes use under `threshold` CPUs for 3 s; return the last load."""
    deadline = time.monotonic() + limit_s
    quiet = 0
    while True:
        b0, t0 = cpu_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        load = (cpu_busy_seconds() - b0) / (time.monotonic() - t0)
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            return load


def pin(cpus: int) -> list[str]:
    """``taskset`` prefix giving the process CPUs 0..cpus-1."""
    if shutil.which("taskset") is None:
        raise SystemExit("taskset not found (util-linux); it pins engines to 1 or 2 CPUs")
    available = os.cpu_count() or 1
    if cpus > available:
        raise SystemExit(f"--cpus {cpus}: this machine has only {available} CPUs")
    return ["taskset", "-c", ",".join(str(i) for i in range(cpus))]


def snapshot_engine() -> tuple[Path, str]:
    """Copy ``src/sluice`` (byte-compiled) to ``benchmarks/out/engine/<fingerprint>/``; return that dir and the print.

    Every sluice run of one invocation imports this copy, so edits to the engine made while the
    benchmark runs can't mix two versions into one table.
    """
    version = engine_fingerprint()
    dest = OUT / "engine" / version
    if not (dest / "sluice" / "__init__.py").is_file():
        tmp = dest.with_name(f"{version}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(REPO / "src" / "sluice", tmp / "sluice", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        compileall.compile_dir(tmp / "sluice", quiet=1, workers=1)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest, version


def run_engine(
    engine: Engine, source: Path, out_dir: Path, cpus: int, types: str, engine_path: Path
) -> tuple[dict[str, float], str]:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cmd = [*pin(cpus), str(TIME_BIN), "-v", *engine.command(source, out_dir, types)]
    env = {**os.environ, "PYTHONPATH": str(engine_path), "TZ": "UTC", "PYTHONDONTWRITEBYTECODE": "1"}
    busy0 = cpu_busy_seconds()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    busy = cpu_busy_seconds() - busy0
    timing = parse_time_v(proc.stderr)
    # CPUs other processes kept busy during the run: the machine's busy time minus the engine's own
    own = timing.get("user", 0.0) + timing.get("sys", 0.0)
    timing["background"] = max(0.0, busy - own) / timing["wall"] if timing["wall"] else 0.0
    timing.setdefault("exit", float(proc.returncode))
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("\t"))[-3000:]
        print(f"  {engine.name} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
    return timing, proc.stdout


def read_back(out_dir: Path) -> tuple[int, int, int, int, int]:
    """rows, amount in cents, quantity, files, bytes of every Parquet file under `out_dir`."""
    import duckdb

    files = sorted(p for p in out_dir.rglob("*.parquet") if "_quarantine" not in p.parts)
    if not files:
        return 0, 0, 0, 0, 0
    con = duckdb.connect()
    names = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    row = con.execute(
        f"SELECT count(*), coalesce(sum(CAST(round(CAST(amount AS DOUBLE) * 100) AS HUGEINT)), 0), "
        f"coalesce(sum(CAST(quantity AS HUGEINT)), 0) FROM read_parquet({names}, hive_partitioning = false)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), len(files), sum(p.stat().st_size for p in files)


def check(m: Measurement, manifest: Manifest) -> None:
    """Compare an engine's output with what the generator wrote (``m.checks`` collects failures)."""

    def expect(what: str, got: object, want: object) -> None:
        if got != want:
            m.checks.append(f"{what}: got {got}, expected {want}")

    if m.engine.startswith("sluice"):
        p = m.peer
        expect("rows_in", p.get("rows_in"), manifest.rows)
        expect("rows_out + rows_rejected", p.get("rows_out", 0) + p.get("rows_rejected", 0), p.get("rows_in"))
        expect("rows_out", p.get("rows_out"), manifest.valid_rows)
        expect("rejects_by_rule", p.get("rejects_by_rule"), manifest.bad_by_fault)
        expect("parquet rows", m.rows, manifest.valid_rows)
        expect("sum(amount) cents", m.amount_cents, manifest.valid_amount_cents)
        expect("sum(quantity)", m.quantity, manifest.valid_quantity)
        if m.engine == "sluice-part":
            expect("partition files", m.output_files, manifest.days)
    else:
        if manifest.bad_rows:
            m.checks.append("peers are only checked on clean files")
            return
        expect("parquet rows", m.rows, manifest.rows)
        expect("sum(amount) cents", m.amount_cents, manifest.all_amount_cents)
        expect("sum(quantity)", m.quantity, manifest.all_quantity)


def measure(
    engine: Engine,
    manifest: Manifest,
    cpus: int,
    *,
    types: str,
    repeat: int,
    keep: bool,
    quiet_wait: float,
    noisy_retries: int,
    engine_path: Path,
    engine_version: str,
) -> Measurement:
    source = Path(manifest.path)
    out_dir = OUT / "runs" / source.stem / f"{engine.name}-{cpus}cpu"
    runs: list[tuple[dict[str, float], str]] = []
    for i in range(repeat):
        for attempt in range(1 + noisy_retries):
            if quiet_wait > 0:
                wait_quiet(quiet_wait)
            warm_cache(source)  # again: other processes may have evicted it
            print(f"  {engine.name:<12} {cpus} CPU  run {i + 1}/{repeat} ...", end="", file=sys.stderr, flush=True)
            timing, stdout = run_engine(engine, source, out_dir, cpus, types, engine_path)
            noisy = timing["background"] >= NOISE_CPUS
            noise = f", other processes used {timing['background']:.2f} CPUs" if noisy else ""
            retry = " (noisy: again)" if noisy and attempt < noisy_retries else ""
            print(f" {timing['wall']:.2f} s, {timing['rss'] / 1024:.0f} MiB{noise}{retry}", file=sys.stderr)
            if not retry:
                break
        runs.append((timing, stdout))
        if timing.get("exit", 0) != 0:
            break
    walls = [t["wall"] for t, _ in runs]
    median = statistics.median(walls)
    timing, stdout = min(runs, key=lambda r: abs(r[0]["wall"] - median))  # the median run's figures
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    m = Measurement(
        engine=engine.name,
        cpus=cpus,
        dataset=source.name,
        input_bytes=manifest.bytes,
        wall_s=median,
        user_s=timing.get("user", 0.0),
        sys_s=timing.get("sys", 0.0),
        cpu_percent=int(timing.get("cpu", 0)),
        max_rss_kib=int(max(t["rss"] for t, _ in runs)),
        exit_code=int(timing.get("exit", 0)),
        peer=json.loads(lines[-1]) if lines else {},
        runs_wall_s=walls,
        background_cpus=round(timing.get("background", 0.0), 2),
        engine_version=engine_version if engine.contract is not None else "",
    )
    module = str(m.peer.get("module", ""))
    if engine.contract is not None and m.exit_code == 0 and not module.startswith(str(engine_path)):
        m.checks.append(f"ran sluice from {module}, not from the snapshot {engine_path}")
    if m.exit_code == 0:
        m.rows, m.amount_cents, m.quantity, m.output_files, m.output_bytes = read_back(out_dir)
        check(m, manifest)
    else:
        m.checks.append(f"exit code {m.exit_code}")
    if not keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return m


def engine_fingerprint() -> str:
    """Short hash of every ``src/sluice`` source file: which engine code a run measured."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "sluice").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def warm_cache(path: Path) -> None:
    """Read the input once so every engine starts from the same (warm) page cache."""
    with path.open("rb") as f:
        while f.read(16 * MIB):
            pass


# ------------------------------------------------------------------------------------- cold import
IMPORT_PROBE = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


def cold_import(samples: int = 5) -> dict[str, Any]:
    """Import time of the built Transform handler in a fresh ``python -S`` with only the artifact on its path.

    The environment (PYTHONPATH = function dir, layers' python/, runtime boto3; template env
    vars) comes from ``tests/artifact/lambda_artifact.py``, the same helper the artifact tests use.
    """
    sys.path.insert(0, str(REPO / "tests" / "artifact"))
    try:
        la: Any = importlib.import_module("lambda_artifact")
    finally:
        sys.path.pop(0)
    function = "TransformFunction"
    if not (la.BUILD_DIR / "template.yaml").is_file():
        return {"status": "skipped", "reason": f"no sam build output in {la.BUILD_DIR}: run `make build`"}
    if la.built_architecture() not in (None, la.host_architecture()):
        return {"status": "skipped", "reason": f"layers built for {la.built_architecture()}"}
    la.ensure_runtime_dir()
    env = la.lambda_environment(function)
    cwd = la.BUILD_DIR / function
    seconds: list[float] = []
    for _ in range(samples):
        proc = subprocess.run(
            [la.lambda_python(), "-S", "-c", IMPORT_PROBE],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            return {"status": "failed", "reason": proc.stderr[-2000:]}
        seconds.append(float(proc.stdout.strip().splitlines()[-1]))
    layers = [p for p in la.built_paths(function)[1:] if p.is_dir()]
    py = sum(1 for d in layers for _ in d.rglob("*.py"))
    pyc = sum(1 for d in layers for _ in d.rglob("*.pyc"))
    newest_src = max(p.stat().st_mtime for p in (REPO / "src" / "sluice").rglob("*.py"))
    built = (la.BUILD_DIR / "template.yaml").stat().st_mtime
    return {
        "status": "ok",
        "first_s": round(seconds[0], 4),
        "median_s": round(statistics.median(seconds), 4),
        "samples_s": [round(s, 4) for s in seconds],
        "pythonpath": env["PYTHONPATH"],
        "layer_py_files": py,
        "layer_pyc_files": pyc,
        "build_older_than_src": built < newest_src,
    }


# --------------------------------------------------------------------------------------- reporting
@dataclass(frozen=True)
class Target:
    name: str
    verdict: str  # PASS, MISS, n/a
    detail: str


def _find(ms: Sequence[Measurement], engine: str, cpus: int) -> Measurement | None:
    for m in ms:
        if m.engine == engine and m.cpus == cpus and m.dataset.find("-bad") < 0:
            return m
    return None


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def evaluate(by_size: dict[str, list[Measurement]], import_result: dict[str, Any] | None) -> list[Target]:
    """Issue 4's targets over what was measured (a target needs its engines and CPU setting)."""
    targets: list[Target] = []
    for size, ms in by_size.items():
        note = "" if size == "1gb" else f" [measured at {size}; the target is defined at 1gb]"
        s2, pl2, dd2 = _find(ms, "sluice", 2), _find(ms, "polars", 2), _find(ms, "duckdb", 2)
        if s2 and pl2 and s2.ok and pl2.ok:
            r = s2.mib_s / pl2.mib_s
            targets.append(
                Target(f"{size}: throughput >= 1.25x polars (2 CPUs)", _verdict(r >= 1.25), f"{r:.2f}x{note}")
            )
        if s2 and dd2 and s2.ok and dd2.ok:
            r = s2.mib_s / dd2.mib_s
            targets.append(Target(f"{size}: throughput >= 1.5x DuckDB (2 CPUs)", _verdict(r >= 1.5), f"{r:.2f}x{note}"))
        for cpus in (2, 1):
            fl, pl, sl = _find(ms, "floor", cpus), _find(ms, "polars", cpus), _find(ms, "sluice", cpus)
            if fl and pl and fl.ok and pl.ok:
                of_sluice = f"; sluice runs at {sl.mib_s / fl.mib_s:.2f}x the floor" if sl and sl.ok else ""
                targets.append(
                    Target(
                        f"{size}: pyarrow floor vs polars ({cpus} CPU; parse + encode only, not a target)",
                        "info",
                        f"{fl.mib_s / pl.mib_s:.2f}x: no engine on pyarrow's parser and encoder gets past this"
                        f"{of_sluice}",
                    )
                )
        sluices = [m for m in ms if m.engine.startswith("sluice") and m.ok]
        if sluices:
            worst = max(sluices, key=lambda m: m.rss_mib)
            targets.append(
                Target(
                    f"{size}: sluice peak RSS <= 400 MB (every sluice run)",
                    _verdict(worst.rss_mib <= 400),
                    f"max {worst.rss_mib:.0f} MiB ({worst.engine}, {worst.cpus} CPU)",
                )
            )
        for cpus in (2, 1):
            flat, part = _find(ms, "sluice", cpus), _find(ms, "sluice-part", cpus)
            if flat and part and flat.ok and part.ok:
                r = part.wall_s / flat.wall_s
                targets.append(
                    Target(
                        f"{size}: partitioned time <= 1.25x unpartitioned ({cpus} CPU)",
                        _verdict(r <= 1.25),
                        f"{r:.2f}x ({part.output_files} partitions), RSS {part.rss_mib:.0f} vs {flat.rss_mib:.0f} MiB",
                    )
                )
        for cpus in (2, 1):
            s, p = _find(ms, "sluice", cpus), _find(ms, "polars", cpus)
            if s and p and s.ok and p.ok:
                targets.append(
                    Target(
                        f"{size}: output <= polars' ({cpus} CPU)",
                        _verdict(s.output_bytes <= p.output_bytes),
                        f"{s.output_bytes / MIB:.1f} vs {p.output_bytes / MIB:.1f} MiB",
                    )
                )
                break
        s1, pd1 = _find(ms, "sluice", 1), _find(ms, "pandas", 1)
        if s1 and pd1 and s1.ok and pd1.ok:
            r = s1.mib_s / pd1.mib_s
            mem = s1.rss_mib / pd1.rss_mib
            targets.append(Target(f"{size}: 1 CPU throughput >= 1.33x pandas", _verdict(r >= 1.33), f"{r:.2f}x"))
            targets.append(
                Target(
                    f"{size}: 1 CPU memory <= 1/5 of pandas'",
                    _verdict(mem <= 0.2),
                    f"{mem:.2f} ({s1.rss_mib:.0f} vs {pd1.rss_mib:.0f} MiB)",
                )
            )
        bad = [m for m in ms if m.dataset.find("-bad") >= 0]
        for m in bad:
            targets.append(
                Target(
                    f"{size}: with bad rows, every row in Parquet or quarantine ({m.engine})",
                    "PASS" if m.ok else "FAIL",
                    "; ".join(m.checks)
                    or f"{m.peer.get('rows_rejected')} of {m.peer.get('rows_in')} rows quarantined, "
                    f"by rule as generated",
                )
            )
            clean = _find(ms, m.engine, m.cpus)
            if m.ok and clean is not None and clean.ok:
                targets.append(
                    Target(
                        f"{size}: cost of bad rows ({m.engine}, {m.cpus} CPU; not a target)",
                        "info",
                        f"{m.wall_s / clean.wall_s:.2f}x the clean file's time, RSS {m.rss_mib:.0f} MiB, "
                        f"{m.peer.get('rows_rejected')} rejects",
                    )
                )
        failed = [m for m in ms if not m.ok and m not in bad]
        targets.append(
            Target(
                f"{size}: all outputs have the expected rows and sums",
                "FAIL" if failed else "PASS",
                "; ".join(f"{m.engine}/{m.cpus}: {', '.join(m.checks)}" for m in failed)
                or "row counts and sum(amount), sum(quantity) equal across engines",
            )
        )
    sized = {
        size: max((m.rss_mib for m in ms if m.engine == "sluice" and m.ok), default=0.0) for size, ms in by_size.items()
    }
    sized = {k: v for k, v in sized.items() if v}
    if len(sized) > 1:
        order = sorted(sized, key=parse_size)
        growth = sized[order[-1]] / sized[order[0]]
        targets.append(
            Target(
                f"sluice RSS flat from {order[0]} to {order[-1]} (<= 400 MB, growth <= 10%)",
                _verdict(growth <= 1.10 and max(sized.values()) <= 400),
                ", ".join(f"{k}: {sized[k]:.0f} MiB" for k in order),
            )
        )
    if import_result is not None:
        if import_result.get("status") == "ok":
            med = import_result["median_s"]
            stale = (
                " (build older than src/sluice: `make build` first)" if import_result["build_older_than_src"] else ""
            )
            targets.append(
                Target(
                    "Transform handler cold import <= 0.5 s",
                    _verdict(med <= 0.5),
                    f"median {med:.3f} s, first {import_result['first_s']:.3f} s, "
                    f"{import_result['layer_pyc_files']} .pyc / {import_result['layer_py_files']} .py "
                    f"in the layers{stale}",
                )
            )
        else:
            targets.append(Target("Transform handler cold import <= 0.5 s", "n/a", import_result.get("reason", "")))
    return targets


def table(rows: Sequence[Sequence[str]], header: Sequence[str], *, left: int = 1) -> str:
    """Plain-text table; the first `left` columns are left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        cells = [
            str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def report(size: str, manifest: Manifest, ms: Sequence[Measurement], types: str) -> str:
    lines = [
        f"\n== {size}: {Path(manifest.path).name}, {manifest.bytes / MIB:,.0f} MiB, {manifest.rows:,} rows"
        f" (MB = MiB = 2^20 bytes; wall = whole process incl. imports; RSS = max resident set)"
    ]
    snapshots = sorted({m.engine_version for m in ms if m.engine_version})
    if snapshots:
        threads = sorted({f"{m.cpus} CPU: {m.peer.get('threads')}" for m in ms if "threads" in m.peer})
        lines.append(
            f"sluice: src/sluice snapshot {', '.join(snapshots)}, default ConvertOptions, threads "
            f"({'; '.join(threads)}); peers' column types: {types}"
        )
    rows = []
    for m in ms:
        label = m.engine + (" (bad rows)" if "-bad" in m.dataset else "")
        rows.append(
            [
                label,
                str(m.cpus),
                f"{m.wall_s:.2f}",
                f"{m.mib_s:.1f}",
                f"{m.rss_mib:.0f}",
                f"{m.output_bytes / MIB:.1f}",
                str(m.output_files),
                f"{m.peer.get('seconds', 0):.2f}",
                f"{m.background_cpus:.2f}",
                "ok" if m.ok else "FAIL",
            ]
        )
    lines.append(
        table(
            rows,
            ["engine", "cpus", "wall s", "MB/s", "peak RSS MB", "output MB", "files", "work s", "bg CPUs", "check"],
        )
    )
    ratio_rows = []
    for m in ms:
        if not m.engine.startswith("sluice") or "-bad" in m.dataset or not m.ok:
            continue
        for peer in ("polars", "duckdb", "pandas", "pyarrow", "floor"):
            p = _find(ms, peer, m.cpus)
            if p is None or not p.ok:
                continue
            ratio_rows.append(
                [m.engine, peer, str(m.cpus), f"{m.mib_s / p.mib_s:.2f}x", f"{m.rss_mib / p.rss_mib:.2f}x"]
            )
    if ratio_rows:
        lines.append("")
        lines.append(table(ratio_rows, ["sluice", "vs peer", "cpus", "throughput ratio", "memory ratio"], left=2))
    noisy = [m for m in ms if m.background_cpus >= NOISE_CPUS]
    if noisy:
        lines.append(
            f"  ! other processes kept up to {max(m.background_cpus for m in noisy):.2f} CPUs busy during "
            f"{len(noisy)} run(s) (bg CPUs column): those figures are not clean"
        )
    for m in ms:
        if not m.ok and m.checks:
            lines.append(f"  ! {m.engine} {m.cpus} CPU: {'; '.join(m.checks)}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in ("pyarrow", "pandas", "duckdb", "polars", "numpy"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "missing"
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    return {
        "git_head": head.stdout.strip(),
        "engine_version": engine_fingerprint(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "packages": versions,
    }


# -------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", help="100mb (default), 1gb, 3gb; repeat for several")
    parser.add_argument("--cpus", choices=("1", "2", "both"), default="both", help="CPUs per engine (taskset)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma list of {', '.join(ENGINES)}")
    parser.add_argument(
        "--types",
        choices=("infer", "contract"),
        default="infer",
        help="peers' column types: their own inference (default) or the contract's",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the median is reported")
    parser.add_argument(
        "--bad-fraction",
        type=float,
        default=0.001,
        help="extra sluice-only run on a file with this share of bad rows (0 to skip)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-import", action="store_true", help="skip the cold import measurement")
    parser.add_argument("--keep-output", action="store_true", help="keep the Parquet under benchmarks/out/runs/")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each run, wait up to this many seconds for other processes to go idle (0: don't)",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=2,
        help="run again (up to this many times) when other processes used >= 0.1 CPUs during a run",
    )
    args = parser.parse_args(argv)

    if not TIME_BIN.is_file():
        raise SystemExit("/usr/bin/time not found: install GNU time (Debian: apt-get install -y time)")
    engines = [ENGINES[e.strip()] for e in args.engines.split(",") if e.strip()]
    cpus_list = {"1": [1], "2": [2], "both": [2, 1]}[args.cpus]
    sizes = args.size or ["100mb"]
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y%m%dT%H%M%S")
    engine_path, engine_version = snapshot_engine()
    print(f"sluice engine: src/sluice snapshot {engine_version} ({engine_path.relative_to(REPO)})", file=sys.stderr)
    common: dict[str, Any] = {
        "engine_path": engine_path,
        "engine_version": engine_version,
        "types": args.types,
        "repeat": args.repeat,
        "keep": args.keep_output,
        "quiet_wait": args.quiet_wait,
        "noisy_retries": args.noisy_retries,
    }
    by_size: dict[str, list[Measurement]] = {}
    manifests: dict[str, Manifest] = {}
    for size in sizes:
        manifest = ensure_dataset(size, seed=args.seed)
        manifests[size] = manifest
        print(f"{size}: {manifest.path} ({manifest.bytes / MIB:,.0f} MiB, {manifest.rows:,} rows)", file=sys.stderr)
        warm_cache(Path(manifest.path))
        ms: list[Measurement] = []
        for cpus in cpus_list:
            for engine in engines:
                ms.append(measure(engine, manifest, cpus, **common))
        if args.bad_fraction > 0 and any(e.name == "sluice" for e in engines):
            bad = ensure_dataset(size, seed=args.seed, bad_fraction=args.bad_fraction)
            warm_cache(Path(bad.path))
            ms.append(measure(ENGINES["sluice"], bad, cpus_list[0], **{**common, "repeat": 1}))
            manifests[f"{size}-bad"] = bad
        by_size[size] = ms
        print(report(size, manifest, ms, args.types))
    if engine_fingerprint() != engine_version:
        print(f"\nnote: src/sluice changed while this ran; the sluice rows measured snapshot {engine_version}")
    import_result = None if args.no_import else cold_import()
    targets = evaluate(by_size, import_result)
    print("\n== targets (issue 4)")
    print(table([[t.verdict, t.name, t.detail] for t in targets], ["", "target", "measured"], left=3))
    record = {
        "started": started,
        "engine_snapshot": engine_version,
        "argv": sys.argv[1:],
        "environment": environment(),
        "peer_types": args.types,
        "datasets": {k: asdict(v) for k, v in manifests.items()},
        "measurements": {size: [m.to_json() for m in ms] for size, ms in by_size.items()},
        "cold_import": import_result,
        "targets": [asdict(t) for t in targets],
    }
    name = "-".join(sizes)
    path = OUT / f"results-{name}-{started}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(path, OUT / f"results-{name}-latest.json")
    print(f"\nresults: {path.relative_to(REPO)}")
    failed = any(t.verdict == "FAIL" for t in targets)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
