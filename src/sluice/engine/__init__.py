"""The engine: one streaming pass from raw CSV bytes to checked, partitioned Parquet (no AWS)."""
