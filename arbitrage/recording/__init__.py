"""Recording the market: the fixed Parquet format (format.py), the Recorder that writes it, and
reading it back as columns for a replay."""
