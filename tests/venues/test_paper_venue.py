"""Paper trading over the simulator's real books: fills walk them, nothing is ever sent."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest

from arbitrage.clock import SystemClock
from arbitrage.domain.money import dec
from arbitrage.domain.orders import OrderRequest, OrderState
from arbitrage.errors import TemporaryVenueError
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.venues.paper import PaperVenue
from tests.venues.venue_rigs import MARKET_IDS, PAPER_BALANCES, SYMBOLS, ccxt_venue, venue_config

SIM_SEED = 31

E8 = Decimal("1e-8")


def paper(sim_server: SimServer, venue: str, **extra: object) -> PaperVenue:
    market = ccxt_venue(venue, sim_server.base_url, None, **extra)  # type: ignore[arg-type]
    return PaperVenue(venue, venue_config(venue, sim_server.base_url), market, SystemClock())


@pytest.mark.parametrize("venue_name", ["upbit", "binance"])
def test_paper_fills_walk_the_real_book_and_never_reach_the_exchange(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    symbol = SYMBOLS[venue_name]
    sim.freeze(venue_name, MARKET_IDS[symbol])
    venue = paper(sim_server, venue_name)
    creates = len(sim.requests(op="create_order", limit=5000))
    asks = venue.order_book(symbol, 5).asks
    qty = Decimal(repr(asks[0][1])) + Decimal(repr(asks[1][1])) / 2
    qty = venue.rules(symbol).round_qty(qty)
    limit = venue.rules(symbol).round_price(dec(asks[2][0]), "buy")
    report = venue.submit(OrderRequest("pp-B", venue_name, symbol, "buy", qty, limit))
    second_level = qty - Decimal(repr(asks[0][1]))
    notional = Decimal(repr(asks[0][1])) * dec(asks[0][0]) + second_level * dec(asks[1][0])
    fee_rate = Decimal(repr(venue.taker_fee_pct)) / 100
    assert report.state is OrderState.FILLED and report.filled_qty == qty
    assert report.avg_price == notional / qty
    assert report.fee == (notional * fee_rate).quantize(E8)
    start = {a: Decimal(repr(v)) for a, v in PAPER_BALANCES[venue_name].items()}
    quote = symbol.split("/")[1]
    if venue_name == "binance":  # like Binance, the fee is taken from the coin bought
        fee_base = (qty * fee_rate).quantize(E8)
        assert report.fee_base == fee_base
        assert venue.balances() == {"BTC": start["BTC"] + qty - fee_base, quote: start[quote] - notional}
    else:  # like Upbit, the fee is paid in the quote on top of the price
        assert report.fee_base == 0
        assert venue.balances() == {"BTC": start["BTC"] + qty, quote: start[quote] - notional - report.fee}
    assert len(sim.requests(op="create_order", limit=5000)) == creates
    assert sim.orders(client_id="pp-B") == []
    venue.close()


def test_a_second_order_on_the_same_book_does_not_take_the_same_liquidity(
    sim_server: SimServer, sim: SimControl
) -> None:
    sim.freeze("binance", "BTCUSDT")
    venue = paper(sim_server, "binance")
    best = venue.order_book("BTC/USDT", 5).asks[0]
    size = Decimal(repr(best[1])).quantize(E8, ROUND_DOWN)
    price = dec(best[0])
    first = venue.submit(OrderRequest("liq-1-B", "binance", "BTC/USDT", "buy", size, price))
    second = venue.submit(OrderRequest("liq-2-B", "binance", "BTC/USDT", "buy", size, price))
    assert first.state is OrderState.FILLED
    assert second.state is OrderState.EXPIRED and second.filled_qty == 0
    sim.set_book("binance", "BTCUSDT", asks=[[str(price), "5"]])  # the market refilled the level
    third = venue.submit(OrderRequest("liq-3-B", "binance", "BTC/USDT", "buy", size, price))
    assert third.state is OrderState.FILLED
    venue.close()


def test_upbit_prices_are_rounded_to_its_tick_before_the_fill(sim_server: SimServer, sim: SimControl) -> None:
    sim.freeze("upbit", "KRW-BTC")
    venue = paper(sim_server, "upbit")
    ask = dec(venue.order_book("BTC/KRW", 1).asks[0][0])
    below_tick = ask + Decimal("0.5")  # floors to the ask itself: still marketable, never above
    report = venue.submit(OrderRequest("tk-B", "upbit", "BTC/KRW", "buy", Decimal("0.001"), below_tick))
    assert report.state is OrderState.FILLED and report.avg_price == ask


def test_refusals_are_rejected_reports(sim_server: SimServer, sim: SimControl) -> None:
    venue = paper(sim_server, "binance")
    ask = dec(venue.order_book("BTC/USDT", 1).asks[0][0])
    poor = venue.submit(OrderRequest("poor-B", "binance", "BTC/USDT", "buy", Decimal(100), ask))
    unknown = venue.submit(OrderRequest("doge-B", "binance", "DOGE/USDT", "buy", Decimal(1), Decimal(1)))
    assert (poor.state, poor.reason) == (OrderState.REJECTED, "insufficient balance")
    assert unknown.state is OrderState.REJECTED and "DOGE/USDT" in (unknown.reason or "")
    assert venue.balances() == {a: Decimal(repr(v)) for a, v in PAPER_BALANCES["binance"].items()}


def test_market_data_trouble_reaches_the_caller_and_the_health(
    sim_server: SimServer, sim: SimControl
) -> None:
    venue = paper(sim_server, "upbit", circuit_failures=2, read_delays_s=())
    assert not venue.degraded and venue.describe()["feed"] == "paper"
    sim.add_fault("error", venue="upbit", ops=["order_book"], status=503)
    ask = Decimal(150_000_000)
    for n in range(2):
        with pytest.raises(TemporaryVenueError):
            venue.submit(OrderRequest(f"md{n}-B", "upbit", "BTC/KRW", "buy", Decimal("0.001"), ask))
    assert venue.degraded
    assert venue.fetch_order("BTC/KRW", "md0-B") is None  # never filled, never recorded
