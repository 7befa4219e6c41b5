"""Cross-exchange crypto arbitrage bot: a synchronous live loop with pluggable engines."""

__version__ = "0.1.0"
