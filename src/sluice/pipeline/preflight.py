"""Validate step: cheap checks on a raw object before any conversion starts.

Resolves the dataset contract, reads the object's metadata and first bytes, checks that they
decode with the contract's encoding and that the header matches the contract, and decides
whether one worker converts the file or a Distributed Map fans out over byte ranges.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime

from sluice.contracts import Contract, resolve_dataset
from sluice.engine.compressed import SNIFF_BYTES, decompress_head, refuse_binary, sniff
from sluice.engine.drift import plan_header
from sluice.errors import InputRejectedError
from sluice.pipeline.payloads import RunInput, SourceObject, ValidateResult
from sluice.ports import ObjectStore

SAMPLE_BYTES = 256 * 1024
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def describe(source: SourceObject) -> str:
    """``s3://bucket/key (version v)`` for messages."""
    version = source.get("version_id")
    return f"s3://{source['bucket']}/{source['key']}" + (f" (version {version})" if version else "")


def sample_text(sample: bytes, contract: Contract, where: str, complete: bool) -> str:
    """Decode the first bytes of the file; a BOM overrides a UTF-8/UTF-16 contract encoding.

    Raises
    ------
    InputRejectedError
        The bytes do not decode; the message gives the line and byte offset.

    """
    encoding = contract.dialect.encoding
    for bom, name in _BOMS:
        if sample.startswith(bom) and (encoding.startswith("utf-8") or encoding.startswith("utf-16")):
            encoding = name
            break
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(sample, final=complete)
    except UnicodeDecodeError as exc:
        line = sample[: exc.start].count(b"\n") + 1
        raise InputRejectedError(
            f"{where} line {line} (byte {exc.start}): bytes {sample[exc.start : exc.end]!r} are not valid "
            f"{encoding} (rule dialect.encoding, contract {contract.label}); "
            "fix the file or declare its encoding in the contract"
        ) from exc


def check_header(text: str, contract: Contract, where: str) -> None:
    """Compare the header line of `text` with the contract.

    Raises
    ------
    InputRejectedError
        The file is empty or its header differs from the contract.

    """
    dialect = contract.dialect
    reader = csv.reader(
        io.StringIO(text),
        delimiter=dialect.delimiter,
        quotechar=dialect.quote_char or '"',
        quoting=csv.QUOTE_MINIMAL if dialect.quote_char else csv.QUOTE_NONE,
        escapechar=dialect.escape_char,
        doublequote=dialect.double_quote,
    )
    rows = [row for _, row in zip(range(dialect.skip_rows + 1), reader, strict=False)]
    if len(rows) <= dialect.skip_rows or not any(rows[dialect.skip_rows]):
        raise InputRejectedError(f"{where}: the file is empty (rule file.empty, contract {contract.label})")
    if not dialect.header:
        width = len(rows[dialect.skip_rows])
        if width != len(contract.columns):
            raise InputRejectedError(
                f"{where} line {dialect.skip_rows + 1}: {width} fields, contract {contract.label} declares "
                f"{len(contract.columns)} columns (rule file.header)"
            )
        return
    plan_header(rows[dialect.skip_rows], contract, where)


def fanout_blocker(contract: Contract) -> str | None:
    """Why files of `contract` cannot be split into byte ranges (None: they can).

    A range must start on a record boundary found by looking for a line break in the raw bytes,
    which holds only when no value contains a line break and a line break is one byte (not
    UTF-16). ``unique`` is checked within one worker's rows, so such contracts stay on one worker
    too (cross-range uniqueness would need a shuffle).
    """
    if contract.dialect.newlines_in_values:
        return "dialect.newlines_in_values allows line breaks inside values"
    if contract.dialect.encoding.startswith("utf-16"):
        return f"encoding {contract.dialect.encoding} has two-byte line breaks"
    unique = [c.name for c in contract.columns if c.unique]
    if unique:
        return f"unique columns ({', '.join(unique)}) are checked across the whole file"
    return None


def validate_run(
    run: RunInput, contracts: Sequence[Contract], store: ObjectStore, fanout_threshold_bytes: int
) -> ValidateResult:
    """Check the raw object of `run` against its contract and pick the conversion mode."""
    source = run["source"]
    where = describe(source)
    contract = resolve_dataset(source["key"], contracts)
    head = store.head(source["bucket"], source["key"], source.get("version_id"))
    size = int(head["ContentLength"])
    resolved = SourceObject(
        bucket=source["bucket"],
        key=source["key"],
        version_id=head.get("VersionId") or source.get("version_id"),
        etag=str(head.get("ETag", source.get("etag") or "")).strip('"') or None,
        size=size,
    )
    if size == 0:
        raise InputRejectedError(f"{where}: the file is empty (rule file.empty, contract {contract.label})")
    sample = store.read_range(source["bucket"], source["key"], 0, min(size, SAMPLE_BYTES), resolved["version_id"])
    complete = size <= SAMPLE_BYTES
    refuse_binary(sample[:SNIFF_BYTES], where)
    compression = sniff(sample)
    if compression is not None:  # the header is checked on what the sample decompresses to
        sample, complete = decompress_head(sample, compression, where), False
        refuse_binary(sample[:SNIFF_BYTES], where, inside=compression)
    check_header(sample_text(sample, contract, where, complete), contract, where)
    # a compressed object has no byte ranges to split at: one worker
    fanout = compression is None and size > fanout_threshold_bytes and fanout_blocker(contract) is None
    return ValidateResult(
        run_id=run["run_id"],
        dataset=contract.dataset,
        contract_version=contract.version,
        source=resolved,
        mode="fanout" if fanout else "single",
        started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
