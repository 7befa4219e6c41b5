"""A recording read back for replay: the small per-row columns that index it (times, market, and
where each row's levels are) as numpy arrays for the whole range, never a Python object per row;
the bulky levels are read a row group at a time as the replay reaches them (LevelCache).

A recorded day at 20 symbols x 2 venues and one update a second is 3.5M rows: its index is about
a tenth of its levels. Only closed files are read: a `.parquet.part` still being written by
`arb record` is left out, so a replay next to a live recorder sees the data up to the last rotated
file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from arbitrage.recording.format import (
    FORMAT_VERSION,
    METADATA_KEY,
    RecordingError,
    parse_name,
    recording_files,
    utc_day,
)
from arbitrage.recording.level_cache import READ_AHEAD, GroupLevels, LevelCache, RowGroup

Key = tuple[str, str]  # (venue, market symbol)
_INDEX = ["venue", "symbol", "exchange_ts", "received_ts"]


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
    """Every row of a recording in the range, in the order the files hold them: row i is market
    `market_of[i]`'s book, its levels at position `pos[i]` of row group `group[i]` (`levels_of`).
    `timeline` lists the rows in receive order for all markets at once, so a replay advancing its
    clock takes the rows it passed as one slice (the columns are never copied into that order: a
    day is 3.5M rows); the replay says how far it got (`advance`), and `levels` drops the row
    groups it passed."""

    markets: tuple[MarketTape, ...]
    times: np.ndarray  # float64 received_ts of the timeline, ascending
    timeline: np.ndarray  # int64 rows in receive order
    received: np.ndarray  # float64 received_ts per row
    exchange: np.ndarray  # float64 exchange_ts per row
    market_of: np.ndarray  # int32 index into markets, per row
    group: np.ndarray  # int32 row group (in `levels`) per row
    pos: np.ndarray  # int32 position inside its row group, per row
    levels: LevelCache
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

    def levels_of(self, row: int) -> tuple[GroupLevels, int]:
        """The row's group levels and its position in them."""
        return self.levels.get(int(self.group[row])), int(self.pos[row])

    def advance(self, position: int) -> None:
        """The replay has passed the timeline's first `position` rows."""
        self.levels.advance(position)

    def close(self) -> None:
        """Stop reading ahead (idempotent)."""
        self.levels.close()


def load_tape(root: Path | str, start: float | None = None, end: float | None = None,
              read_ahead: int = READ_AHEAD) -> Tape:
    """The closed files under `root` with start <= received_ts <= end (open ends when None), and with
    a start, each market's last book before it in the files read (its day's): the book standing at
    `start`, which a replay from there must see as the live bot would have. `read_ahead`: row groups
    of levels read before the replay reaches them."""
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
        pieces.add(path, start, end)
    # Books standing before the range are no book in it.
    if not pieces.received or (start is not None and max(float(r.max()) for r in pieces.received) < start):
        raise RecordingError(f"--data {root}: no book in the range asked")
    tape = pieces.tape(metadata, read_ahead)
    pa.default_memory_pool().release_unused()  # the index columns' Arrow buffers, now numpy
    return tape


class _Pieces:
    """Each file's index columns as numpy, joined into a Tape at the end."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}  # "venue\x00symbol" -> id in order of appearance
        self.groups: list[RowGroup] = []
        self.received: list[np.ndarray] = []
        self.exchange: list[np.ndarray] = []
        self.market: list[np.ndarray] = []
        self.group: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []

    def add(self, path: Path, start: float | None, end: float | None) -> None:
        """One file's rows in the range (and, with a start, those standing at it)."""
        # venue and symbol as dictionaries: a few distinct values over millions of rows.
        reader = pq.ParquetFile(path, read_dictionary=["venue", "symbol"])
        table = reader.read(columns=_INDEX).unify_dictionaries()  # one dictionary over the row groups
        sizes = [reader.metadata.row_group(i).num_rows for i in range(reader.num_row_groups)]
        group = np.repeat(np.arange(len(self.groups), len(self.groups) + len(sizes), dtype=np.int32), sizes)
        begins = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
        pos = (np.arange(len(group)) - begins).astype(np.int32)
        self.groups.extend(RowGroup(path, i) for i in range(len(sizes)))
        received = table.column("received_ts").to_numpy()
        codes = _market_codes(table)
        keep = None
        if start is not None:
            keep = (received >= start) | _standing_at(codes, received, start)
        if end is not None:
            upper = received <= end
            keep = upper if keep is None else keep & upper
        exchange = table.column("exchange_ts").to_numpy()
        market = self._market_ids(table, codes)
        if keep is not None:
            received, exchange, market = received[keep], exchange[keep], market[keep]
            group, pos = group[keep], pos[keep]
        if len(received):
            self.received.append(received)
            self.exchange.append(exchange)
            self.market.append(market)
            self.group.append(group)
            self.pos.append(pos)

    def _market_ids(self, table: pa.Table, codes: np.ndarray) -> np.ndarray:
        """Each row's market id (numbered as the files first name it), from the venue and
        symbol dictionaries' codes: no string per row is made."""
        venues = table.column("venue").combine_chunks().dictionary.to_pylist()
        symbols = table.column("symbol").combine_chunks().dictionary.to_pylist()
        distinct, inverse = np.unique(codes, return_inverse=True)
        ids = [
            self.names.setdefault(
                f"{venues[c // len(symbols)]}\x00{symbols[c % len(symbols)]}", len(self.names)
            )
            for c in distinct.tolist()
        ]
        return np.array(ids, dtype=np.int32)[inverse]

    def tape(self, metadata: dict[str, Any], read_ahead: int) -> Tape:
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
        group = np.concatenate(self.group)
        first, last = _spans(group[timeline], len(self.groups))
        return Tape(
            tuple(markets),
            times,
            timeline,
            received,
            np.concatenate(self.exchange),
            market_of,
            group,
            np.concatenate(self.pos),
            LevelCache(self.groups, first, last, read_ahead),
            metadata,
        )


def _spans(groups_in_order: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row group's first and last timeline position (-1 for a group with no row in range)."""
    first = np.full(count, -1, dtype=np.int64)
    last = np.full(count, -1, dtype=np.int64)
    used, at = np.unique(groups_in_order, return_index=True)
    first[used] = at
    used, back = np.unique(groups_in_order[::-1], return_index=True)
    last[used] = len(groups_in_order) - 1 - back
    return first, last


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
