"""Recordings written for the replay's tests with row groups of a few rows (a real one's are
50,000), so a few books span many groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from arbitrage.domain.book import OrderBook
from arbitrage.recording.format import COMPRESSION, file_metadata, table_of

T0 = 1_767_571_200.0  # 2026-01-05 00:00:00 UTC


def book(ts: float, bid: float, venue: str = "upbit", symbol: str = "BTC/KRW") -> OrderBook:
    """Two levels a side: bids of 1 and 2 at bid and bid - 1, asks of 3 and 4 at bid + 1 and bid + 2."""
    bids, asks = ((bid, 1.0), (bid - 1, 2.0)), ((bid + 1, 3.0), (bid + 2, 4.0))
    return OrderBook(venue, symbol, bids, asks, ts - 0.01, ts)


def write_file(path: Path, books: list[OrderBook], rows_per_group: int) -> None:
    """A closed recording file of `rows_per_group`-row groups (a real one's are 50,000 rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = file_metadata(2, "mock", {"upbit": "upbit", "binance": "binance"})
    table = table_of(books, 2).replace_schema_metadata(metadata)
    pq.write_table(table, path, row_group_size=rows_per_group, compression=COMPRESSION)
