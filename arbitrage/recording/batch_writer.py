"""Books written to a recording in one go (a script or a test that already has them), in the fixed
format: one file per venue and UTC day, written as `.part` and renamed when closed. `arb record`
writes the same files from a running bot's streams."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow.parquet as pq

from arbitrage.domain.book import OrderBook
from arbitrage.recording.format import (
    COMPRESSION,
    PART_SUFFIX,
    SCHEMA,
    file_metadata,
    file_name,
    table_of,
    utc_day,
)

ROWS_PER_GROUP = 50_000


class BatchWriter:
    """Appends books to `<root>/<venue>/<day>.parquet` (the next free part if the day's file
    exists); `close()` renames every file in progress to its final name."""

    def __init__(self, root: Path, book_depth: int, mode: str, venues: Mapping[str, str]) -> None:
        self._root = root
        self._depth = book_depth
        self._schema = SCHEMA.with_metadata(file_metadata(book_depth, mode, venues))
        self._writers: dict[tuple[str, str], tuple[pq.ParquetWriter, Path]] = {}
        self._pending: dict[tuple[str, str], list[OrderBook]] = {}

    def write(self, books: Iterable[OrderBook]) -> None:
        for book in books:
            key = (book.venue, utc_day(book.received_ts))
            rows = self._pending.setdefault(key, [])
            rows.append(book)
            if len(rows) >= ROWS_PER_GROUP:
                self._flush(key)

    def close(self) -> list[Path]:
        """Flush and close every file; the closed files' paths."""
        for key in list(self._pending):
            self._flush(key)
        closed = []
        for writer, path in self._writers.values():
            writer.close()
            final = path.with_name(path.name.removesuffix(PART_SUFFIX))
            os.replace(path, final)
            closed.append(final)
        self._writers.clear()
        return sorted(closed)

    def _flush(self, key: tuple[str, str]) -> None:
        books = self._pending.pop(key, [])
        if not books:
            return
        table = table_of(books, self._depth).replace_schema_metadata(self._schema.metadata)
        entry = self._writers.get(key)
        if entry is None:
            venue, day = key
            folder = self._root / venue
            folder.mkdir(parents=True, exist_ok=True)
            part = 0
            while (folder / file_name(day, part)).exists():
                part += 1
            path = folder / (file_name(day, part) + PART_SUFFIX)
            # Dictionaries pay for the names only: prices and sizes are nearly all distinct.
            writer = pq.ParquetWriter(
                path, self._schema, compression=COMPRESSION, use_dictionary=["venue", "symbol"]
            )
            entry = (writer, path)
            self._writers[key] = entry
        entry[0].write_table(table)
