"""A recording's levels read a row group at a time: the reader thread reads ahead of the replay
clock and drops what the clock passed, never holding more than a few groups; a group it has not
read is read where it is asked for; a broken group's error reaches the replay."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arbitrage.recording.format import SCHEMA, RecordingError, file_metadata, table_of
from arbitrage.recording.tape import Tape, load_tape
from tests.recording.recording_rigs import T0, book, write_file

SETTLE_S = 10.0  # a bound on waiting for the reader, never a pause: each wait ends when it is idle


@pytest.fixture
def ten_groups(tmp_path: Path) -> Path:
    """40 books a second apart in groups of 4: group g holds timeline positions 4g to 4g+3."""
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", [book(T0 + s, 100.0 + s) for s in range(40)], 4)
    return tmp_path


def settled(tape: Tape) -> list[int]:
    assert tape.levels.settled(SETTLE_S), "the reader did not finish what it may read"
    return tape.levels.held()


def test_the_reader_reads_ahead_of_the_clock_and_drops_what_it_passed(ten_groups: Path) -> None:
    tape = load_tape(ten_groups, read_ahead=2)
    try:
        tape.advance(1)  # the clock at the first row
        levels = tape.levels.get(0)  # the replay's first read starts the reader
        assert levels.bid_px[levels.bid_at[1]] == 101.0
        assert settled(tape) == [0, 1, 2]  # the group the clock is at, and two ahead
        tape.advance(5)  # positions 0-4 passed: group 0 behind, group 1 reached
        assert settled(tape) == [1, 2, 3]
        misses = tape.levels.misses
        assert tape.levels.get(3).bid_px[0] == 112.0 and tape.levels.misses == misses  # read ahead
        tape.advance(40)
        assert settled(tape) == []  # the end: nothing left to hold
        assert tape.levels.most_held == 3
    finally:
        tape.close()


def test_a_group_not_read_yet_is_read_where_asked_and_kept_only_with_room(ten_groups: Path) -> None:
    tape = load_tape(ten_groups, read_ahead=1)
    try:
        tape.advance(1)
        tape.levels.get(0)
        assert settled(tape) == [0, 1]
        # A fill far ahead of the clock: read now, not kept (the one group ahead is group 1).
        assert tape.levels.get(7).bid_px[0] == 128.0
        assert tape.levels.held() == [0, 1]
        tape.advance(30)  # inside group 7: what the clock is inside is always kept
        assert tape.levels.get(7).bid_px[0] == 128.0
        assert settled(tape) == [7, 8]  # and the reader goes on from there
    finally:
        tape.close()


def test_the_cache_stays_bounded_through_a_whole_recording(tmp_path: Path) -> None:
    upbit = [book(T0 + s, 100.0 + s) for s in range(200)]
    binance = [book(T0 + s + 0.5, 50.0 + s, "binance", "BTC/USDT") for s in range(200)]
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", upbit, 8)
    write_file(tmp_path / "binance" / "2026-01-05.parquet", binance, 8)
    tape = load_tape(tmp_path, read_ahead=2)
    try:
        for position in range(tape.rows + 1):
            row = int(tape.timeline[min(position, tape.rows - 1)])
            levels, at = tape.levels_of(row)
            assert levels.bid_px[levels.bid_at[at]] == (binance + upbit)[row].best_bid  # files by venue
            tape.advance(position)
            # Two venues: a group each the clock is inside (two at a boundary), and two ahead.
            assert len(tape.levels.held()) <= 2 + 2 + 2
        assert tape.levels.most_held <= 6
    finally:
        tape.close()


def test_a_broken_group_raises_where_the_replay_reads_it(tmp_path: Path) -> None:
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", [book(T0 + s, 100.0 + s) for s in range(4)], 2)
    broken = table_of([book(T0 + 10, 1.0)], 2)
    # One price, two sizes: a row no book can be made of.
    columns = {name: broken.column(name) for name in SCHEMA.names}
    columns["bid_qty"] = pa.chunked_array([pa.array([[1.0, 2.0]], pa.list_(pa.float64()))])
    columns["bid_px"] = pa.chunked_array([pa.array([[1.0]], pa.list_(pa.float64()))])
    metadata = file_metadata(2, "mock", {"upbit": "upbit"})
    table = pa.table(columns, schema=SCHEMA).replace_schema_metadata(metadata)
    pq.write_table(table, tmp_path / "upbit" / "2026-01-05.1.parquet")
    tape = load_tape(tmp_path)
    try:
        assert tape.levels.get(0).bid_px[0] == 100.0
        settled(tape)
        with pytest.raises(RecordingError, match="prices and sizes have different lengths"):
            tape.levels_of(int(tape.timeline[-1]))
    finally:
        tape.close()
