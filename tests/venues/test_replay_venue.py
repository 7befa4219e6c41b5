"""The replay venue: books as recorded at the replay clock's time, IOC fills walking the book
recorded a latency after the decision, fees and balances as configured."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.orders import OrderRequest, OrderState
from arbitrage.errors import PermanentVenueError, VenueUnavailable
from arbitrage.recording.batch_writer import BatchWriter
from arbitrage.recording.tape import load_tape
from arbitrage.venues.fills import INSUFFICIENT_BALANCE, IOC_REMAINDER
from arbitrage.venues.replay import ReplayVenue
from arbitrage.venues.replay_market import ReplayMarket

T0 = 1_767_571_200.0


def krw_book(ts: float, ask: float) -> OrderBook:
    """Asks of 0.1 BTC, then 0.2 BTC 1,000 KRW higher; bids just below."""
    return OrderBook(
        "upbit", "BTC/KRW", ((ask - 1000.0, 0.5),), ((ask, 0.1), (ask + 1000.0, 0.2)), ts - 0.05, ts
    )


@pytest.fixture
def market(tmp_path: Path) -> tuple[ReplayMarket, FakeClock]:
    writer = BatchWriter(tmp_path, 2, "mock", {"upbit": "upbit"})
    # A new book each second: its asks step up 10,000 KRW a second.
    writer.write(krw_book(T0 + s, 100_000_000.0 + 10_000.0 * s) for s in range(1, 6))
    writer.close()
    clock = FakeClock(start=T0)
    return ReplayMarket(load_tape(tmp_path), clock, depth=10), clock


def venue(market: ReplayMarket, clock: FakeClock, latency_s: float = 0.0, krw: float = 1e9) -> ReplayVenue:
    config = VenueConfig(exchange="upbit", quote="KRW", taker_fee_pct=0.05, balances={"KRW": krw, "BTC": 1})
    return ReplayVenue("upbit", config, market, clock, latency_s)


def buy(cid: str, qty: str, price: float) -> OrderRequest:
    return OrderRequest(cid, "upbit", "BTC/KRW", "buy", Decimal(qty), Decimal(repr(price)))


def test_the_book_is_the_last_recorded_at_the_clock(market: tuple[ReplayMarket, FakeClock]) -> None:
    m, clock = market
    with pytest.raises(VenueUnavailable, match="no recorded book"):
        m.book("upbit", "BTC/KRW", 10)  # before the first row
    clock.advance(2.5)
    m.step()
    book = m.book("upbit", "BTC/KRW", 10)
    assert (book.received_ts, book.best_ask) == (T0 + 2, 100_020_000.0)
    assert list(book.asks) == [(100_020_000.0, 0.1), (100_021_000.0, 0.2)]
    assert m.book("upbit", "BTC/KRW", 1).asks == ((100_020_000.0, 0.1),)  # a shallower read
    with pytest.raises(PermanentVenueError, match="no recorded market 'ETH/KRW'"):
        m.book("upbit", "ETH/KRW", 10)


def test_a_fill_walks_the_book_recorded_a_latency_later(market: tuple[ReplayMarket, FakeClock]) -> None:
    m, clock = market
    clock.advance(2.0)
    m.step()
    late = venue(m, clock, latency_s=1.2)
    # The decision sees 100,020,000 at the top; the order lands on the book of T0+3 (100,030,000).
    report = late.submit(buy("a-B", "0.25", 100_040_000.0))
    assert report.state is OrderState.FILLED
    assert report.filled_qty == Decimal("0.25")
    notional = Decimal("0.1") * 100_030_000 + Decimal("0.15") * 100_031_000
    assert report.avg_price == notional / Decimal("0.25")
    assert report.fee == (notional * Decimal("0.0005")).quantize(Decimal("1e-8"))
    assert late.balances()["BTC"] == Decimal("1.25")
    assert late.balances()["KRW"] == Decimal(1_000_000_000) - notional - report.fee


def test_an_ioc_takes_what_is_left_and_the_rest_expires(market: tuple[ReplayMarket, FakeClock]) -> None:
    m, clock = market
    clock.advance(1.0)
    m.step()
    v = venue(m, clock)
    first = v.submit(buy("a-B", "0.25", 100_020_000.0))
    assert (first.state, first.filled_qty) == (OrderState.FILLED, Decimal("0.25"))
    # The same book again: what the first order took is gone until the next recorded book.
    second = v.submit(buy("b-B", "0.25", 100_020_000.0))
    assert (second.state, second.filled_qty) == (OrderState.EXPIRED, Decimal("0.05"))
    assert second.reason == IOC_REMAINDER
    assert v.submit(buy("b-B", "0.1", 100_020_000.0)).state is OrderState.REJECTED  # a duplicate id
    clock.advance(1.0)
    m.step()
    third = v.submit(buy("c-B", "0.25", 100_030_000.0))
    assert third.filled_qty == Decimal("0.25")  # a new book, full depth again


def test_an_order_the_balance_cannot_pay_is_rejected(market: tuple[ReplayMarket, FakeClock]) -> None:
    m, clock = market
    clock.advance(1.0)
    m.step()
    poor = venue(m, clock, krw=1000.0)
    report = poor.submit(buy("a-B", "0.1", 100_010_000.0))
    assert (report.state, report.reason) == (OrderState.REJECTED, INSUFFICIENT_BALANCE)
    assert poor.fetch_order("BTC/KRW", "a-B") == report
    assert poor.fetch_order("BTC/KRW", "never") is None
