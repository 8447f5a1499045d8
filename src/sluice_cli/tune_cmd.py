"""``sluice tune``: the transform at the CPU share of several Lambda memory sizes, with its cost."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from sluice import prices
from sluice.contracts import load_contract
from sluice.errors import SluiceError
from sluice.tuning import (
    SFN_TRANSITIONS_PER_FILE,
    Measurement,
    firehose_cost,
    glue_job_cost,
    json_ratio,
    per_gib,
    pinned_cpus,
    pipeline_overhead_per_file,
)
from sluice_cli.display import make_console

DEFAULT_MEMORY = "1769,3538"
SAMPLE_BYTES = 1 << 20
NOISE_CPUS = 0.1  # other processes using this many CPUs during a run make its time unclean


def register(subparsers: Any) -> None:
    """Add ``tune``."""
    p = subparsers.add_parser(
        "tune",
        help="convert a file at the CPU share of several Lambda memory sizes: time, memory, GB-seconds, cost",
        description="Run `sluice convert`'s engine on FILE once per memory size, pinned to that size's vCPUs "
        "(1 per 1,769 MB, at most this machine's CPUs) with the engine's threads picked as on Lambda, and "
        f"report wall time, peak RSS, GB-seconds and cost at list prices ({prices.REGION}, "
        f"{prices.PRICE_LIST_DATE}).",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--contract", "-c", required=True, type=Path, metavar="C.yaml")
    p.add_argument(
        "--memory",
        default=DEFAULT_MEMORY,
        metavar="MB[,MB...]",
        help=f"Lambda memory sizes to try (default {DEFAULT_MEMORY})",
    )
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per size; the median is reported")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30,
        metavar="S",
        help="before each run, wait up to S seconds for other processes to go quiet (default 30)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def memory_sizes(text: str) -> list[int]:
    """``"1769,3538"`` -> [1769, 3538]; Lambda allows 128 to 10,240 MB."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SluiceError(f"--memory takes MB sizes separated by commas, got {text!r}") from None
    bad = [m for m in sizes if not 128 <= m <= 10240]
    if not sizes or bad:
        raise SluiceError(f"--memory: Lambda memory is 128 to 10240 MB, got {text!r}")
    return sizes


def cpu_busy_seconds() -> float:
    """CPU-seconds all CPUs of the machine have been busy since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, threshold: float = NOISE_CPUS) -> None:
    """Wait (up to `limit_s`) until other processes use under `threshold` CPUs for 3 s in a row."""
    deadline, quiet = time.monotonic() + limit_s, 0
    while quiet < 3 and time.monotonic() < deadline:
        b0, t0 = cpu_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        quiet = quiet + 1 if (cpu_busy_seconds() - b0) / (time.monotonic() - t0) < threshold else 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_once(file: Path, contract: Path, memory_mb: int, cpus: Sequence[int]) -> dict[str, Any]:
    """One conversion in a child process pinned to `cpus`, with Lambda's memory size in its environment."""
    out = Path(tempfile.mkdtemp(prefix="sluice-tune-"))
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb)}
    try:
        busy, own = cpu_busy_seconds(), _children_cpu()
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sluice_cli.tune_worker", str(file), str(contract), str(out)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),  # this process is single-threaded
        )
        wall = time.perf_counter() - began
        others = (cpu_busy_seconds() - busy) - (_children_cpu() - own)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SluiceError(f"the conversion at {memory_mb} MB failed: {done.stderr.strip()[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_seconds"] = wall
    report["background_cpus"] = max(0.0, others / max(1e-9, wall))
    return report


def measure(file: Path, contract: Path, memory_mb: int, repeat: int, quiet_wait: float = 0) -> Measurement:
    """The median of `repeat` conversions at `memory_mb` (each after waiting up to `quiet_wait` s for quiet)."""
    allowed = sorted(os.sched_getaffinity(0))
    cpus = allowed[: pinned_cpus(memory_mb, len(allowed))]
    runs = []
    for _ in range(max(1, repeat)):
        if quiet_wait > 0:
            wait_quiet(quiet_wait)
        runs.append(measure_once(file, contract, memory_mb, cpus))
    runs.sort(key=lambda r: float(r["seconds"]))
    mid = runs[len(runs) // 2]
    return Measurement(
        memory_mb=memory_mb,
        cpus=len(cpus),
        threads=int(mid["threads"]),
        seconds=float(mid["seconds"]),
        init_seconds=statistics.median(float(r["init_seconds"]) for r in runs),
        peak_rss_bytes=max(int(r["peak_rss_bytes"]) for r in runs),
        input_bytes=int(mid["input_bytes"]),
        rows_in=int(mid["rows_in"]),
        background_cpus=float(mid["background_cpus"]),
    )


def comparisons(measured: Sequence[Measurement], ratio: float) -> dict[str, Any]:
    """Per file and per GiB: Glue (lower bound, at sluice's 1-vCPU speed) and Firehose, beside the pipeline overhead."""
    base = min(measured, key=lambda m: m.cpus)
    size = base.input_bytes
    rate = size / max(1e-9, base.seconds * base.cpus)  # bytes per vCPU-second
    json_bytes = round(size * ratio)
    glue_per_file = glue_job_cost(size, rate)
    return {
        "file_bytes": size,
        "price_list": f"list prices as of {prices.PRICE_LIST_DATE}, {prices.REGION}",
        "pipeline_overhead_per_file": pipeline_overhead_per_file(),
        "sfn_transitions_per_file": SFN_TRANSITIONS_PER_FILE,
        "glue_job_per_file": glue_per_file,
        "glue_per_gib_batched": per_gib(glue_job_cost(1000 * size, rate), 1000 * size),
        "firehose_json_ratio": round(ratio, 2),
        "firehose_per_file": firehose_cost(json_bytes),
        "firehose_per_gib": per_gib(firehose_cost(json_bytes), size),
    }


def run(args: argparse.Namespace) -> int:
    """Measure every memory size and print the table (or JSON)."""
    sizes = memory_sizes(args.memory)
    contract = load_contract(args.contract)
    if not args.file.is_file():
        raise SluiceError(f"{args.file}: no such file")
    with args.file.open("rb") as f:
        sample = f.read(SAMPLE_BYTES).decode(contract.dialect.encoding, errors="replace")
    lines = sample.split("\n", contract.dialect.skip_rows)
    ratio = json_ratio(lines[-1], contract.dialect.delimiter, contract.dialect.quote_char)
    console = make_console(stderr=True)
    measured = []
    for memory_mb in sizes:
        with console.status(f"converting {args.file.name} at {memory_mb} MB…"):
            measured.append(
                measure(args.file.resolve(), args.contract.resolve(), memory_mb, args.repeat, args.quiet_wait)
            )
    rows = [m.to_row() for m in measured]
    extra = comparisons(measured, ratio)
    if args.json:
        print(json.dumps({"file": str(args.file), "results": rows, "comparisons": extra}, indent=2))
        return 0
    show(args.file, rows, extra, len(os.sched_getaffinity(0)))
    return 0


def show(file: Path, rows: Sequence[dict[str, Any]], extra: dict[str, Any], local_cpus: int) -> None:
    """The results table and the comparison lines."""
    console = make_console()
    size_mib = extra["file_bytes"] / (1 << 20)
    table = Table(title=f"sluice tune {file.name} ({size_mib:,.1f} MiB) — {extra['price_list']}")
    for name in (
        "memory MB",
        "vCPU",
        "CPUs",
        "threads",
        "wall s",
        "init s",
        "peak RSS MiB",
        "MiB/s",
        "GB-s",
        "bg CPUs",
    ):
        table.add_column(name, justify="right")
    for name in ("$/GiB x86", "$/GiB arm", "$/1k files x86", "$/1k files arm"):
        table.add_column(name, justify="right")
    for r in rows:
        note = "" if r["cpu_matched"] else "*"
        table.add_row(
            f"{r['memory_mb']:,}",
            f"{r['vcpu_share']:.2f}",
            f"{r['cpus_pinned']}{note}",
            str(r["threads"]),
            f"{r['seconds']:.2f}",
            f"{r['init_seconds']:.2f}",
            f"{r['peak_rss_mib']:,.0f}" + ("" if r["fits_memory"] else " (!!)"),
            f"{r['mib_per_second']:,.0f}",
            f"{r['gb_seconds']:.3f}",
            f"{r['background_cpus']:.2f}" + (" (!)" if r["background_cpus"] >= NOISE_CPUS else ""),
            f"{r['usd_per_gib']['x86_64']:.5f}",
            f"{r['usd_per_gib']['arm64']:.5f}",
            f"{r['usd_per_1000_files']['x86_64']:.3f}",
            f"{r['usd_per_1000_files']['arm64']:.3f}",
        )
    console.print(table)
    if any(not r["cpu_matched"] for r in rows):
        console.print(
            f"* this machine has {local_cpus} CPUs: sizes whose vCPU share is above that (or a fraction) ran on "
            "the nearest whole number of CPUs it has, so their time is not Lambda's"
        )
    if any(r["background_cpus"] >= NOISE_CPUS for r in rows):
        console.print(
            f"bg CPUs (!): other processes used ≥ {NOISE_CPUS} CPUs during the run: its time is slower than on an "
            "idle machine (run again when the machine is quiet)"
        )
    if any(not r["fits_memory"] for r in rows):
        console.print("(!!) peak RSS above the memory size: Lambda would stop the function")
    console.print(
        f"wall s = the conversion (a warm invocation's duration, without the S3 transfer); init s = imports "
        f"(a cold start adds them). Per file besides Transform: {extra['sfn_transitions_per_file']} state "
        f"transitions, S3 requests and 4 small invocations ≈ ${extra['pipeline_overhead_per_file']:.6f}."
    )
    console.print(
        f"Glue 2.0+ (2 DPU, 1-minute minimum): ≥ ${extra['glue_job_per_file']:.4f} per file as one job run, "
        f"≥ ${extra['glue_per_gib_batched']:.4f}/GiB batched. Firehose (JSON → Parquet, rows as "
        f"{extra['firehose_json_ratio']}x the CSV bytes): ${extra['firehose_per_file']:.6f} per file, "
        f"${extra['firehose_per_gib']:.4f}/GiB."
    )
