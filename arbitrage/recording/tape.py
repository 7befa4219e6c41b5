"""A recording read back as columns for replay: numpy arrays per market, never a Python object per row.

A recorded day at 20 symbols x 2 venues and one update a second is 3.5M rows; a replay reads them
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
    """One market's rows of the tape in receive order, and their receive times (ascending)."""

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
    """Every row of a recording as columns, in the order the files hold them: row i is market
    `market_of[i]`'s book, its bids bid_px[bid_at[i]:bid_at[i+1]] best first. `timeline` lists the
    rows in receive order for all markets at once, so a replay advancing its clock takes the rows
    it passed as one slice (the columns are never copied into that order: a day is 3.5M rows)."""

    markets: tuple[MarketTape, ...]
    times: np.ndarray  # float64 received_ts of the timeline, ascending
    timeline: np.ndarray  # int64 rows in receive order
    received: np.ndarray  # float64 received_ts per row
    exchange: np.ndarray  # float64 exchange_ts per row
    market_of: np.ndarray  # int32 index into markets, per row
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
    """The closed files under `root` with start <= received_ts <= end (open ends when None), and with
    a start, each market's last book before it in the files read (its day's): the book standing at
    `start`, which a replay from there must see as the live bot would have."""
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
    pieces = _Pieces()
    for path in files:
        # One file at a time into numpy: never the whole recording as Arrow and numpy at once.
        # venue and symbol as dictionaries: a few distinct values over millions of rows.
        table = pq.read_table(path, columns=list(COLUMNS), read_dictionary=["venue", "symbol"])
        table = table.unify_dictionaries()  # one dictionary over the row groups
        received = table.column("received_ts")
        keep = None
        if start is not None:
            standing = _standing_at(_market_codes(table), received.to_numpy(), start)
            keep = pc.or_(pc.greater_equal(received, start), pa.array(standing))
        if end is not None:
            upper = pc.less_equal(received, end)
            keep = upper if keep is None else pc.and_(keep, upper)
        if keep is not None:
            table = table.filter(keep)
        if table.num_rows:
            pieces.add(table)
        del table, received, keep
    # Books standing before the range are no book in it.
    if not pieces.received or (start is not None and max(float(r.max()) for r in pieces.received) < start):
        raise RecordingError(f"--data {root}: no book in the range asked")
    tape = pieces.tape(metadata)
    pa.default_memory_pool().release_unused()  # the files' Arrow buffers, now numpy columns
    return tape


class _Pieces:
    """Each file's columns as numpy, joined into a Tape at the end."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}  # "venue\x00symbol" -> id in order of appearance
        self.received: list[np.ndarray] = []
        self.exchange: list[np.ndarray] = []
        self.market: list[np.ndarray] = []
        self.levels: dict[str, list[np.ndarray]] = {c: [] for c in _LEVELS}
        self.lengths: dict[str, list[np.ndarray]] = {c: [] for c in _LEVELS}

    def add(self, table: pa.Table) -> None:
        self.market.append(self._market_ids(table))
        self.received.append(table.column("received_ts").to_numpy())
        self.exchange.append(table.column("exchange_ts").to_numpy())
        for column in _LEVELS:
            values = table.column(column).combine_chunks()
            self.lengths[column].append(pc.fill_null(pc.list_value_length(values), 0).to_numpy())
            # A view of Arrow's buffer, not a copy: the columns are copied once, when joined.
            self.levels[column].append(pc.list_flatten(values).to_numpy())

    def _market_ids(self, table: pa.Table) -> np.ndarray:
        """Each row's market id (numbered as the files first name it), from the venue and
        symbol dictionaries' codes: no string per row is made."""
        venue = table.column("venue").combine_chunks()
        symbol = table.column("symbol").combine_chunks()
        venues, symbols = venue.dictionary.to_pylist(), symbol.dictionary.to_pylist()
        codes, inverse = np.unique(_market_codes(table), return_inverse=True)
        ids = [
            self.names.setdefault(
                f"{venues[c // len(symbols)]}\x00{symbols[c % len(symbols)]}", len(self.names)
            )
            for c in codes.tolist()
        ]
        return np.array(ids, dtype=np.int32)[inverse]

    def tape(self, metadata: dict[str, Any]) -> Tape:
        received = np.concatenate(self.received)
        first_seen = np.concatenate(self.market)
        names = sorted(self.names, key=self.names.__getitem__)
        rank = np.empty(len(names), dtype=np.int32)  # markets listed by venue and symbol
        rank[sorted(range(len(names)), key=lambda c: names[c])] = np.arange(len(names), dtype=np.int32)
        market_of = rank[first_seen]
        # Stable: rows of one instant keep the files' order (streams may hand over a hair out of order).
        timeline = np.argsort(received, kind="stable")
        times = received[timeline]
        markets = []
        in_timeline = market_of[timeline]
        for i, name in enumerate(sorted(names)):
            venue, symbol = name.split("\x00")
            mine = in_timeline == i
            markets.append(MarketTape(venue, symbol, timeline[mine], times[mine]))
        offsets = {c: _offsets(np.concatenate(self.lengths[c])) for c in _LEVELS}
        if not (
            np.array_equal(offsets["bid_px"], offsets["bid_qty"])
            and np.array_equal(offsets["ask_px"], offsets["ask_qty"])
        ):
            raise RecordingError("a recorded row's prices and sizes have different lengths")
        flat = {c: _joined(self.levels[c]) for c in _LEVELS}
        return Tape(
            tuple(markets),
            times,
            timeline,
            received,
            np.concatenate(self.exchange),
            market_of,
            flat["bid_px"],
            flat["bid_qty"],
            offsets["bid_px"],
            flat["ask_px"],
            flat["ask_qty"],
            offsets["ask_px"],
            metadata,
        )


_LEVELS = ("bid_px", "bid_qty", "ask_px", "ask_qty")


def _market_codes(table: pa.Table) -> np.ndarray:
    """Each row's market as one int64 of the file's venue and symbol dictionary codes
    (venue code x symbols + symbol code); the table's dictionaries already unified."""
    venue = table.column("venue").combine_chunks()
    symbol = table.column("symbol").combine_chunks()
    return venue.indices.to_numpy().astype(np.int64) * len(symbol.dictionary) + symbol.indices.to_numpy()


def _standing_at(codes: np.ndarray, received: np.ndarray, start: float) -> np.ndarray:
    """A mask of each market's last row received before `start`."""
    mask = np.zeros(len(received), dtype=bool)
    before = np.flatnonzero(received < start)
    if len(before):
        order = before[np.lexsort((received[before], codes[before]))]  # by market, then time
        last = np.append(codes[order][1:] != codes[order][:-1], True)
        mask[order[last]] = True
    return mask


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces as one array; a single piece as it is (a day per venue is one file per column)."""
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


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
