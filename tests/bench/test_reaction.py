"""The reaction benchmark's matching: an opportunity is known from the frame that made it, and each
order is matched to the opportunity standing in its direction when it reached the socket."""

from __future__ import annotations

from arbitrage.bench.reaction import FrameWatch, OrderWire, WiredOrder, reactions
from arbitrage.domain.book import OrderBook
from tests.runtime.mock_bot import mock_config


def book(venue: str, symbol: str, bid: float, ask: float) -> OrderBook:
    return OrderBook(venue, symbol, ((bid, 10.0),), ((ask, 10.0),), 1.0, 1.0)


def test_orders_are_timed_from_the_frame_that_opened_their_opportunity() -> None:
    watch = FrameWatch(mock_config())
    watch(book("upbit", "USDT/KRW", 1379.0, 1381.0))
    watch(book("binance", "BTC/USDT", 99_990.0, 100_000.0))
    watch(book("upbit", "BTC/KRW", 137_900_000.0, 138_000_000.0))  # no spread yet
    assert not any(watch.episodes.values())
    watch(book("upbit", "BTC/KRW", 141_000_000.0, 141_100_000.0))  # Upbit's bids 2% over: opened
    (episode,) = watch.episodes[("BTC", "binance", "upbit")]
    assert episode.closed_ns is None and not watch.episodes.get(("BTC", "upbit", "binance"))
    at = episode.opened_ns
    wire = OrderWire()
    wire.orders += [
        WiredOrder("binance", "BTC/USDT", "buy", at + 2_000_000),
        WiredOrder("upbit", "BTC/KRW", "sell", at + 3_000_000),
        WiredOrder("binance", "BTC/USDT", "buy", at + 9_000_000),  # a re-entry on the same spread
        WiredOrder("binance", "BTC/USDT", "sell", at + 4_000_000),  # the other way: no spread there
    ]
    got = reactions(watch, wire, ["upbit", "binance"])
    assert got.first_ms == [2.0, 3.0] and got.repeats == 1 and got.unmatched == 1
    assert watch.frames == 4
    watch(book("upbit", "BTC/KRW", 137_900_000.0, 138_000_000.0))  # gone again: the episode closes
    assert episode.closed_ns is not None and episode.closed_ns >= at
