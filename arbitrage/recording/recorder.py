"""The Recorder: a BookListener that hands books to a writer thread of its own.

The thread that delivers a book (a stream's, or the tick's for the mock market) only appends it to
a bounded deque: one C call, no lock and no wake-up per book (a queue.Queue's put costs a lock and
a notify, which forty books a tick turn into a tenth of a mock tick). When the deque is full the
book is dropped and counted, never waited for. The writer thread drains it about every 50 ms, at
the moment the loop says a tick has ended (`between_ticks`), so that its conversion, which needs
the GIL, runs while the loop waits for the next tick instead of inside one; it groups
books per venue into row groups (every `flush_rows` books or `flush_s` seconds), rotates each
venue's file at the UTC day and at `max_file_mb`, and keeps the whole recording under
`max_total_mb` by deleting the oldest files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from arbitrage.clock import Clock
from arbitrage.config import RecordConfig
from arbitrage.domain.book import OrderBook
from arbitrage.recording.day_file import DayFile, salvage
from arbitrage.recording.format import BookColumns, file_metadata, utc_day
from arbitrage.recording.retention import enforce_cap

log = logging.getLogger("arbitrage.recording")

MB = 1024 * 1024
DAY_S = 86_400.0  # a UTC day: epoch seconds have no leap seconds
# The writer drains the deque at the first tick end at least DRAIN_GAP_S after its last drain, or
# DRAIN_S after that if no tick ends (`arb record` has no loop). Not at every tick end: back to back
# ticks leave no idle time to convert in, and a wake-up per tick cost more than one per 50 ms.
DRAIN_GAP_S = 0.05
DRAIN_S = 0.05
CONVERT_SLICE = 8  # books converted between two releases of the GIL (~25 us of work)
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
        self._queue: deque[OrderBook] = deque()
        self._queue_size = config.queue_size
        self._stop = threading.Event()
        self._wake = threading.Event()  # a tick ended, or close(): drain now
        # Converted at once, made tables and written at the flush: (venue, UTC day) -> columns.
        # Books are not kept as Python objects for a whole flush_s: thousands of them would make
        # every garbage collection (run by whichever thread allocates, the tick's too) walk them.
        self._pending: dict[tuple[str, str], BookColumns] = {}
        self._pending_rows = 0
        self._days: dict[str, tuple[float, float, str]] = {}  # venue -> its last book's UTC day
        self._files: dict[str, DayFile] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0  # books the full queue refused
        self.written = 0  # books in row groups on disk
        self.failed: str | None = None  # why the writer thread stopped, if it failed

    # ----- the delivering threads' side: never blocks

    def __call__(self, book: OrderBook) -> None:
        # len() and append() are each atomic; two delivering threads may overshoot the bound by a
        # book, and a lost += under a race is a count off by one: neither is worth a lock here.
        if len(self._queue) >= self._queue_size:
            self.dropped += 1
        else:
            self._queue.append(book)

    def between_ticks(self) -> None:
        """The loop finished a tick: a writer due to drain converts what is queued now, while the
        loop waits for the next tick."""
        self._wake.set()

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
        self._stop.set()  # the writer drains the deque once more, writes and closes its files
        self._wake.set()
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
        flush_s, flush_rows = self._config.flush_s, self._config.flush_rows
        deadline = self._clock.monotonic() + flush_s
        while True:
            self._stop.wait(DRAIN_GAP_S)
            self._wake.clear()  # a tick that ended meanwhile is not the next one's end
            if not self._stop.is_set():
                self._wake.wait(DRAIN_S)
            stopping = self._stop.is_set()
            self._take(flush_rows)
            if stopping:
                self._flush()
                for venue in list(self._files):
                    self._files.pop(venue).close()
                return
            if self._clock.monotonic() >= deadline:
                self._flush()
                deadline = self._clock.monotonic() + flush_s

    def _take(self, flush_rows: int) -> None:
        """Convert what the deque holds into its venue's and day's columns, a few books at a time
        with the GIL released in between: the conversion is Python work, and the interpreter would
        otherwise let this thread keep the GIL for its whole switch interval (5 ms) while a tick
        waits for it. The row groups are written once they fill."""
        take, pending, days, depth = self._queue.popleft, self._pending, self._days, self._depth
        count = len(self._queue)
        for n in range(1, count + 1):
            book = take()
            venue, ts = book.venue, book.received_ts
            day = days.get(venue)
            if day is None or not day[0] <= ts < day[1]:  # a venue's books arrive in time order
                midnight = ts - ts % DAY_S
                day = days[venue] = (midnight, midnight + DAY_S, utc_day(ts))
            columns = pending.get((venue, day[2]))
            if columns is None:
                columns = pending[(venue, day[2])] = BookColumns(depth)
            columns.add(book)
            if n % CONVERT_SLICE == 0:
                _yield_gil()
        self._pending_rows += count
        if self._pending_rows >= flush_rows:
            self._flush()

    def _drain_forever(self) -> None:
        """After a failure: keep emptying the deque so that it never fills; count what it held."""
        while not self._stop.wait(DRAIN_S):
            n = len(self._queue)
            for _ in range(n):
                self._queue.popleft()
            self.dropped += n

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        for (venue, day), columns in pending.items():
            self._write(venue, day, columns.table())
        writing = {f.part_path for f in self._files.values()}
        enforce_cap(self.root, int(self._config.max_total_mb * MB), keep=writing)

    def _write(self, venue: str, day: str, table: pa.Table) -> None:
        """Row groups of at most flush_rows rows, each into the venue's file of `day`."""
        rows = self._config.flush_rows
        for offset in range(0, table.num_rows, rows):
            current = self._files.get(venue)
            if current is not None and current.day != day:  # midnight UTC: the next day's file
                self._files.pop(venue).close()
                current = None
            if current is None:
                current = self._files[venue] = DayFile(self.root / venue, day, self._metadata)
            group = table.slice(offset, rows)
            current.write(group)
            self.written += group.num_rows
            if current.size_bytes() >= self._config.max_file_mb * MB:
                self._files.pop(venue).close()  # the next row group starts the day's next part


def _yield_gil() -> None:
    time.sleep(0)  # releases the GIL: a tick thread waiting for it takes it now, not in 5 ms
