"""sluice: land CSV files as clean, queryable Parquet (the domain package shipped in the Lambda layer)."""

__version__ = "0.1.0"
