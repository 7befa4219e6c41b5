"""Once a venue's breaker opens, the ccxt venue and the order sender stop waiting on it at once.

Retrying a read, polling an order back or looking an order up after the breaker opened would
only sleep through delays whose calls the breaker refuses, stretching the tick. The simulator
fails the calls; a fake clock counts the sleeping exactly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.money import dec
from arbitrage.domain.orders import Order, OrderRequest, OrderState
from arbitrage.errors import TemporaryVenueError, UnknownOrderOutcome
from arbitrage.runtime.order_sender import OrderSender
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.store.ledger import open_ledger
from arbitrage.venues.ccxt_venue import CcxtVenue
from arbitrage.venues.circuit import OPEN
from tests.venues.venue_rigs import SYMBOLS, ccxt_venue, new_api_key

SIM_SEED = 29
SLOW_READS = (0.5, 1.0, 2.0)


def venue_on(sim_server: SimServer, name: str, clock: FakeClock) -> tuple[CcxtVenue, str]:
    key = new_api_key()
    venue = ccxt_venue(
        name, sim_server.base_url, key, clock=clock, read_delays_s=SLOW_READS, circuit_failures=2
    )
    return venue, key


def buy_request(venue: CcxtVenue, name: str, cid: str) -> OrderRequest:
    symbol = SYMBOLS[name]
    book = venue.order_book(symbol, 5)
    rules = venue.rules(symbol)
    price = rules.round_price(dec(book.best_ask or 0.0) * Decimal("1.003"), "buy")
    spend = Decimal(200_000) if name == "upbit" else Decimal(150)
    return OrderRequest(cid, name, symbol, "buy", rules.round_qty(spend / price) + rules.qty_step, price)


@pytest.mark.parametrize("name", ["upbit", "binance"])
def test_a_failing_read_stops_retrying_when_the_breaker_opens(
    sim_server: SimServer, sim: SimControl, name: str
) -> None:
    clock = FakeClock()
    venue, _ = venue_on(sim_server, name, clock)
    sim.add_fault("error", venue=name, ops=["balance"], status=503)
    before = len(sim.requests(venue=name, op="balance", limit=5000))
    started = clock.monotonic()
    with pytest.raises(TemporaryVenueError):
        venue.balances()
    # Two failures open the breaker: one pause between them, none after.
    assert clock.monotonic() - started == pytest.approx(SLOW_READS[0])
    assert len(sim.requests(venue=name, op="balance", limit=5000)) - before == 2
    assert venue.breaker.state == OPEN
    venue.close()


def test_an_order_read_back_stops_polling_when_the_breaker_opens(
    sim_server: SimServer, sim: SimControl
) -> None:
    clock = FakeClock()
    venue, key = venue_on(sim_server, "upbit", clock)  # Upbit answers before matching: read back
    request = buy_request(venue, "upbit", "ff-readback-1")
    sim.add_fault("error", venue="upbit", ops=["fetch_order"], status=503)
    started = clock.monotonic()
    with pytest.raises(UnknownOrderOutcome):
        venue.submit(request)
    assert clock.monotonic() - started <= 0.05 + 1e-9  # two polls, not the whole read-back budget
    assert len(sim.orders(venue="upbit", client_id="ff-readback-1", api_key=key)) == 1
    venue.close()


def test_the_sender_stops_looking_an_order_up_when_its_venue_degrades(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    clock = FakeClock()
    venue, key = venue_on(sim_server, "binance", clock)
    request = buy_request(venue, "binance", "ff-lookup-1")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "NORMAL")
    order = Order.from_request(request, "ff-lookup")
    ledger.insert_orders([order], clock.time())
    sender = OrderSender({"binance": venue}, ledger, clock, lambda key, text: None, (0.5, 1.0, 2.0))
    # The create is placed but its answer lost; every lookup fails and opens the breaker.
    sim.add_fault("error", venue="binance", ops=["create_order"], status=503, place=True, count=1)
    sim.add_fault("error", venue="binance", ops=["fetch_order"], status=503)
    started = clock.monotonic()
    sent = sender.send(order, 1.0)
    assert sent.state is OrderState.SUBMITTED and "ff-lookup-1" in sender.unresolved
    # create failure, first lookup failure: the breaker opened; the remaining lookups are not waited for
    assert clock.monotonic() - started == pytest.approx(0.5)
    assert venue.degraded
    sim.clear_faults()
    clock.advance(60.0)  # past the breaker's cooldown
    found = sender.resolve(sent, 1.0)
    assert found.state is OrderState.FILLED and "ff-lookup-1" not in sender.unresolved
    assert len(sim.orders(venue="binance", client_id="ff-lookup-1", api_key=key)) == 1
    ledger.close()
    venue.close()
