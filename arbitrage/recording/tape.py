"""A recording read back as columns for replay: numpy arrays per market, never a Python object per row.

A recorded day at 20 symbols x 2 venues and one update a second is 3.46M rows; a replay reads them
with pyarrow straight into numpy (times, and each side's prices and sizes flattened with offsets)
and makes a book only when the replay reads one. Only closed files are read: a `.parquet.part`
still being written by `arb record` is left out, so a replay next to a live recorder sees the data
up to the last rotated file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arbitrage.errors import ArbitrageError
from arbitrage.recording.format import (
    COLUMNS,
    FORMAT_VERSION,
    METADATA_KEY,
    parse_name,
    recording_files,
    utc_day,
)

Key = tuple[str, str]  # (venue, market symbol)


class RecordingError(ArbitrageError):
    """A recording that cannot be replayed: missing, empty in the range, or not in the format."""


@dataclass(frozen=True)
class MarketTape:
    """Where one market's rows are in the tape: their timeline indices and receive times, ascending."""

    venue: str
    symbol: str
    rows: np.ndarray  # int64 indices into the Tape's columns
    received: np.ndarray  # float64, the same rows' received_ts

    def row_at(self, ts: float) -> int:
        """The tape row of the last book received at or before `ts`; -1 if none was yet."""
        i = int(np.searchsorted(self.received, ts, side="right")) - 1
        return -1 if i < 0 else int(self.rows[i])


@dataclass(frozen=True)
class Tape:
    """Every row of a recording in receive order, as columns: row i is market `market_of[i]`'s
    book, its bids bid_px[bid_at[i]:bid_at[i+1]] best first. One timeline for all markets, so a
    replay advancing its clock takes the rows it passed as one slice of each column."""

    markets: tuple[MarketTape, ...]
    times: np.ndarray  # float64 received_ts, ascending
    exchange: np.ndarray  # float64 exchange_ts
    market_of: np.ndarray  # int32 index into markets
    bid_px: np.ndarray
    bid_qty: np.ndarray
    bid_at: np.ndarray  # int64 offsets, one more than rows
    ask_px: np.ndarray
    ask_qty: np.ndarray
    ask_at: np.ndarray
    metadata: dict[str, Any]  # the first file's arbitrage.recording document

    @property
    def rows(self) -> int:
        return len(self.times)

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def index(self) -> dict[Key, int]:
        return {(m.venue, m.symbol): i for i, m in enumerate(self.markets)}

    def ready_at(self) -> float:
        """The first time every market has a book: where a replay can start."""
        return max(float(m.received[0]) for m in self.markets)


def load_tape(root: Path | str, start: float | None = None, end: float | None = None) -> Tape:
    """The closed files under `root` with start <= received_ts <= end (open ends when None)."""
    root = Path(root)
    if not root.is_dir():
        raise RecordingError(f"--data {root}: no such directory")
    first = utc_day(start) if start is not None else None
    last = utc_day(end) if end is not None else None
    files = []
    for path in recording_files(root):
        parsed = parse_name(path.name)
        day = parsed[0] if parsed is not None else ""
        if (first is None or day >= first) and (last is None or day <= last):
            files.append(path)
    if not files:
        raise RecordingError(f"--data {root}: no recording files (<venue>/<YYYY-MM-DD>.parquet) in the range")
    metadata = _metadata(files[0])
    tables = [pq.read_table(path, columns=list(COLUMNS)) for path in files]
    table = pa.concat_tables(tables)
    received = table.column("received_ts")
    keep = None
    if start is not None:
        keep = pc.greater_equal(received, start)
    if end is not None:
        upper = pc.less_equal(received, end)
        keep = upper if keep is None else pc.and_(keep, upper)
    if keep is not None:
        table = table.filter(keep)
    if table.num_rows == 0:
        raise RecordingError(f"--data {root}: no book in the range asked")
    return _columns(table, metadata)


def _metadata(path: Path) -> dict[str, Any]:
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise RecordingError(f"{path}: not a recording (no {METADATA_KEY} metadata)")
    document: dict[str, Any] = json.loads(raw)
    if document.get("version") != FORMAT_VERSION:
        raise RecordingError(
            f"{path}: recording format version {document.get('version')!r}, expected {FORMAT_VERSION}"
        )
    return document


def _columns(table: pa.Table, metadata: dict[str, Any]) -> Tape:
    received = table.column("received_ts").to_numpy()
    # Stable: rows of one instant keep the files' order (streams may hand over a hair out of order).
    order = np.argsort(received, kind="stable")
    table = table.take(pa.array(order))
    times = received[order]
    keys = pc.binary_join_element_wise(table.column("venue"), table.column("symbol"), "\x00")
    encoded = keys.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy()
    names = encoded.dictionary.to_pylist()
    ranked = sorted(range(len(names)), key=lambda c: names[c])
    rank = np.empty(len(names), dtype=np.int32)
    rank[ranked] = np.arange(len(names), dtype=np.int32)
    market_of = rank[codes]
    markets = []
    for i, code in enumerate(ranked):
        venue, symbol = names[code].split("\x00")
        rows = np.flatnonzero(market_of == i)
        markets.append(MarketTape(venue, symbol, rows, times[rows]))
    bid_px, bid_at = _flat(table, "bid_px")
    bid_qty, bid_qty_at = _flat(table, "bid_qty")
    ask_px, ask_at = _flat(table, "ask_px")
    ask_qty, ask_qty_at = _flat(table, "ask_qty")
    if not (np.array_equal(bid_at, bid_qty_at) and np.array_equal(ask_at, ask_qty_at)):
        raise RecordingError("a recorded row's prices and sizes have different lengths")
    return Tape(
        tuple(markets), times, table.column("exchange_ts").to_numpy(), market_of,
        bid_px, bid_qty, bid_at, ask_px, ask_qty, ask_at, metadata,
    )


def _flat(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    values = table.column(column).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy()
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pc.list_flatten(values).to_numpy(), offsets
