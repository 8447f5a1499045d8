"""Domain errors.

Class names are part of the API: the state machine's ``Catch`` clauses match them by name
(a Lambda error's ``errorType`` is the exception class name).
"""


class SluiceError(Exception):
    """Base of every error sluice raises on purpose."""


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
