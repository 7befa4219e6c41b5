"""One contract for every venue adapter: mock, paper over the simulator, ccxt against the simulator.

Each test runs against a KRW venue (Upbit-like) and a USDT venue (Binance-like) of each adapter.
The simulator is real (127.0.0.1, a free port) and so is the ccxt client; for the ccxt adapter
the simulator's own records (orders, balances) are checked, not just what the adapter says.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal

import pytest

from arbitrage.domain.money import MarketRules, dec, upbit_krw_tick
from arbitrage.domain.orders import TERMINAL, OrderReport, OrderRequest, OrderState
from arbitrage.sim.server import SimServer
from tests.venues.venue_rigs import Rig, ccxt_rig, mock_rig, paper_rig

SIM_SEED = 11

ADAPTERS = ("mock", "paper", "ccxt")
VENUES = ("upbit", "binance")  # the KRW venue and the USDT venue
E8 = Decimal("1e-8")
SMALL_NOTIONAL = {"KRW": Decimal(200_000), "USDT": Decimal(150)}


@pytest.fixture(params=[(a, v) for a in ADAPTERS for v in VENUES], ids=lambda p: f"{p[0]}-{p[1]}")
def rig(request: pytest.FixtureRequest, sim_server: SimServer) -> Iterator[Rig]:
    adapter, venue = request.param
    built = {"mock": lambda: mock_rig(venue), "paper": lambda: paper_rig(venue, sim_server.base_url),
             "ccxt": lambda: ccxt_rig(venue, sim_server.base_url)}[adapter]()  # fmt: skip
    built.hold_book()
    yield built
    built.close()


def request_for(rig: Rig, cid: str, side: str, qty: Decimal, price: Decimal) -> OrderRequest:
    return OrderRequest(cid, rig.venue_name, rig.symbol, side, qty, price)


def small_qty(rig: Rig, rules: MarketRules, price: Decimal) -> Decimal:
    """A quantity worth a little above the venue's minimum order, on its step."""
    return rules.round_qty(SMALL_NOTIONAL[rig.quote] / price) + rules.qty_step


def size_of(level: tuple[float, float]) -> Decimal:
    return Decimal(repr(level[1])).quantize(E8, ROUND_DOWN)


def cid(rig: Rig, leg: str) -> str:
    return f"ct{rig.kind[0]}{rig.venue_name[0]}-{leg}"


# Market data and rules ---------------------------------------------------------------------


def test_order_book_is_sorted_best_first_and_within_depth(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    assert (book.venue, book.symbol) == (rig.venue_name, rig.symbol)
    assert 0 < len(book.bids) <= 5 and 0 < len(book.asks) <= 5
    bids, asks = [p for p, _ in book.bids], [p for p, _ in book.asks]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert book.best_bid is not None and book.best_ask is not None and book.best_bid < book.best_ask
    assert all(isinstance(p, float) and isinstance(q, float) and q > 0 for p, q in [*book.bids, *book.asks])
    assert book.exchange_ts > 0 and book.received_ts > 0


def test_rules_round_prices_to_the_tick_in_the_safe_direction(rig: Rig) -> None:
    rules = rig.venue.rules(rig.symbol)
    book = rig.venue.order_book(rig.symbol, 1)
    mid = dec((book.best_bid or 0.0) + (book.best_ask or 0.0)) / 2
    if rig.quote == "KRW":
        assert rules.price_tick == upbit_krw_tick(mid)
        assert rules.min_notional == 5000
    assert rules.price_tick > 0 and rules.qty_step > 0 and rules.min_notional > 0
    odd = mid + rules.price_tick / 3
    buy, sell = rules.round_price(odd, "buy"), rules.round_price(odd, "sell")
    assert buy <= odd <= sell and sell - buy == rules.price_tick
    assert buy % rules.price_tick == 0 and sell % rules.price_tick == 0
    qty = rules.round_qty(Decimal("0.123456789"))
    assert qty <= Decimal("0.123456789") and qty % rules.qty_step == 0


def test_balances_are_decimal_amounts(rig: Rig) -> None:
    balances = rig.venue.balances()
    assert balances[rig.quote] > 0 and balances[rig.base] > 0
    assert all(isinstance(v, Decimal) for v in balances.values())


# Orders ------------------------------------------------------------------------------------


def test_ioc_buy_fills_and_moves_the_balances(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    limit = rules.round_price(dec(book.best_ask or 0.0) * Decimal("1.002"), "buy")
    qty = small_qty(rig, rules, limit)
    before = rig.venue.balances()
    sim_before = rig.sim_free() if rig.kind == "ccxt" else None

    report = rig.venue.submit(request_for(rig, cid(rig, "B"), "buy", qty, limit))

    assert report.state is OrderState.FILLED and report.filled_qty == qty
    assert 0 < report.avg_price <= limit
    assert report.fee > 0 and report.venue_order_id
    notional = qty * report.avg_price
    after = rig.venue.balances()
    # Some venues charge a buy's fee in the base asset (Binance), others in the quote (Upbit).
    gained, spent = after[rig.base] - before[rig.base], before[rig.quote] - after[rig.quote]
    assert qty - report.fee / report.avg_price - E8 <= gained <= qty
    assert notional - E8 <= spent <= notional + report.fee + E8
    if sim_before is not None:
        sim_after = rig.sim_free()
        assert sim_after[rig.base] - sim_before[rig.base] == gained
        assert sim_before[rig.quote] - sim_after[rig.quote] == spent


def test_ioc_partial_fill_expires_the_rest(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    (p0, _), (p1, _) = book.bids[0], book.bids[1]
    # A sell limit between the two best bids takes the first level only.
    limit = rules.round_price(dec(p1 + (p0 - p1) / 2), "sell")
    assert dec(p1) < limit <= dec(p0)
    first = size_of(book.bids[0])
    qty = rules.round_qty(first + size_of(book.bids[1]))
    report = rig.venue.submit(request_for(rig, cid(rig, "S"), "sell", qty, limit))
    assert report.state is OrderState.EXPIRED
    assert report.filled_qty == first
    assert report.avg_price == dec(p0).quantize(E8)  # the mock books carry float prices
    assert report.reason


def test_nothing_fillable_expires_empty_and_changes_nothing(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    limit = rules.round_price(dec(book.best_bid or 0.0), "buy")  # at the bid: nothing offered there
    qty = small_qty(rig, rules, limit)
    before = rig.venue.balances()
    report = rig.venue.submit(request_for(rig, cid(rig, "B"), "buy", qty, limit))
    assert report.state is OrderState.EXPIRED
    assert (report.filled_qty, report.fee) == (0, 0)
    assert rig.venue.balances() == before


def test_fetch_order_finds_it_by_client_order_id(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    limit = rules.round_price(dec(book.best_bid or 0.0) * Decimal("0.998"), "sell")
    report = rig.venue.submit(request_for(rig, cid(rig, "S"), "sell", small_qty(rig, rules, limit), limit))
    found = rig.venue.fetch_order(rig.symbol, report.client_order_id)
    assert found is not None
    assert (found.state, found.filled_qty, found.avg_price, found.fee) == (
        report.state, report.filled_qty, report.avg_price, report.fee)  # fmt: skip
    assert rig.venue.fetch_order(rig.symbol, cid(rig, "never")) is None


def test_duplicate_client_order_id_is_rejected_and_the_first_order_kept(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    limit = rules.round_price(dec(book.best_ask or 0.0) * Decimal("1.002"), "buy")
    qty = small_qty(rig, rules, limit)
    first = rig.venue.submit(request_for(rig, cid(rig, "B"), "buy", qty, limit))
    balances = rig.venue.balances()
    again = rig.venue.submit(request_for(rig, cid(rig, "B"), "buy", qty * 2, limit))
    assert again.state is OrderState.REJECTED and again.filled_qty == 0
    assert rig.venue.fetch_order(rig.symbol, first.client_order_id) == first
    assert rig.venue.balances() == balances
    if rig.sim is not None and rig.kind == "ccxt":
        assert len(rig.sim.orders(client_id=first.client_order_id, api_key=rig.api_key)) == 1


def test_cancel_of_a_finished_order_reports_it_unchanged(rig: Rig) -> None:
    book = rig.venue.order_book(rig.symbol, 5)
    rules = rig.venue.rules(rig.symbol)
    limit = rules.round_price(dec(book.best_ask or 0.0) * Decimal("1.002"), "buy")
    report = rig.venue.submit(request_for(rig, cid(rig, "B"), "buy", small_qty(rig, rules, limit), limit))
    assert report.state in TERMINAL
    cancelled = rig.venue.cancel(rig.symbol, report.client_order_id)
    assert isinstance(cancelled, OrderReport)
    assert (cancelled.state, cancelled.filled_qty) == (report.state, report.filled_qty)
    assert rig.venue.cancel(rig.symbol, cid(rig, "never")) is None


@pytest.mark.parametrize("adapter", ["paper", "ccxt"])
@pytest.mark.parametrize("venue", VENUES)
def test_order_under_the_minimum_is_refused_before_sending(
    adapter: str, venue: str, sim_server: SimServer
) -> None:
    # Not asked of the mock venue: its own suite lets any positive order fill (the runtime checks
    # minimums before sending); the real adapters refuse locally as the exchange would.
    rig = (paper_rig if adapter == "paper" else ccxt_rig)(venue, sim_server.base_url)
    try:
        rules = rig.venue.rules(rig.symbol)
        book = rig.venue.order_book(rig.symbol, 1)
        limit = rules.round_price(dec(book.best_ask or 0.0), "buy")
        qty = rules.round_qty(rules.min_notional / limit / 2) or rules.qty_step
        creates = len(rig.sim.requests(op="create_order")) if rig.sim else 0
        report = rig.venue.submit(request_for(rig, f"min{adapter[0]}{venue[0]}-B", "buy", qty, limit))
        assert report.state is OrderState.REJECTED and "minimum" in (report.reason or "")
        if rig.sim is not None:
            assert len(rig.sim.requests(op="create_order")) == creates
            assert rig.sim.orders(client_id=report.client_order_id) == []
    finally:
        rig.close()
