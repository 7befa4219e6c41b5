"""A recording's book levels (bid and ask prices and sizes: nearly all of its bytes), read a row
group at a time as a replay reaches them: a reader thread reads the next row groups ahead of the
replay clock (pyarrow decompresses without the GIL, so on the second core) and the groups the
clock has passed are dropped, so a replay holds a few row groups of levels, never a recording's.

What is held never changes what is read: a group the reader has not read yet (or has dropped) is
read where it is asked for, so the same recording gives the same books whatever the timing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arbitrage.recording.format import RecordingError

LEVELS = ("bid_px", "bid_qty", "ask_px", "ask_qty")
READ_AHEAD = 4  # row groups read before the clock reaches them: 2 per venue of a 2-venue recording


@dataclass(frozen=True)
class RowGroup:
    """Where a row group is: a closed recording file and the group's index in it."""

    path: Path
    index: int


@dataclass(frozen=True)
class GroupLevels:
    """One row group's levels, flattened: row p's bids are bid_px[bid_at[p]:bid_at[p+1]], best
    first (p the row's position in its group); asks likewise."""

    bid_px: np.ndarray
    bid_qty: np.ndarray
    bid_at: np.ndarray  # int64 offsets, one more than the group's rows
    ask_px: np.ndarray
    ask_qty: np.ndarray
    ask_at: np.ndarray


def read_levels(group: RowGroup) -> GroupLevels:
    """The group's level columns as numpy (views of Arrow's buffers: no copy)."""
    # Decoded on the calling thread alone, not on Arrow's pool (a thread per core): the reading
    # then takes one core at most, and leaves the other to the replay's loop.
    table = pq.ParquetFile(group.path).read_row_group(group.index, columns=list(LEVELS), use_threads=False)
    flat: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    for column in LEVELS:
        chunks = table.column(column).chunks
        values = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
        offsets[column] = _offsets(pc.fill_null(pc.list_value_length(values), 0).to_numpy())
        flat[column] = pc.list_flatten(values).to_numpy()
    if not (
        np.array_equal(offsets["bid_px"], offsets["bid_qty"])
        and np.array_equal(offsets["ask_px"], offsets["ask_qty"])
    ):
        raise RecordingError(f"{group.path}: a recorded row's prices and sizes have different lengths")
    return GroupLevels(
        flat["bid_px"], flat["bid_qty"], offsets["bid_px"], flat["ask_px"], flat["ask_qty"], offsets["ask_px"]
    )


class LevelCache:
    """The row groups a replay reads, held from a little before the clock reaches them until it has
    passed their last row. Positions are the tape's timeline positions: group g is needed from
    `first[g]` to `last[g]` (-1 for a group the tape never reaches), and `advance(position)` says
    the clock has passed every position below `position`.

    At most `ahead` groups the clock has not reached yet are held (or being read) at once; the
    groups it is inside are held until it passes them."""

    def __init__(self, groups: list[RowGroup], first: np.ndarray, last: np.ndarray,
                 ahead: int = READ_AHEAD) -> None:
        self._groups = groups
        self._first: list[int] = first.tolist()
        self._last: list[int] = last.tolist()
        self._ahead = ahead
        used = np.flatnonzero(first >= 0)
        self._schedule: list[int] = used[np.argsort(first[used], kind="stable")].tolist()
        self._changed = threading.Condition()
        self._held: dict[int, GroupLevels] = {}
        self._position = 0
        self._reading: int | None = None  # the group the reader thread is reading
        self._blocked_on: int | None = None  # the group the reader waits for room to read
        self._wake_at = 0  # the next position at which advance() drops a group or makes room
        self._reader: threading.Thread | None = None
        self._closed = False
        self._done = False  # the reader has stopped: read all, closed, or failed
        self.misses = 0  # groups read where they were asked for, the reader not there yet
        self.most_held = 0  # the most groups held at once

    def get(self, group: int) -> GroupLevels:
        """The group's levels: held, being read (waited for), or read now."""
        with self._changed:
            if self._reader is None and not self._closed:
                self._reader = threading.Thread(target=self._read_ahead, name="read-ahead", daemon=True)
                self._reader.start()
            while self._reading == group:
                self._changed.wait()
            held = self._held.get(group)
            if held is not None:
                return held
        levels = read_levels(self._groups[group])
        with self._changed:
            self.misses += 1
            # Kept if the clock is inside it, or if there is room ahead: the reader skips it then.
            if group not in self._held and self._last[group] >= self._position and (
                self._first[group] < self._position or self._ahead_count() < self._ahead
            ):
                self._hold(group, levels)
            return levels

    def advance(self, position: int) -> None:
        """The clock has passed every timeline position below `position`: drop the groups wholly
        behind it, and let the reader read on if that made room."""
        # Stored at once (an int store is atomic) so the reader and get() judge by the clock's
        # position; the lock only when a group is passed or reached: not at every tick.
        self._position = position
        if position < self._wake_at:
            return
        with self._changed:
            for group in [g for g in self._held if self._last[g] < position]:
                del self._held[group]
            if self._blocked_on is not None and not self._must_wait(self._blocked_on):
                self._blocked_on = None  # the reader reads on: not settled until it blocks again
            self._wake_at = self._next_change()
            self._changed.notify_all()

    def held(self) -> list[int]:
        with self._changed:
            return sorted(self._held)

    def settled(self, timeout: float) -> bool:
        """Wait until the reader has read all it may for now (True), or `timeout` seconds (False)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._reader is None or self._done or self._blocked_on is not None,
                timeout,
            )

    def close(self) -> None:
        """Stop the reader and let go of every group (books still held keep their own arrays)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            reader = self._reader
        if reader is not None:
            reader.join()
        with self._changed:
            self._held.clear()

    def _read_ahead(self) -> None:
        try:
            for group in self._schedule:
                if not self._read_next(group):
                    return
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _read_next(self, group: int) -> bool:
        """Read `group` once there is room for it; False when the reader must stop."""
        with self._changed:
            while not self._closed and self._must_wait(group):
                self._blocked_on = group
                self._wake_at = self._next_change()
                self._changed.notify_all()  # settled() waiters
                self._changed.wait()
            self._blocked_on = None
            if self._closed:
                return False
            if group in self._held or self._last[group] < self._position:
                return True  # read where it was asked for, or already passed
            self._reading = group
        try:
            levels = read_levels(self._groups[group])
        except (OSError, pa.ArrowException, RecordingError):
            # The replay reads the group itself when it gets there, and the error is raised there.
            with self._changed:
                self._reading = None
            return False
        with self._changed:
            self._reading = None
            if self._last[group] >= self._position:
                self._hold(group, levels)
            self._changed.notify_all()
        return True

    def _must_wait(self, group: int) -> bool:
        """No room ahead for `group` yet; a group the clock is already inside is read at once."""
        return self._first[group] >= self._position and self._ahead_count() >= self._ahead

    def _ahead_count(self) -> int:
        """Groups held or being read that the clock has not reached."""
        count = sum(1 for g in self._held if self._first[g] >= self._position)
        reading = self._reading
        return count + (reading is not None and self._first[reading] >= self._position)

    def _hold(self, group: int, levels: GroupLevels) -> None:
        self._held[group] = levels
        self.most_held = max(self.most_held, len(self._held))
        self._wake_at = self._next_change()

    def _next_change(self) -> int:
        """The lowest position at which a held group is passed (dropped) or reached (making room
        for the reader), or the reader's waiting group is reached."""
        position = self._position
        marks = [self._last[g] + 1 if self._first[g] < position else self._first[g] + 1 for g in self._held]
        if self._blocked_on is not None:
            marks.append(self._first[self._blocked_on] + 1)
        return min(marks, default=self._position + 1)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
