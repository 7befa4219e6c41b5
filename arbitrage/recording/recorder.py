"""The Recorder: a BookListener that hands books to a writer thread of its own.

The thread that delivers a book (a stream's, or the tick's for the mock market) only puts it on a
bounded queue: when the queue is full the book is dropped and counted, never waited for, so
recording cannot slow a tick. The writer thread groups books per venue into row groups (every
`flush_rows` books or `flush_s` seconds), rotates each venue's file at the UTC day and at
`max_file_mb`, and keeps the whole recording under `max_total_mb` by deleting the oldest files.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from arbitrage.clock import Clock
from arbitrage.config import RecordConfig
from arbitrage.domain.book import OrderBook
from arbitrage.recording.day_file import DayFile, salvage
from arbitrage.recording.format import SCHEMA, file_metadata, rows_of, utc_day
from arbitrage.recording.retention import enforce_cap

log = logging.getLogger("arbitrage.recording")

MB = 1024 * 1024
DAY_S = 86_400.0  # a UTC day: epoch seconds have no leap seconds
_STOP = object()  # queued by close(): everything before it is written first
JOIN_TIMEOUT_S = 30.0


class Recorder:
    """Call it with each OrderBook; `start()` once, `close()` at shutdown (writes what is queued)."""

    def __init__(
        self,
        config: RecordConfig,
        root: Path,
        *,
        book_depth: int,
        mode: str,
        venues: Mapping[str, str],  # venue name -> exchange id
        clock: Clock,
    ) -> None:
        self.root = root
        self._config = config
        self._depth = book_depth
        self._metadata = file_metadata(book_depth, mode, venues)
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(maxsize=config.queue_size)
        self._pending: dict[str, list[OrderBook]] = {}
        self._pending_rows = 0
        self._files: dict[str, DayFile] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0  # books the full queue refused
        self.written = 0  # books in row groups on disk
        self.failed: str | None = None  # why the writer thread stopped, if it failed

    # ----- the delivering threads' side: never blocks

    def __call__(self, book: OrderBook) -> None:
        try:
            self._queue.put_nowait(book)
        except queue.Full:
            self.dropped += 1  # a lost update under a lock-free += is a count off by one, not a stall

    # ----- lifecycle

    def start(self) -> None:
        """Close what a killed recorder left, then start the writer thread."""
        if self._thread is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        salvage(self.root)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        log.info(
            "recording books to %s (row groups of up to %d books or every %gs; files up to %g MB, "
            "%g MB in all)",
            self.root,
            self._config.flush_rows,
            self._config.flush_s,
            self._config.max_file_mb,
            self._config.max_total_mb,
        )

    def close(self) -> None:
        """Write every queued book, close each file under its final name; idempotent."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)  # blocks only while the queue is full, i.e. until the writer takes one
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            log.error("recorder still writing %.0fs after close; its open files stay .part", JOIN_TIMEOUT_S)
            return
        log.info("recording closed: %d books written, %d dropped (queue full)", self.written, self.dropped)

    # ----- the writer thread

    def _run(self) -> None:
        try:
            self._write_until_stopped()
        except Exception as err:  # a full disk must not take the bot down: say so and stop recording
            self.failed = f"{type(err).__name__}: {err}"
            log.exception("recorder failed; books are no longer recorded")
            self._drain_forever()

    def _write_until_stopped(self) -> None:
        flush_s = self._config.flush_s
        deadline = self._clock.monotonic() + flush_s
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - self._clock.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush()
                for venue in list(self._files):
                    self._files.pop(venue).close()
                return
            if isinstance(item, OrderBook):
                self._pending.setdefault(item.venue, []).append(item)
                self._pending_rows += 1
            if self._pending_rows >= self._config.flush_rows or self._clock.monotonic() >= deadline:
                self._flush()
                deadline = self._clock.monotonic() + flush_s

    def _drain_forever(self) -> None:
        """After a failure: keep taking books so that nothing waits on a full queue; count them."""
        while self._queue.get() is not _STOP:
            self.dropped += 1

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        for venue, books in pending.items():
            for day, day_books in _by_day(books):
                self._write(venue, day, day_books)
        writing = {f.part_path for f in self._files.values()}
        enforce_cap(self.root, int(self._config.max_total_mb * MB), keep=writing)

    def _write(self, venue: str, day: str, books: list[OrderBook]) -> None:
        current = self._files.get(venue)
        if current is not None and current.day != day:  # midnight UTC: the next day's file
            self._files.pop(venue).close()
            current = None
        if current is None:
            current = self._files[venue] = DayFile(self.root / venue, day, self._metadata)
        current.write(pa.Table.from_pydict(rows_of(books, self._depth), schema=SCHEMA))
        self.written += len(books)
        if current.size_bytes() >= self._config.max_file_mb * MB:
            self._files.pop(venue).close()  # the next row group starts the day's next part


def _by_day(books: list[OrderBook]) -> list[tuple[str, list[OrderBook]]]:
    """Consecutive runs of books of one UTC day (a venue's books arrive in time order)."""
    runs: list[tuple[str, list[OrderBook]]] = []
    day_start = day_end = 0.0
    for book in books:
        ts = book.received_ts
        if not runs or not day_start <= ts < day_end:
            day_start = ts - ts % DAY_S
            day_end = day_start + DAY_S
            runs.append((utc_day(ts), [book]))
        else:
            runs[-1][1].append(book)
    return runs
