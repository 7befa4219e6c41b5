"""Recordings of market data: the fixed Parquet format, and reading it back as columns."""
