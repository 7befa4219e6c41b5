"""The mock venue: IOC fills against the mock books, fees, balances, refusals and injected faults."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, MockConfig, MockFaultsConfig, VenueConfig
from arbitrage.domain.book import Level
from arbitrage.domain.ids import client_order_id, entry_group
from arbitrage.domain.money import dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState
from arbitrage.errors import PermanentVenueError
from arbitrage.venues.base import Venue
from arbitrage.venues.mock import MockVenue
from arbitrage.venues.mock_faults import MockFaults
from arbitrage.venues.mock_market import MockMarket

E8 = Decimal("1e-8")


class Rig:
    """A mock market with its two venues, as the runtime wires them."""

    def __init__(self, seed: int = 3, upbit_btc: float = 1.5, **faults: Any) -> None:
        self.config = AppConfig(
            venues={
                "upbit": VenueConfig(
                    exchange="mock",
                    quote="KRW",
                    taker_fee_pct=0.05,
                    balances={"KRW": 1_000_000_000.0, "BTC": upbit_btc, "USDT": 0.0},
                ),
                "binance": VenueConfig(
                    exchange="mock", quote="USDT", taker_fee_pct=0.1, balances={"USDT": 100_000.1, "BTC": 0.7}
                ),
            },
            mock=MockConfig(seed=seed, faults=MockFaultsConfig(**faults)),
        )
        self.clock = FakeClock()
        self.market = MockMarket(self.config, self.clock)
        self.faults = MockFaults(self.config.mock.faults, seed)
        self.upbit, self.binance = (
            MockVenue(name, self.config.venues[name], self.market, self.faults, self.clock)
            for name in ("upbit", "binance")
        )
        self.market.step()


def order(
    cid: str = "arb0000001-B",
    symbol: str = "BTC/KRW",
    side: str = "buy",
    qty: str | Decimal = "0.1",
    price: str | Decimal = "1000000000",
    purpose: str = "entry",
    group: str = "",
) -> OrderRequest:
    venue = "upbit" if symbol.endswith("/KRW") else "binance"
    return OrderRequest(cid, venue, symbol, side, Decimal(qty), Decimal(price), purpose=purpose, group=group)


def expected_take(levels: tuple[Level, ...], qty: Decimal) -> tuple[Decimal, Decimal]:
    """The venue's documented fill arithmetic: prices to 1e-8, sizes down to 1e-8, no limit."""
    left, notional = qty, Decimal(0)
    for price_f, size_f in levels:
        size = Decimal(repr(size_f)).quantize(E8, ROUND_DOWN)
        take = min(size, left)
        notional += take * Decimal(repr(price_f)).quantize(E8, ROUND_HALF_EVEN)
        left -= take
        if left == 0:
            break
    return qty - left, notional


def test_implements_the_venue_interface() -> None:
    rig = Rig()
    venue: Venue = rig.upbit
    assert (venue.name, venue.quote, venue.taker_fee_pct) == ("upbit", "KRW", 0.05)
    assert rig.binance.balances() == {"USDT": Decimal("100000.1"), "BTC": Decimal("0.7")}
    rig.upbit.close()


# Fills ---------------------------------------------------------------------------------------


def test_buy_walks_the_asks_and_settles_fee_and_balances_exactly() -> None:
    rig = Rig()
    asks = rig.upbit.order_book("BTC/KRW", 10).asks
    qty = (Decimal(repr(asks[0][1])) + Decimal(repr(asks[1][1])) / 2).quantize(Decimal("1e-5"), ROUND_DOWN)
    filled, notional = expected_take(asks, qty)
    fee = (notional * Decimal("0.0005")).quantize(E8)

    report = rig.upbit.submit(order(qty=qty))

    assert report.state is OrderState.FILLED and report.reason is None
    assert report.filled_qty == filled == qty
    assert report.avg_price == notional / qty
    assert Decimal(repr(asks[0][0])) < report.avg_price < Decimal(repr(asks[1][0]))
    assert report.fee == fee
    assert rig.upbit.balances() == {
        "KRW": Decimal(1_000_000_000) - notional - fee,
        "BTC": Decimal("1.5") + qty,
        "USDT": Decimal(0),
    }
    assert rig.upbit.fetch_order("BTC/KRW", report.client_order_id) == report


def test_sell_walks_the_bids_and_pays_the_fee_in_quote() -> None:
    rig = Rig()
    bids = rig.binance.order_book("BTC/USDT", 10).bids
    qty = Decimal("0.3")
    filled, notional = expected_take(bids, qty)
    report = rig.binance.submit(order("arb0000001-S", "BTC/USDT", "sell", qty, "1"))
    fee = (notional * Decimal("0.001")).quantize(E8)
    assert report.state is OrderState.FILLED
    assert report.filled_qty == filled == qty
    assert report.fee == fee
    assert report.avg_price == notional / qty
    assert rig.binance.balances() == {"USDT": Decimal("100000.1") + notional - fee, "BTC": Decimal("0.4")}


def test_ioc_fills_up_to_the_limit_and_expires_the_rest() -> None:
    rig = Rig()
    asks = rig.upbit.order_book("BTC/KRW", 10).asks
    first = Decimal(repr(asks[0][1])).quantize(E8, ROUND_DOWN)
    limit = dec(asks[0][0] + (asks[1][0] - asks[0][0]) / 2)  # between the first two levels
    report = rig.upbit.submit(order(qty=first * 3, price=limit))
    assert report.state is OrderState.EXPIRED
    assert report.filled_qty == first
    assert report.reason == "IOC remainder expired"
    assert report.avg_price == Decimal(repr(asks[0][0])).quantize(E8)


def test_nothing_within_the_limit_expires_empty_and_touches_nothing() -> None:
    rig = Rig()
    bids = rig.upbit.order_book("BTC/KRW", 10).bids
    before = rig.upbit.balances()
    report = rig.upbit.submit(order(side="sell", qty="0.1", price=dec(bids[0][0] * 1.001)))
    assert report.state is OrderState.EXPIRED
    assert (report.filled_qty, report.avg_price, report.fee) == (0, 0, 0)
    assert rig.upbit.balances() == before
    assert rig.upbit.order_book("BTC/KRW", 10).bids == bids


@settings(max_examples=40, deadline=None)
@given(
    qty=st.decimals(min_value="0.00001", max_value="3", places=5),
    limit_bps=st.integers(min_value=-5, max_value=30),
    side=st.sampled_from(["buy", "sell"]),
)
def test_fills_never_exceed_the_order_nor_cross_its_limit(qty: Decimal, limit_bps: int, side: str) -> None:
    rig = Rig(upbit_btc=10.0)  # enough to sell anything the book can take
    mid = dec(rig.market.mid("upbit", "BTC/KRW"))
    sign = 1 if side == "buy" else -1
    limit = (mid * (1 + sign * Decimal(limit_bps) / 10_000)).quantize(Decimal(1))
    before = rig.upbit.balances()
    report = rig.upbit.submit(order(side=side, qty=qty, price=limit))
    assert 0 <= report.filled_qty <= qty
    assert report.state is (OrderState.FILLED if report.filled_qty == qty else OrderState.EXPIRED)
    after = rig.upbit.balances()
    if report.filled_qty:
        assert (report.avg_price <= limit) if side == "buy" else (report.avg_price >= limit)
        notional = report.avg_price * report.filled_qty
        assert after["BTC"] - before["BTC"] == sign * report.filled_qty
        assert after["KRW"] - before["KRW"] - (-sign * notional - report.fee) == pytest.approx(0, abs=1e-12)
    else:
        assert after == before


# Refusals ------------------------------------------------------------------------------------


def test_insufficient_balance_is_a_rejection_that_changes_nothing() -> None:
    rig = Rig()
    book = rig.binance.order_book("BTC/USDT", 10)
    cases = [
        order("a-B", "BTC/USDT", "buy", "1", "200000"),  # needs 200,200 USDT, has 100,000.1
        order("a-S", "BTC/USDT", "sell", "0.70001", "1"),
    ]
    for request in cases:
        report = rig.binance.submit(request)
        assert report.state is OrderState.REJECTED
        assert report.reason == "insufficient balance"
        assert report.filled_qty == 0
    assert rig.binance.balances() == {"USDT": Decimal("100000.1"), "BTC": Decimal("0.7")}
    assert rig.binance.order_book("BTC/USDT", 10) == book


def test_the_fee_counts_towards_the_balance_check() -> None:
    rig = Rig()
    price = Decimal(102_000)  # above the ask (~101,500 USDT): an affordable order fills
    affordable = (Decimal("100000.1") / (price * Decimal("1.001"))).quantize(Decimal("1e-5"), ROUND_DOWN)
    too_much = affordable + Decimal("0.00001")
    refused = rig.binance.submit(order("x-B", "BTC/USDT", "buy", too_much, price))
    accepted = rig.binance.submit(order("y-B", "BTC/USDT", "buy", affordable, price))
    assert refused.reason == "insufficient balance"
    assert accepted.state is OrderState.FILLED


def test_duplicate_client_order_id_is_rejected_and_the_original_kept() -> None:
    rig = Rig()
    original = rig.upbit.submit(order(qty="0.01"))
    balances = rig.upbit.balances()
    again = rig.upbit.submit(order(qty="0.5"))
    assert again.state is OrderState.REJECTED and again.reason == "duplicate client order id"
    assert rig.upbit.fetch_order("BTC/KRW", "arb0000001-B") == original
    assert rig.upbit.balances() == balances


def test_a_rejected_id_stays_used() -> None:
    rig = Rig()
    assert rig.upbit.submit(order(qty="100")).reason == "insufficient balance"
    assert rig.upbit.submit(order(qty="0.01")).reason == "duplicate client order id"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (order(side="hold"), "invalid side"),
        (order(qty="0"), "not positive"),
        (order(price="-1"), "not positive"),
        (order(symbol="DOGE/KRW"), "unknown market"),
    ],
)
def test_malformed_orders_are_rejected_not_raised(request_: OrderRequest, reason: str) -> None:
    report = Rig().upbit.submit(request_)
    assert report.state is OrderState.REJECTED
    assert reason in (report.reason or "")


def test_lookups_and_cancels() -> None:
    rig = Rig()
    assert rig.upbit.fetch_order("BTC/KRW", "never-B") is None
    assert rig.upbit.cancel("BTC/KRW", "never-B") is None
    report = rig.upbit.submit(order(qty="0.01"))
    assert rig.upbit.cancel("BTC/KRW", report.client_order_id) == report
    assert rig.upbit.fetch_order("BTC/KRW", report.client_order_id) == report


def test_unknown_market_data_raises_permanent_error() -> None:
    rig = Rig()
    with pytest.raises(PermanentVenueError):
        rig.binance.order_book("USDT/KRW", 5)
    with pytest.raises(PermanentVenueError):
        rig.binance.rules("BTC/KRW")


# Rules ---------------------------------------------------------------------------------------


def test_rules_follow_upbit_tick_table_and_binance_like_magnitudes() -> None:
    rig = Rig()
    btc_krw = rig.upbit.rules("BTC/KRW")
    assert (btc_krw.price_tick, btc_krw.qty_step, btc_krw.min_notional) == (1000, Decimal("1e-8"), 5000)
    assert rig.upbit.rules("ETH/KRW").price_tick == 1000
    assert rig.upbit.rules("USDT/KRW").price_tick == 1
    btc_usdt = rig.binance.rules("BTC/USDT")  # ~101,000 USDT
    assert (btc_usdt.price_tick, btc_usdt.qty_step, btc_usdt.min_notional) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        5,
    )
    eth_usdt = rig.binance.rules("ETH/USDT")  # ~3,600 USDT
    assert (eth_usdt.price_tick, eth_usdt.qty_step) == (Decimal("0.01"), Decimal("0.001"))
    for _ in range(50):
        rig.market.step()
    assert rig.binance.rules("BTC/USDT") == btc_usdt


# Consumed liquidity --------------------------------------------------------------------------


def test_fills_consume_the_book_for_the_rest_of_the_tick() -> None:
    rig = Rig()
    asks = rig.upbit.order_book("BTC/KRW", 10).asks
    first = Decimal(repr(asks[0][1])).quantize(E8, ROUND_DOWN)
    one = rig.upbit.submit(order("g1-B", qty=first))
    two = rig.upbit.submit(order("g2-B", qty=first))
    assert one.avg_price == Decimal(repr(asks[0][0])).quantize(E8)
    assert two.avg_price > one.avg_price  # the best level is gone
    assert rig.upbit.order_book("BTC/KRW", 10).asks[0][0] > asks[0][0]
    rig.market.step()
    assert len(rig.upbit.order_book("BTC/KRW", 10).asks) == 10


# Faults --------------------------------------------------------------------------------------


def test_reject_fault_hits_every_order_even_unwinds() -> None:
    rig = Rig(reject_rate=1.0)
    for purpose in ("entry", "exit", "retry", "unwind"):
        report = rig.upbit.submit(order(f"{purpose}1-B", qty="0.01", purpose=purpose))
        assert (report.state, report.reason) == (OrderState.REJECTED, "mock fault: rejected")
    assert Rig(reject_rate=0.0).upbit.submit(order(qty="0.01")).state is OrderState.FILLED


def test_partial_fill_fault_gives_ten_to_ninety_percent_but_spares_unwinds() -> None:
    rig = Rig(partial_fill_rate=1.0)
    shares = []
    for n in range(20):
        report = rig.upbit.submit(order(f"p{n}-B", qty="0.1"))
        assert report.state is OrderState.EXPIRED and report.reason == "mock fault: partial fill"
        shares.append(report.filled_qty / Decimal("0.1"))
        rig.market.step()
    assert all(Decimal("0.1") - E8 * 10 <= s <= Decimal("0.9") for s in shares)
    assert len(set(shares)) > 10
    assert (
        rig.upbit.submit(order("u1-US1", side="sell", qty="0.1", price="1", purpose="unwind")).state
        is OrderState.FILLED
    )
    assert Rig(partial_fill_rate=0.0).upbit.submit(order(qty="0.1")).state is OrderState.FILLED


def entry_pair(rig: Rig, seq: int, purpose: str = "entry") -> tuple[OrderReport, OrderReport]:
    group = entry_group("arb", seq)
    buy = rig.binance.submit(
        order(client_order_id(group, "B"), "BTC/USDT", "buy", "0.01", "200000", purpose=purpose, group=group)
    )
    sell = rig.upbit.submit(
        order(client_order_id(group, "S"), "BTC/KRW", "sell", "0.01", "1", purpose=purpose, group=group)
    )
    return buy, sell


def test_one_leg_failure_hits_exactly_one_leg_of_each_entry_group() -> None:
    rig = Rig(one_leg_failure_rate=1.0)
    failed_legs = []
    for seq in range(1, 25):
        buy, sell = entry_pair(rig, seq)
        failed = [r for r in (buy, sell) if r.reason == "mock fault: leg failed"]
        assert len(failed) == 1
        assert failed[0].state is OrderState.EXPIRED and failed[0].filled_qty == 0
        other = sell if failed[0] is buy else buy
        assert other.state is OrderState.FILLED
        failed_legs.append(failed[0].client_order_id[-1])
    assert set(failed_legs) == {"B", "S"}  # the RNG picks either leg


def test_one_leg_failure_spares_retries_unwinds_and_a_zero_rate() -> None:
    rig = Rig(one_leg_failure_rate=1.0)
    for seq, purpose in enumerate(("retry", "unwind", "exit"), start=1):
        assert all(r.state is OrderState.FILLED for r in entry_pair(rig, seq, purpose)), purpose
    rig = Rig(one_leg_failure_rate=0.0)
    assert all(r.state is OrderState.FILLED for r in entry_pair(rig, 1))


def test_stale_book_fault_back_dates_the_exchange_timestamp() -> None:
    rig = Rig(stale_book_rate=1.0, stale_book_age_ms=7000.0)
    book = rig.upbit.order_book("BTC/KRW", 5)
    assert book.age_ms(rig.clock.time()) == pytest.approx(7000.0)
    assert book.received_ts == rig.clock.time()
    assert Rig(stale_book_rate=0.0).upbit.order_book("BTC/KRW", 5).age_ms(rig.clock.time()) == 0.0


def test_latency_fault_sleeps_on_the_clock() -> None:
    rig = Rig(latency_rate=1.0, latency_ms=120.0)
    start = rig.clock.monotonic()
    rig.upbit.order_book("BTC/KRW", 5)
    rig.upbit.submit(order(qty="0.01"))
    rig.upbit.fetch_order("BTC/KRW", "arb0000001-B")
    assert rig.clock.monotonic() - start == pytest.approx(0.36)
    quiet = Rig(latency_rate=0.0, latency_ms=120.0)
    quiet.upbit.order_book("BTC/KRW", 5)
    quiet.upbit.submit(order(qty="0.01"))
    assert quiet.clock.monotonic() == 0.0


def test_an_unwind_survives_every_fault_but_the_plain_reject() -> None:
    rig = Rig(partial_fill_rate=1.0, one_leg_failure_rate=1.0, stale_book_rate=1.0, latency_rate=1.0)
    report = rig.upbit.submit(
        order("arb0000009-US1", side="sell", qty="0.2", price="1", purpose="unwind", group="arb0000009")
    )
    assert report.state is OrderState.FILLED and report.filled_qty == Decimal("0.2")


def test_fault_draws_are_deterministic_and_independent_per_kind() -> None:
    config = MockFaultsConfig(reject_rate=0.5, latency_rate=0.5, partial_fill_rate=0.5)
    only_rejects = MockFaultsConfig(reject_rate=0.5)
    a, b, c = MockFaults(config, 9), MockFaults(config, 9), MockFaults(only_rejects, 9)
    request = order()
    seq_a, seq_b, seq_c = [], [], []
    for _ in range(200):
        seq_a.append((a.delay_s(), a.rejects(request), a.partial_fraction(request)))
        seq_b.append((b.delay_s(), b.rejects(request), b.partial_fraction(request)))
        seq_c.append(c.rejects(request))
    assert seq_a == seq_b
    assert [r for _, r, _ in seq_a] == seq_c  # latency and partial draws do not shift rejects
    assert 60 < sum(seq_c) < 140
    assert MockFaults(config, 10).rejects(request) in (True, False)


def test_one_leg_decisions_are_remembered_for_a_bounded_number_of_groups() -> None:
    faults = MockFaults(MockFaultsConfig(one_leg_failure_rate=0.5), 5)
    first = [faults.leg_fails(order(f"arb{n:07d}-B", group=f"arb{n:07d}")) for n in range(3000)]
    again = [faults.leg_fails(order(f"arb{n:07d}-S", group=f"arb{n:07d}")) for n in range(2990, 3000)]
    # A remembered group never fails both legs.
    assert not any(x and y for x, y in zip(first[2990:], again, strict=True))
    assert faults.remembered_groups == 1024


def test_the_binance_like_venue_takes_a_buys_fee_from_the_coin_and_says_so() -> None:
    rig = Rig()
    assert rig.binance.rules("BTC/USDT").buy_fee_in_base == Decimal("0.001")  # auto: not KRW
    assert rig.upbit.rules("BTC/KRW").buy_fee_in_base == 0  # Upbit-like: the fee is in KRW
    ask = rig.binance.order_book("BTC/USDT", 10).asks[0]
    report = rig.binance.submit(order("cf-B", "BTC/USDT", "buy", "0.001", dec(ask[0]) * 2))
    assert report.state is OrderState.FILLED and report.filled_qty == Decimal("0.001")
    notional = report.filled_qty * report.avg_price
    assert report.fee_base == Decimal("0.000001")  # 0.1% of the coin bought
    assert report.fee == (notional * Decimal("0.001")).quantize(E8, ROUND_HALF_EVEN)  # its quote value
    # The quote pays the fill alone; the coin arrives short of the fee.
    assert rig.binance.balances() == {"USDT": Decimal("100000.1") - notional, "BTC": Decimal("0.700999")}


def test_a_venue_configured_to_take_the_fee_in_the_quote_credits_the_whole_fill() -> None:
    rig = Rig()
    config = rig.config.venues["binance"].model_copy(update={"buy_fee_in": "quote"})
    venue = MockVenue("binance", config, rig.market, rig.faults, rig.clock)
    assert venue.rules("BTC/USDT").buy_fee_in_base == 0
    ask = venue.order_book("BTC/USDT", 10).asks[0]
    report = venue.submit(order("cq-B", "BTC/USDT", "buy", "0.001", dec(ask[0]) * 2))
    assert report.fee_base == 0 and report.fee > 0
    assert venue.balances()["BTC"] == Decimal("0.701")
