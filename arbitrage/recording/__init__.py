"""Recording the market: every book the venues deliver, to Parquet files (format.py fixes the format)."""
