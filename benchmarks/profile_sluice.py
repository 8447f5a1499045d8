"""Where sluice's conversion spends its time: py-spy (all threads, native frames) and cProfile (main thread).

Runs ``peers/sluice_peer.py`` on a generated file twice: once under ``py-spy record --threads
--native`` (samples of every thread, Python and C++ frames; busy samples only) and once with
cProfile. Prints, per thread, the busy seconds, the sluice functions that hold the time
(inclusive), the innermost sluice frame with the library call below it, and the hottest native
leaf symbols; then cProfile's top entries. Needs ``pip install py-spy`` (ptrace allowed).

Usage::

    python benchmarks/profile_sluice.py                        # 100 MB, unpartitioned contract
    python benchmarks/profile_sluice.py --partitioned --bad-fraction 0.001 --cpus 1
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from generate import ensure_dataset
from run import snapshot_engine

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "profile"
_PY_FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^()]+\.py):(?P<line>\d+)\)$")


def _frame(text: str) -> tuple[str, str | None]:
    """(display name, python file or None for a native frame)."""
    m = _PY_FRAME.match(text)
    if m is None:
        return re.sub(r"\s*\([^()]*\.so[^()]*\)$", "", text)[:110], None
    return f"{Path(m['file']).name}:{m['func']}", m["file"]


def _is_sluice(file: str | None) -> bool:
    return file is not None and ("sluice/" in file or file.startswith("sluice")) and "sluice_peer" not in file


def summarize_pyspy(raw: Path, rate: int, top: int) -> str:
    busy: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    innermost: dict[str, Counter[str]] = defaultdict(Counter)
    leaves: dict[str, Counter[str]] = defaultdict(Counter)
    lines = raw.read_text(encoding="utf-8", errors="replace").splitlines()
    # py-spy names a thread only once Python has named it: map thread ids to their name
    names: dict[str, str] = {}
    for line in lines:
        m = re.match(r"^thread \((\d+)\): ([^;]+);", line)
        if m:
            names[m[1]] = re.sub(r"_\d+$", "_N", m[2])
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        tid = re.match(r"^thread \((\d+)\)", frames[0])
        thread = names.get(tid[1], f"thread {tid[1]}") if tid else frames[0]
        busy[thread] += n
        parsed = [_frame(f) for f in frames[1:]]
        seen: set[str] = set()
        last_sluice = None
        for i, (name, file) in enumerate(parsed):
            if _is_sluice(file):
                if name not in seen:
                    inclusive[thread][name] += n
                    seen.add(name)
                last_sluice = i
        if last_sluice is not None:
            below = next((nm for nm, f in parsed[last_sluice + 1 :] if f is not None and not _is_sluice(f)), None)
            if below is None and last_sluice + 1 < len(parsed):
                below = parsed[last_sluice + 1][0]
            innermost[thread][f"{parsed[last_sluice][0]} -> {below or '(self)'}"] += n
        if parsed:
            leaves[thread][parsed[-1][0]] += n
    total = sum(busy.values())
    out = [f"py-spy: {total} busy samples at {rate} Hz = {total / rate:.2f} busy CPU-seconds (all threads)"]
    for thread, n in busy.most_common():
        out.append(f"\n-- thread {thread}: {n / rate:.2f} s busy ({n / total:.0%} of all busy samples)")
        for title, counter in (
            ("sluice functions (inclusive)", inclusive[thread]),
            ("innermost sluice frame -> call below it", innermost[thread]),
            ("native/Python leaf frames", leaves[thread]),
        ):
            if not counter:
                continue
            out.append(f"   {title}:")
            for name, c in counter.most_common(top):
                out.append(f"     {c / rate:6.2f} s  {c / n:5.1%}  {name}")
    return "\n".join(out)


def summarize_cprofile(path: Path, top: int) -> str:
    stats = pstats.Stats(str(path))
    rows: list[tuple[float, float, int, str]] = []
    entries = stats.stats  # type: ignore[attr-defined]
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in entries.items():
        rows.append((tottime, cumtime, ncalls, f"{Path(file).name}:{line}({func})"))
    out = ["cProfile (main thread only; imports inside the conversion included)"]
    for title in ("tottime", "cumtime"):
        out.append(f"   top {top} by {title}:   tottime   cumtime    calls")
        for r in sorted(rows, key=lambda r: -(r[0] if title == "tottime" else r[1]))[:top]:
            out.append(f"     {r[3][:70]:<70} {r[0]:8.3f}  {r[1]:8.3f}  {r[2]:7d}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100mb")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-fraction", type=float, default=0.0)
    parser.add_argument("--partitioned", action="store_true", help="use the partitioned bench contract")
    parser.add_argument("--cpus", type=int, default=2, help="pin to CPUs 0..N-1 (taskset)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    manifest = ensure_dataset(args.size, seed=args.seed, bad_fraction=args.bad_fraction)
    contract = HERE / "contracts" / ("orders_bench_partitioned.yaml" if args.partitioned else "orders_bench.yaml")
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{Path(manifest.path).stem}{'-part' if args.partitioned else ''}-{args.cpus}cpu"
    out_dir = OUT / "parquet"
    peer = [
        sys.executable,
        str(HERE / "peers" / "sluice_peer.py"),
        manifest.path,
        str(out_dir),
        "--contract",
        str(contract),
    ]
    pin = ["taskset", "-c", ",".join(str(i) for i in range(args.cpus))]
    engine_path, engine_version = snapshot_engine()  # the same copy of src/sluice run.py measures
    print(
        f"sluice: src/sluice snapshot {engine_version}, {Path(manifest.path).name}, {contract.name}, {args.cpus} CPU\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(engine_path)}

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = OUT / f"{tag}.pyspy.txt"
    if Path(pyspy).exists():
        shutil.rmtree(out_dir, ignore_errors=True)
        subprocess.run(
            [
                *pin,
                pyspy,
                "record",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--rate",
                str(args.rate),
                "--threads",
                "--native",
                "--",
                *peer,
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(summarize_pyspy(raw, args.rate, args.top))
        print(f"(raw stacks: {raw}; flamegraph: `inferno-flamegraph` or speedscope.app)\n")
    else:
        print("py-spy not installed (`pip install py-spy`): skipping the all-threads profile\n")

    prof = OUT / f"{tag}.pstats"
    shutil.rmtree(out_dir, ignore_errors=True)
    subprocess.run([*pin, *peer, "--cprofile", str(prof)], check=True, env=env)
    shutil.rmtree(out_dir, ignore_errors=True)
    print(summarize_cprofile(prof, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
