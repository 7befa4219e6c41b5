"""The recording format, fixed: what `arb record` writes and `arb replay` reads.

`<dir>/<venue>/<YYYY-MM-DD>.parquet`, one file per venue and UTC day of receive time; when a day's
file is rotated (by size, or at a restart) the next part is `<YYYY-MM-DD>.<n>.parquet`, n = 1, 2...
A file in progress is `<name>.part` and renamed when closed, so a reader never sees a torn file.
One row per book update (zstd), best level first, FX books being more symbols on their venue.
The file's key-value metadata `arbitrage.recording` is JSON: version, book_depth, mode, venues.
"""

from __future__ import annotations

import heapq
import json
import re
from array import array
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from arbitrage.domain.book import Level, OrderBook
from arbitrage.errors import ArbitrageError

FORMAT_VERSION = 1
METADATA_KEY = "arbitrage.recording"
COMPRESSION = "zstd"
SUFFIX = ".parquet"
PART_SUFFIX = ".part"  # appended to the name of the file being written

_levels = pa.list_(pa.float64())
SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("symbol", pa.string()),  # the market symbol on the venue, e.g. "BTC/KRW"
        ("exchange_ts", pa.float64()),  # seconds since the epoch, as the venue stamped it
        ("received_ts", pa.float64()),  # seconds since the epoch, when the bot got it
        ("bid_px", _levels),
        ("bid_qty", _levels),
        ("ask_px", _levels),
        ("ask_qty", _levels),
    ]
)
COLUMNS = tuple(SCHEMA.names)


class RecordingError(ArbitrageError):
    """A recording that cannot be replayed: missing, empty in the range, or not in the format."""


_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.parquet$")


def utc_day(ts: float) -> str:
    """The UTC day (YYYY-MM-DD) a receive time falls on: which file its row goes to."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def file_name(day: str, part: int) -> str:
    """The closed file's name: the day's first file, then its parts 1, 2, ..."""
    return f"{day}{SUFFIX}" if part == 0 else f"{day}.{part}{SUFFIX}"


def parse_name(name: str) -> tuple[str, int] | None:
    """(day, part) of a closed recording file's name, None for any other file."""
    match = _NAME.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2) or 0)


def file_metadata(book_depth: int, mode: str, venues: Mapping[str, str]) -> dict[str, str]:
    """The key-value metadata every file carries; `venues` maps each venue name to its exchange id."""
    document = {"version": FORMAT_VERSION, "book_depth": book_depth, "mode": mode, "venues": dict(venues)}
    return {METADATA_KEY: json.dumps(document, sort_keys=True)}


def read_metadata(path: Path) -> dict[str, Any]:
    """The `arbitrage.recording` document of a closed file."""
    raw = pq.read_schema(path).metadata or {}
    text = raw.get(METADATA_KEY.encode())
    if text is None:
        raise ValueError(f"{path}: not a recording (no {METADATA_KEY} metadata)")
    document: dict[str, Any] = json.loads(text)
    return document


def recording_files(root: Path, venue: str | None = None) -> list[Path]:
    """The closed files under `root` (one venue's, or every venue's), in day and part order."""
    if not root.is_dir():
        return []
    dirs = [root / venue] if venue is not None else sorted(p for p in root.iterdir() if p.is_dir())
    found: list[tuple[str, str, int, Path]] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in d.iterdir():
            parsed = parse_name(path.name)
            if parsed is not None:
                found.append((d.name, parsed[0], parsed[1], path))
    return [path for _venue, _day, _part, path in sorted(found)]


class BookColumns:
    """Books appended as SCHEMA's columns, their top `depth` levels a side, made a table at once.

    Levels go into flat C arrays handed to Arrow without a copy: the writer thread holds the GIL
    for a fraction of what nested Python lists would cost, which is time the tick thread gets. A
    recorder appends a few books at a time and makes one table per row group: Arrow's fixed cost
    per table (eight arrays and a schema check) spent on every few books was most of the work.
    """

    __slots__ = (
        "_depth",
        "ask_ends",
        "ask_px",
        "ask_qty",
        "bid_ends",
        "bid_px",
        "bid_qty",
        "exchange_ts",
        "received_ts",
        "symbols",
        "venues",
    )

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self.venues: list[str] = []
        self.symbols: list[str] = []
        self.exchange_ts = array("d")
        self.received_ts = array("d")
        self.bid_px, self.bid_qty, self.bid_ends = array("d"), array("d"), array("i", [0])
        self.ask_px, self.ask_qty, self.ask_ends = array("d"), array("d"), array("i", [0])

    def __len__(self) -> int:
        return len(self.venues)

    def add(self, book: OrderBook) -> None:
        depth = self._depth
        self.venues.append(book.venue)
        self.symbols.append(book.symbol)
        self.exchange_ts.append(book.exchange_ts)
        self.received_ts.append(book.received_ts)
        _add_side(book.bids, depth, self.bid_px, self.bid_qty, self.bid_ends)
        _add_side(book.asks, depth, self.ask_px, self.ask_qty, self.ask_ends)

    def table(self) -> pa.Table:
        columns = [
            pa.array(self.venues, pa.string()),
            pa.array(self.symbols, pa.string()),
            _float64(self.exchange_ts),
            _float64(self.received_ts),
            _levels_array(self.bid_ends, self.bid_px),
            _levels_array(self.bid_ends, self.bid_qty),
            _levels_array(self.ask_ends, self.ask_px),
            _levels_array(self.ask_ends, self.ask_qty),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


def table_of(books: Sequence[OrderBook], depth: int) -> pa.Table:
    """Books as a table of SCHEMA, their top `depth` levels a side."""
    columns = BookColumns(depth)
    for book in books:
        columns.add(book)
    return columns.table()


def _add_side(
    side: Sequence[Level], depth: int, px: array[float], qty: array[float], ends: array[int]
) -> None:
    columns = getattr(side, "columns", None)  # a lazily made side (venues.lazy_side): no tuples made
    if columns is not None:
        prices, sizes = columns(depth)
        px.extend(prices)
        qty.extend(sizes)
    else:
        levels = side[:depth]
        if levels:
            prices, quantities = zip(*levels, strict=True)  # in C: no Python loop over the levels
            px.extend(prices)
            qty.extend(quantities)
    ends.append(len(px))


def _float64(values: array[float]) -> pa.Array:
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])


def _levels_array(ends: array[int], values: array[float]) -> pa.Array:
    offsets = pa.Array.from_buffers(pa.int32(), len(ends), [None, pa.py_buffer(ends)])
    return pa.ListArray.from_arrays(offsets, _float64(values))


def _file_books(path: Path, start: float | None, end: float | None) -> Iterator[OrderBook]:
    """One file's books in received_ts order, row group by row group (the writer appends in order)."""
    reader = pq.ParquetFile(path)
    for index in range(reader.num_row_groups):
        group = reader.read_row_group(index, columns=list(COLUMNS)).to_pydict()
        rows = zip(
            group["venue"],
            group["symbol"],
            group["exchange_ts"],
            group["received_ts"],
            group["bid_px"],
            group["bid_qty"],
            group["ask_px"],
            group["ask_qty"],
            strict=True,
        )
        books = [
            OrderBook(v, s, tuple(zip(bp, bq, strict=True)), tuple(zip(ap, aq, strict=True)), ets, rts)
            for v, s, ets, rts, bp, bq, ap, aq in rows
            if (start is None or rts >= start) and (end is None or rts < end)
        ]
        books.sort(key=_received)  # streams of one venue may hand over a hair out of order
        yield from books


def _received(book: OrderBook) -> float:
    return book.received_ts


def _venue_books(files: list[Path], start: float | None, end: float | None) -> Iterator[OrderBook]:
    for path in files:
        yield from _file_books(path, start, end)


def read_books(root: Path | str, start: float | None = None, end: float | None = None) -> Iterator[OrderBook]:
    """Every recorded book under `root` with start <= received_ts < end, merged across venues in
    received_ts order. Files whose day is outside the range are not opened."""
    root = Path(root)
    first = utc_day(start) if start is not None else None
    last = utc_day(end) if end is not None else None
    per_venue: dict[str, list[Path]] = {}
    for path in recording_files(root):
        parsed = parse_name(path.name)
        assert parsed is not None
        day = parsed[0]
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        per_venue.setdefault(path.parent.name, []).append(path)
    streams = [_venue_books(files, start, end) for _venue, files in sorted(per_venue.items())]
    return heapq.merge(*streams, key=_received)
