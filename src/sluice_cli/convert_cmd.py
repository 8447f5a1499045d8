"""``sluice convert`` and ``sluice contract infer|check|schema|glue``: the transform on local files, no cloud."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from sluice.contracts import Contract, load_contract
from sluice.engine.infer import InferOptions, infer_contract
from sluice.engine.transform import ConvertOptions, Progress, throttled
from sluice.errors import RejectThresholdError, SluiceError
from sluice.pipeline.catalog import unprojected
from sluice.pipeline.landing import LocalDir, land
from sluice.pipeline.payloads import SourceObject
from sluice.pipeline.runid import checked, run_id_for


def register(subparsers: Any) -> None:
    """Add ``convert`` and ``contract`` to the ``sluice`` command."""
    conv = subparsers.add_parser(
        "convert",
        help="convert a local CSV file to Parquet with a dataset contract (no cloud)",
        description="Convert FILE with contract C into DIR/<dataset>/<partition>/<run_id>-<n>.parquet and "
        "DIR/_quarantine/<dataset>/<run_id>/{rejected.csv,report.json}; prints a JSON summary.",
    )
    conv.add_argument("file", type=Path, metavar="FILE")
    conv.add_argument("--contract", "-c", required=True, type=Path, metavar="C.yaml")
    conv.add_argument("--out", "-o", required=True, type=Path, metavar="DIR")
    conv.add_argument("--run-id", help="override the run id (default: derived from the file)")
    conv.add_argument("--block-size-mib", type=int, default=2, help="bytes parsed per chunk (default 2 MiB)")
    conv.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="chunks parsed and row groups encoded at once (default 0: one per CPU, at most 4)",
    )
    conv.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="a progress line on stderr (auto: when stderr is a terminal)",
    )
    conv.set_defaults(func=_convert)

    contract = subparsers.add_parser("contract", help="infer, check or describe dataset contracts")
    sub = contract.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    inf = sub.add_parser("infer", help="print a contract YAML inferred from a CSV file")
    inf.add_argument("file", type=Path, metavar="FILE")
    inf.add_argument("--dataset", help="dataset name (default: from the file name)")
    inf.add_argument("--encoding", help="skip encoding sniffing")
    inf.add_argument("--delimiter", help="skip delimiter sniffing (use \\t or tab for TAB)")
    inf.add_argument("--quote-char", help="quote character, or 'none' for files written without quoting")
    inf.add_argument("--escape-char", help="escape character (e.g. '\\' for MySQL-style \\\" quotes)")
    inf.add_argument("--header-line", type=int, help="1-based line of the header; 0 for no header")
    inf.add_argument("--sample-mib", type=int, default=8, help="how much of the file to read (default 8 MiB)")
    inf.set_defaults(func=_infer)
    chk = sub.add_parser(
        "check",
        help="validate contract files; `check OLD NEW` (two versions of one dataset) also refuses incompatible changes",
        description="Validate each contract. Given two contracts of the same dataset, OLD then NEW, also check "
        "that NEW can follow OLD: additive changes pass; a removed required column, a narrowed or changed type, "
        "a new required column or a changed partitioning are refused with the migration to make (exit 1).",
    )
    chk.add_argument("files", type=Path, nargs="+", metavar="FILE.yaml")
    chk.set_defaults(func=_check)
    sch = sub.add_parser("schema", help="print the JSON Schema of contract files")
    sch.set_defaults(func=_schema)
    glue = sub.add_parser(
        "glue",
        help="print the Glue table of contracts as CloudFormation resources for template.yaml",
        description="Print an AWS::Glue::Table resource per contract (columns, partition keys, partition "
        "projection) to paste under Resources in template.yaml.",
    )
    glue.add_argument("files", type=Path, nargs="+", metavar="FILE.yaml")
    glue.set_defaults(func=_glue)


class ProgressLine:
    """One line on a terminal, rewritten in place: share of the file read, rows, speed, time left."""

    def __init__(self, total_bytes: int, stream: TextIO) -> None:
        self.total = max(1, total_bytes)
        self.stream = stream
        self.width = 0

    def show(self, p: Progress) -> None:
        """Rewrite the line with `p`."""
        share = min(1.0, p.bytes_read / self.total)
        speed = p.bytes_read / p.seconds / (1 << 20) if p.seconds > 0 else 0.0
        left = f", {(self.total - p.bytes_read) / (speed * (1 << 20)):.0f} s left" if speed and share < 1 else ""
        if share >= 1:
            left = ", finishing the last chunks and files"
        text = (
            f"{share:6.1%} of {self.total / (1 << 20):,.0f} MiB · {p.rows_in:,} rows"
            f" ({p.rows_rejected:,} quarantined) · {speed:,.0f} MiB/s{left}"
        )
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        """End the line (the summary follows on stdout)."""
        if self.width:
            self.stream.write("\n")
            self.stream.flush()


def _glue(args: argparse.Namespace) -> int:
    import yaml

    from sluice.pipeline.catalog import glue_table, logical_id

    resources = {}
    for path in args.files:
        try:
            contract = load_contract(path)
        except SluiceError as exc:
            return _fail(str(exc))
        resources[logical_id(contract.dataset)] = glue_table(contract)
        if contract.transform:
            print(
                f"# {contract.dataset}: add the columns its transform hook {contract.transform} adds", file=sys.stderr
            )
    print(yaml.safe_dump(resources, sort_keys=False, width=1000), end="")
    return 0


def _fail(message: str) -> int:
    print(f"sluice: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def local_run_id(contract: Contract, path: Path) -> str:
    """The run id of a local file: its path and version (size, mtime) under the bucket ``local``."""
    st = path.stat()
    source: SourceObject = {"bucket": "local", "key": str(path), "etag": f"{st.st_size}-{st.st_mtime_ns}"}
    return run_id_for(contract.dataset, source)


def _convert(args: argparse.Namespace) -> int:
    """Convert one file; the JSON summary goes to stdout whatever happens (``status``, and ``error`` on failure)."""
    known: dict[str, Any] = {"run_id": None, "dataset": None, "contract_version": None, "source": str(args.file)}
    kept: list[str] = []
    failure: Exception
    try:
        summary = _convert_file(args, known, kept)
    except SluiceError as exc:
        failure, message = exc, str(exc)
    except OSError as exc:
        failure, message = exc, f"{exc.filename or args.file}: {exc.strerror or exc}"
    except Exception as exc:  # a bug: still one clear line, no traceback (SLUICE_DEBUG=1 shows it)
        if os.environ.get("SLUICE_DEBUG"):
            raise
        failure, message = exc, internal_error(args.file, exc)
    else:
        print(json.dumps({**known, "status": "succeeded", **summary}, indent=2, ensure_ascii=False))
        return 0
    error = {"type": type(failure).__name__, "message": " ".join(message.split())}
    failed = {**known, "status": "failed", "error": error, "output_files": [], "quarantine_files": kept}
    print(json.dumps(failed, indent=2, ensure_ascii=False))
    return _fail(message)


def internal_error(path: Path, exc: BaseException) -> str:
    """The one-line message of an unexpected error: what happened, that nothing was written, what to do."""
    return (
        f"{path}: internal error ({type(exc).__name__}: {exc}); nothing was written. This is a bug in sluice: "
        f"please report it with the file (SLUICE_DEBUG=1 shows the traceback)"
    )


def _convert_file(args: argparse.Namespace, known: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """Convert and place the outputs; returns the summary. `known` and `kept` (a refusal's quarantine) fill in."""
    contract = load_contract(args.contract)
    path = args.file.resolve()
    known.update(dataset=contract.dataset, contract_version=contract.version, source=str(path))
    run_id = checked(args.run_id) if args.run_id else local_run_id(contract, path)
    known["run_id"] = run_id
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(args.contract.resolve().parent))  # hooks named by the contract may live next to it
    qdir = out / "_quarantine" / contract.dataset / run_id
    options = ConvertOptions(block_size=max(1, args.block_size_mib) << 20, threads=max(0, args.threads))
    shown = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    line = ProgressLine(path.stat().st_size, sys.stderr) if shown else None
    try:
        with path.open("rb") as f:
            landed = land(
                f,
                contract,
                run_id=run_id,
                source_name=str(path),
                work_dir=out / f".staging-{run_id}",
                parquet=LocalDir(out),
                published_as=lambda key: str(out / key),
                quarantine=LocalDir(qdir),
                options=options,
                progress=throttled(line.show, 0.25) if line else None,
            )
    except RejectThresholdError:
        kept += [str(p) for p in sorted(qdir.glob("*")) if p.is_file()]  # placed for diagnosis
        raise
    finally:
        if line is not None:
            line.close()
    summary = landed.result.to_summary()
    summary.pop("rejected_path", None)
    summary.pop("report_path", None)
    for o, placed in zip(summary["outputs"], landed.outputs, strict=True):
        o["path"] = placed.uri
    quarantine = [p for p in (landed.rejected, landed.report) if p is not None]
    rows_unprojected, warnings = unprojected(contract, ((o.partition, o.rows) for o in landed.outputs))
    if warnings:
        summary |= {"rows_unprojected": rows_unprojected, "warnings": warnings}
    return {**summary, "output_files": [o.uri for o in landed.outputs], "quarantine_files": quarantine}


def _infer(args: argparse.Namespace) -> int:
    quote: Any = InferOptions.quote_char
    if args.quote_char is not None:
        quote = None if args.quote_char.lower() in ("none", "null", "") else args.quote_char
    opts = InferOptions(
        dataset=args.dataset,
        sample_bytes=max(1, args.sample_mib) << 20,
        encoding=args.encoding,
        delimiter=args.delimiter,
        quote_char=quote,
        escape_char=args.escape_char,
        header_line=args.header_line,
    )
    try:
        with args.file.open("rb") as f:
            inference = infer_contract(f, source_name=str(args.file), file_stem=args.file.stem, options=opts)
    except SluiceError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or args.file}: {exc.strerror or exc}")
    except Exception as exc:  # a bug: still one clear line, no traceback (SLUICE_DEBUG=1 shows it)
        if os.environ.get("SLUICE_DEBUG"):
            raise
        return _fail(internal_error(args.file, exc))
    sys.stdout.write(inference.to_yaml(args.file.name))
    return 0


def _check(args: argparse.Namespace) -> int:
    failed = 0
    loaded: list[Contract] = []
    for f in args.files:
        try:
            c = load_contract(f)
        except SluiceError as exc:
            print(f"sluice: error: {' '.join(str(exc).split())}", file=sys.stderr)
            failed += 1
            continue
        print(f"{f}: ok ({c.label}, {len(c.columns)} columns)")
        loaded.append(c)
    if failed:
        return 2
    if len(loaded) == 2 and loaded[0].dataset == loaded[1].dataset:
        from sluice.engine.drift import compatibility

        problems = compatibility(*loaded)
        for p in problems:
            print(f"sluice: incompatible: {loaded[1].label} cannot follow {loaded[0].label}: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"{loaded[1].label} can follow {loaded[0].label}: files of both read as one table")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(Contract.model_json_schema(by_alias=True), indent=2))
    return 0
