"""A recording read back as columns: rows per market in receive order, the time range, and which
files count (closed ones only)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arbitrage.domain.book import OrderBook
from arbitrage.recording.batch_writer import BatchWriter
from arbitrage.recording.format import table_of
from arbitrage.recording.tape import RecordingError, Tape, load_tape

T0 = 1_767_571_200.0  # 2026-01-05 00:00:00 UTC


def book(venue: str, symbol: str, ts: float, bid: float, levels: int = 2) -> OrderBook:
    bids = tuple((bid - i, 1.0 + i) for i in range(levels))
    asks = tuple((bid + 1 + i, 2.0 + i) for i in range(levels))
    return OrderBook(venue, symbol, bids, asks, ts - 0.01, ts)


def write(root: Path, books: list[OrderBook]) -> list[Path]:
    writer = BatchWriter(root, 2, "mock", {"upbit": "upbit", "binance": "binance"})
    writer.write(books)
    return writer.close()


def bids(tape: Tape, row: int) -> list[float]:
    levels, at = tape.levels_of(row)
    return levels.bid_px[levels.bid_at[at] : levels.bid_at[at + 1]].tolist()


def test_rows_come_back_per_market_in_receive_order(tmp_path: Path) -> None:
    # Out of order on purpose: a venue's streams may hand over a hair out of order.
    books = [
        book("upbit", "BTC/KRW", T0 + 2, 100.0),
        book("upbit", "BTC/KRW", T0 + 1, 99.0, levels=1),
        book("binance", "BTC/USDT", T0 + 1.5, 50.0),
        book("upbit", "USDT/KRW", T0 + 0.5, 1380.0),
    ]
    files = write(tmp_path, books)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "binance/2026-01-05.parquet",
        "upbit/2026-01-05.parquet",
    ]
    tape = load_tape(tmp_path)
    assert tape.times.tolist() == [T0 + 0.5, T0 + 1, T0 + 1.5, T0 + 2]
    # Rows stay in the files' order (binance's file, then upbit's); the timeline orders them.
    assert tape.received[tape.timeline].tolist() == tape.times.tolist()
    names = [(tape.markets[m].venue, tape.markets[m].symbol) for m in tape.market_of[tape.timeline].tolist()]
    assert names == [
        ("upbit", "USDT/KRW"), ("upbit", "BTC/KRW"), ("binance", "BTC/USDT"), ("upbit", "BTC/KRW")
    ]
    one_level, two_levels = tape.timeline[1], tape.timeline[3]
    assert (bids(tape, one_level), bids(tape, two_levels)) == ([99.0], [100.0, 99.0])
    levels, at = tape.levels_of(one_level)
    assert levels.ask_qty[levels.ask_at[at] : levels.ask_at[at + 1]].tolist() == [2.0]
    assert tape.exchange.tolist() == pytest.approx([t - 0.01 for t in tape.received.tolist()])
    assert tape.ready_at() == T0 + 1.5  # the first moment every market has a book
    btc = tape.markets[tape.index()[("upbit", "BTC/KRW")]]
    assert btc.row_at(T0 + 1.9) == one_level and btc.row_at(T0 + 2) == two_levels and btc.row_at(T0) == -1
    assert tape.metadata == {"version": 1, "book_depth": 2, "mode": "mock",
                             "venues": {"upbit": "upbit", "binance": "binance"}}  # fmt: skip


def test_a_time_range_keeps_its_rows_and_the_book_standing_at_its_start(tmp_path: Path) -> None:
    books = [book("upbit", "BTC/KRW", T0 + s, 100.0 + s) for s in range(10)]
    books += [book("binance", "BTC/USDT", T0 + s + 0.5, 50.0 + s) for s in (0, 1)]  # quiet after T0+1.5
    write(tmp_path, books)
    tape = load_tape(tmp_path, T0 + 3.2, T0 + 5)
    # Each market's last book before the start comes along: the market as it stood at T0+3.2
    # (upbit's of T0+3, in the range anyway, and binance's of T0+1.5).
    assert tape.times.tolist() == [T0 + 1.5, T0 + 3, T0 + 4, T0 + 5]
    binance = tape.markets[tape.index()[("binance", "BTC/USDT")]]
    assert bids(tape, binance.row_at(T0 + 3.2))[0] == 51.0
    assert load_tape(tmp_path, T0 + 3, T0 + 5).times.tolist() == [T0 + 1.5, T0 + 2, T0 + 3, T0 + 4, T0 + 5]
    with pytest.raises(RecordingError, match="no book in the range"):
        load_tape(tmp_path, T0 + 20, T0 + 30)  # books standing before it are not in it


def test_a_file_still_being_written_is_left_out(tmp_path: Path) -> None:
    write(tmp_path, [book("upbit", "BTC/KRW", T0 + 1, 100.0)])
    # A recorder's file in progress: same format, not yet renamed.
    table = table_of([book("upbit", "BTC/KRW", T0 + 2, 101.0)], 10)
    pq.write_table(table, tmp_path / "upbit" / "2026-01-05.1.parquet.part")
    assert load_tape(tmp_path).times.tolist() == [T0 + 1]


def test_a_second_batch_of_a_day_goes_to_its_next_part(tmp_path: Path) -> None:
    write(tmp_path, [book("upbit", "BTC/KRW", T0 + 1, 100.0)])
    files = write(tmp_path, [book("upbit", "BTC/KRW", T0 + 2, 101.0)])
    assert [f.name for f in files] == ["2026-01-05.1.parquet"]
    assert load_tape(tmp_path).times.tolist() == [T0 + 1, T0 + 2]


def test_files_that_are_not_a_recording_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such directory"):
        load_tape(tmp_path / "missing")
    with pytest.raises(RecordingError, match="no recording files"):
        load_tape(tmp_path)
    (tmp_path / "upbit").mkdir()
    table = table_of([book("upbit", "BTC/KRW", T0, 1.0)], 10)
    pq.write_table(table, tmp_path / "upbit" / "2026-01-05.parquet")  # no arbitrage.recording metadata
    with pytest.raises(RecordingError, match="not a recording"):
        load_tape(tmp_path)
