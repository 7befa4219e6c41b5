"""The replay market over a recording of many row groups: books the same whichever group their
levels are in and whether it is still held, fills a latency ahead across a group boundary, and a
--from range's standing books from other files."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.book import OrderBook
from arbitrage.recording.tape import load_tape
from arbitrage.venues.replay_market import ReplayMarket
from tests.recording.recording_rigs import T0, book, write_file


def top(b: OrderBook | None) -> tuple[float | None, float | None]:
    assert b is not None
    return b.best_bid, b.best_ask


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_a_fill_a_latency_ahead_reads_the_next_row_group(tmp_path: Path, read_ahead: int) -> None:
    # Groups of 4 books a second apart: T0..T0+3 in group 0, T0+4.. in group 1.
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", [book(T0 + s, 100.0 + s) for s in range(12)], 4)
    tape = load_tape(tmp_path, read_ahead=read_ahead)
    try:
        clock = FakeClock(start=T0 + 3.5)
        market = ReplayMarket(tape, clock, depth=2)
        assert top(market.book("upbit", "BTC/KRW", 2)) == (103.0, 104.0)
        # No reading ahead: group 1 is read where the fill asks for it.
        landed = market.book_at("upbit", "BTC/KRW", clock.time() + 0.75, 2)
        assert top(landed) == (104.0, 105.0)
        assert landed is not None and list(landed.asks) == [(105.0, 3.0), (106.0, 4.0)]
        assert top(market.book_at("upbit", "BTC/KRW", clock.time() + 0.25, 2)) == (103.0, 104.0)
    finally:
        tape.close()


def test_books_read_after_their_row_group_is_dropped(tmp_path: Path) -> None:
    upbit = [book(T0 + s, 100.0 + s) for s in range(20)]
    fx = [book(T0 + 0.5, 1380.0, "upbit", "USDT/KRW")]  # one book, never updated
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", sorted(upbit + fx, key=lambda b: b.received_ts), 4)
    tape = load_tape(tmp_path, read_ahead=1)
    try:
        clock = FakeClock(start=T0 + 1)
        market = ReplayMarket(tape, clock, depth=2)
        early = market.book("upbit", "BTC/KRW", 2)  # levels not made yet: the side is lazy
        clock.advance(15.0)
        market.step()
        assert tape.levels.settled(10.0)
        assert 0 not in tape.levels.held()  # the clock passed group 0 (T0..T0+2 and the FX book)
        assert list(early.asks) == [(102.0, 3.0), (103.0, 4.0)]  # its arrays kept with the book
        misses = tape.levels.misses
        fx_book = market.book("upbit", "USDT/KRW", 1)  # another depth: made from the held levels
        assert fx_book.bids == ((1380.0, 1.0),) and tape.levels.misses == misses
        assert market.first_mid("upbit", "BTC/KRW") == 100.5  # taken at the start
        assert top(market.book("upbit", "BTC/KRW", 2)) == (116.0, 117.0)
    finally:
        tape.close()


def test_a_range_starts_with_the_books_standing_in_other_files(tmp_path: Path) -> None:
    # upbit's day in two parts, binance's market quiet after T0+1: the books standing at T0+7.5
    # are in part 1 (upbit's of T0+7) and in binance's file (its of T0+1), each in a group of its own.
    upbit = [book(T0 + s, 100.0 + s) for s in range(12)]
    write_file(tmp_path / "upbit" / "2026-01-05.parquet", upbit[:6], 2)
    write_file(tmp_path / "upbit" / "2026-01-05.1.parquet", upbit[6:], 2)
    quiet = [book(T0 + s, 50.0 + s, "binance", "BTC/USDT") for s in range(2)]
    write_file(tmp_path / "binance" / "2026-01-05.parquet", quiet, 1)
    tape = load_tape(tmp_path, T0 + 7.5, T0 + 10, read_ahead=1)
    try:
        clock = FakeClock(start=T0 + 7.5)
        market = ReplayMarket(tape, clock, depth=2)
        assert top(market.book("upbit", "BTC/KRW", 2)) == (107.0, 108.0)
        assert top(market.book("binance", "BTC/USDT", 2)) == (51.0, 52.0)
        clock.advance(2.0)
        market.step()
        assert top(market.book("upbit", "BTC/KRW", 2)) == (109.0, 110.0)
        assert market.book("binance", "BTC/USDT", 1).asks == ((52.0, 3.0),)  # its group long passed
    finally:
        tape.close()
