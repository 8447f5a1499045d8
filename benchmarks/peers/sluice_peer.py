"""sluice's engine through its Python API: ``sluice.engine.transform.convert`` with default options.

``--cprofile FILE`` writes a cProfile of the conversion (imports excluded) to FILE.
"""

from __future__ import annotations

import cProfile
import sys

from peer_io import Stopwatch, parse_args

from sluice.contracts import load_contract
from sluice.engine.transform import ConvertOptions, convert


def main() -> int:
    args = parse_args(__doc__ or "", extra=("cprofile",))
    if args.contract is None:
        raise SystemExit("sluice needs --contract")
    clock = Stopwatch()
    contract = load_contract(args.contract)
    profiler = cProfile.Profile() if "cprofile" in args.extra else None
    if profiler is not None:
        profiler.enable()
    with args.source.open("rb") as source:
        result = convert(
            source,
            contract,
            run_id="bench",
            source_name=str(args.source),
            staging_dir=args.out_dir,
            options=ConvertOptions(),
        )
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.extra["cprofile"])
    clock.report(
        "sluice",
        module=sys.modules[convert.__module__].__file__,
        threads=ConvertOptions().thread_count,
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        rows_rejected=result.rows_rejected,
        rejects_by_rule=result.rejects_by_rule,
        files=len(result.outputs),
        bytes_out=result.bytes_out,
        blank_lines=result.blank_lines,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
