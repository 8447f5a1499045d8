"""Domain errors.

Class names are part of the API: the state machine's ``Catch`` clauses match them by name
(a Lambda error's ``errorType`` is the exception class name).
"""

MAX_MESSAGE = 8_000  # characters: a Step Functions state (the caught error included) holds at most 256 KiB


class SluiceError(Exception):
    """Base of every error sluice raises on purpose.

    A message longer than :data:`MAX_MESSAGE` (a header of thousands of unexpected columns, say)
    is cut, saying how much was cut: the error travels in the state machine's payload to
    RecordFailure, and an execution whose payload overflows would end with no run record at all.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if len(text) > MAX_MESSAGE:
            text = f"{text[:MAX_MESSAGE]}... [{len(text) - MAX_MESSAGE:,} more characters cut]"
        super().__init__(text, *args)


class ContractError(SluiceError):
    """A contract file is missing or invalid."""


class UnknownDatasetError(SluiceError):
    """No contract claims the raw object's key."""


class InputRejectedError(SluiceError):
    """The raw file cannot be processed at all (encoding, header, empty, dialect).

    The message names the file, the line where known, the rule and what to do.
    """


class UnsupportedFormatError(InputRejectedError):
    """The raw object is an archive or a binary file (zip, 7z, rar, xz, Parquet, xls ...), not CSV."""


class DecompressionLimitError(InputRejectedError):
    """A compressed object expands past its contract's limits (size or ratio), like a compression bomb."""


class RejectThresholdError(InputRejectedError):
    """More rows broke the contract than the contract's ``max_reject_ratio`` allows."""


class TransientError(SluiceError):
    """A retryable failure of a dependency (throttling, timeouts)."""


class CommitConflictError(TransientError):
    """Another commit of the same raw key moved first; the commit retries on the new state."""


class CommitBusyError(TransientError):
    """Another run of the same raw key holds the key's commit lease; the commit retries after it."""


class RunNotCommittableError(SluiceError):
    """The run cannot commit any more (cleanup failed it as stuck, or it already failed)."""
