"""The seeded mock market: determinism, the mean-reverting premium, book shape, FX, consumed liquidity."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, MockAssetConfig, MockConfig, MockVenueConfig, VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.errors import PermanentVenueError
from arbitrage.venues.mock_market import MockMarket


def make_config(
    seed: int = 7,
    upbit_mock: MockVenueConfig | None = None,
    binance_mock: MockVenueConfig | None = None,
    **mock: Any,
) -> AppConfig:
    return AppConfig(
        venues={
            "upbit": VenueConfig(exchange="mock", quote="KRW", mock=upbit_mock or MockVenueConfig()),
            "binance": VenueConfig(exchange="mock", quote="USDT", mock=binance_mock or MockVenueConfig()),
        },
        mock=MockConfig(seed=seed, **mock),
    )


def make_market(config: AppConfig | None = None, clock: FakeClock | None = None) -> MockMarket:
    return MockMarket(config or make_config(), clock or FakeClock())


def levels_of(book: OrderBook) -> tuple[Any, ...]:
    return (book.bids, book.asks)


# Determinism ---------------------------------------------------------------------------------


def test_same_seed_same_books_whatever_the_reads_and_the_wall_clock() -> None:
    busy = make_market(clock=FakeClock(start=1_700_000_000.0))
    quiet = make_market(clock=FakeClock(start=1_800_000_000.0))
    for tick in range(60):
        busy.step()
        quiet.step()
        for _ in range(tick % 4):  # extra reads in some ticks must not shift the path
            busy.book("upbit", "BTC/KRW", 5)
            busy.book("binance", "ETH/USDT", 3)
        for venue, symbol in (("upbit", "BTC/KRW"), ("binance", "BTC/USDT"), ("upbit", "USDT/KRW")):
            assert levels_of(busy.book(venue, symbol, 10)) == levels_of(quiet.book(venue, symbol, 10))
        assert busy.premium_pct == quiet.premium_pct
        assert busy.fx_rate("USDT") == quiet.fx_rate("USDT")


def test_another_seed_another_path() -> None:
    a, b = make_market(make_config(seed=1)), make_market(make_config(seed=2))
    for _ in range(5):
        a.step()
        b.step()
    assert a.reference_price("BTC") != b.reference_price("BTC")
    assert a.premium_pct != b.premium_pct


# Price, premium, FX --------------------------------------------------------------------------


def test_premium_mean_reverts_and_crosses_both_sides() -> None:
    market = make_market(make_config(seed=11))
    path = []
    for _ in range(6000):
        market.step()
        path.append(market.premium_pct)
    mean = statistics.fmean(path)
    assert abs(mean - 0.2) < 0.08
    # Stationary std of the discrete OU process: vol / sqrt(1 - (1 - reversion)^2) ~ 0.47.
    assert 0.35 < statistics.pstdev(path) < 0.6
    above = sum(1 for x in path if x > 0.2)
    assert 0.35 * len(path) < above < 0.65 * len(path)
    crossings = sum(1 for x, y in itertools.pairwise(path) if (x - 0.2) * (y - 0.2) < 0)
    assert crossings > 300
    assert max(path) > 0.2 + 0.3 + 0.15  # wide enough to beat 0.3% min spread after 0.15% fees


def test_books_carry_the_premium_between_venues() -> None:
    config = make_config(
        binance_mock=MockVenueConfig(premium_pct=0.05), upbit_mock=MockVenueConfig(premium_pct=0.1)
    )
    market = make_market(config)
    for _ in range(20):
        market.step()
        ref, fx, x = market.reference_price("BTC"), market.fx_rate("USDT"), market.premium_pct
        upbit = market.mid("upbit", "BTC/KRW")
        binance = market.mid("binance", "BTC/USDT")
        assert upbit == pytest.approx(ref * (1 + (x + 0.1) / 100), rel=1e-12)
        assert binance * fx == pytest.approx(ref * (1 + 0.05 / 100), rel=1e-12)
        assert market.mid("upbit", "USDT/KRW") == pytest.approx(fx, rel=1e-12)


def test_reference_price_walk_has_the_configured_volatility() -> None:
    assets = {
        "BTC": MockAssetConfig(price=100_000_000.0, volatility_pct=0.2),
        "ETH": MockAssetConfig(price=5_000_000.0, volatility_pct=0.0),
    }
    market = make_market(make_config(assets=assets))
    prev, returns = market.reference_price("BTC"), []
    for _ in range(4000):
        market.step()
        now = market.reference_price("BTC")
        returns.append(math.log(now / prev))
        prev = now
        assert market.reference_price("ETH") == 5_000_000.0
    assert statistics.pstdev(returns) == pytest.approx(0.002, rel=0.1)


def test_fx_jitters_around_the_configured_rate() -> None:
    market = make_market(make_config(fx_rate=1400.0, fx_noise_pct=0.02))
    rates = []
    for _ in range(2000):
        market.step()
        rates.append(market.fx_rate("USDT"))
    assert statistics.fmean(rates) == pytest.approx(1400.0, rel=1e-4)
    assert statistics.pstdev(rates) == pytest.approx(1400.0 * 0.0002, rel=0.15)
    assert market.fx_rate("KRW") == 1.0
    with pytest.raises(KeyError):
        market.fx_rate("EUR")


# Books ---------------------------------------------------------------------------------------


def test_book_shape_follows_the_venue_config() -> None:
    shape = MockVenueConfig(
        half_spread_bps=3.0, depth_levels=8, level_notional=10_000_000.0, level_step_bps=2.0
    )
    clock = FakeClock(start=1_750_000_000.0)
    market = make_market(make_config(upbit_mock=shape), clock)
    market.step()
    book = market.book("upbit", "BTC/KRW", 50)
    mid = market.mid("upbit", "BTC/KRW")
    assert (book.venue, book.symbol) == ("upbit", "BTC/KRW")
    assert book.exchange_ts == book.received_ts == 1_750_000_000.0
    assert len(book.bids) == len(book.asks) == 8  # a book never invents depth
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    assert book.best_ask is not None and book.best_bid is not None
    assert book.best_ask / mid - 1 == pytest.approx(3e-4, rel=1e-9)
    assert 1 - book.best_bid / mid == pytest.approx(3e-4, rel=1e-9)
    for side in (book.bids, book.asks):
        for (p1, _), (p2, _) in itertools.pairwise(side):
            assert abs(p2 - p1) / mid == pytest.approx(2e-4, rel=1e-9)
        for _price, qty in side:
            assert 0.5 * 10_000_000.0 <= qty * mid <= 1.5 * 10_000_000.0 + 1e-6
    assert levels_of(market.book("upbit", "BTC/KRW", 3)) == (book.bids[:3], book.asks[:3])


def test_foreign_book_is_in_its_own_quote_currency() -> None:
    market = make_market()
    market.step()
    book = market.book("binance", "BTC/USDT", 10)
    assert book.best_bid is not None
    assert book.best_bid * market.fx_rate("USDT") == pytest.approx(market.reference_price("BTC"), rel=2e-3)
    # Level quantity is sized by the accounting-currency notional: ~20M KRW of BTC.
    notional_krw = book.bids[0][1] * book.bids[0][0] * market.fx_rate("USDT")
    assert 10_000_000.0 <= notional_krw <= 30_000_000.0


def test_fx_book_on_the_home_venue_only() -> None:
    market = make_market(make_config(fx_rate=1380.0))
    market.step()
    book = market.book("upbit", "USDT/KRW", 5)
    assert book.best_bid is not None and book.best_ask is not None
    assert book.best_bid < market.fx_rate("USDT") < book.best_ask
    assert (book.best_bid + book.best_ask) / 2 == pytest.approx(1380.0, rel=1e-3)
    assert book.bids[0][1] * market.fx_rate("USDT") == pytest.approx(20_000_000.0, rel=0.5)
    assert "USDT/KRW" in market.symbols("upbit")
    assert market.symbols("binance") == ("BTC/USDT", "ETH/USDT")
    with pytest.raises(PermanentVenueError, match="USDT/KRW"):
        market.book("binance", "USDT/KRW", 5)


def test_unknown_market_is_a_permanent_error() -> None:
    market = make_market()
    with pytest.raises(PermanentVenueError, match="DOGE/KRW"):
        market.book("upbit", "DOGE/KRW", 5)
    with pytest.raises(PermanentVenueError):
        market.book("kraken", "BTC/KRW", 5)
    assert not market.has_market("upbit", "DOGE/KRW")


def test_books_are_cached_within_a_tick_and_rebuilt_after_step() -> None:
    market = make_market()
    first = market.book("upbit", "BTC/KRW", 10)
    assert market.book("upbit", "BTC/KRW", 10) is first
    market.step()
    second = market.book("upbit", "BTC/KRW", 10)
    assert second is not first and second.bids != first.bids
    assert market.tick == 1


def test_opening_mid_stays_put_while_the_market_moves() -> None:
    market = make_market()
    opening = market.opening_mid("binance", "BTC/USDT")
    assert opening == pytest.approx(140_000_000.0 / 1380.0)
    for _ in range(10):
        market.step()
    assert market.opening_mid("binance", "BTC/USDT") == opening
    assert market.mid("binance", "BTC/USDT") != opening


# Consumed liquidity --------------------------------------------------------------------------


def test_consumed_liquidity_thins_the_book_until_the_next_step() -> None:
    market = make_market()
    market.step()
    full = market.book("upbit", "BTC/KRW", 10)
    other_venue = market.book("binance", "BTC/USDT", 10)
    taken = full.asks[0][1] + full.asks[1][1] / 2
    market.consume("upbit", "BTC/KRW", "buy", taken)

    thin = market.book("upbit", "BTC/KRW", 10)
    assert thin.bids == full.bids  # a buy eats asks only
    assert thin.asks[0][0] == full.asks[1][0]
    assert thin.asks[0][1] == pytest.approx(full.asks[1][1] / 2, rel=1e-9)
    assert thin.asks[1:] == full.asks[2:]
    assert market.book("binance", "BTC/USDT", 10) is other_venue

    market.consume("upbit", "BTC/KRW", "sell", full.bids[0][1])
    assert market.book("upbit", "BTC/KRW", 10).bids == full.bids[1:]
    assert len(market.book("upbit", "BTC/KRW", 2).bids) == 2

    market.step()
    refilled = market.book("upbit", "BTC/KRW", 10)
    assert len(refilled.asks) == len(refilled.bids) == 10


def test_consuming_the_whole_side_empties_it_without_dust() -> None:
    market = make_market()
    book = market.book("binance", "ETH/USDT", 10)
    market.consume("binance", "ETH/USDT", "sell", sum(q for _, q in book.bids) - 5e-9)
    assert market.book("binance", "ETH/USDT", 10).bids == ()
