"""plan_repair: retry the missing qty within the leg's limit, then unwind the excess, bounded."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from arbitrage.config import ExecutionConfig
from arbitrage.domain.decisions import LegPlan
from arbitrage.engines.hedging import LegState, RepairOrder, hedge_cost, imbalance, plan_repair
from tests.engines.factories import USDT_KRW, book, default_rules

D = Decimal
RULES = {"binance": default_rules()[("binance", "BTC/USDT")], "upbit": default_rules()[("upbit", "BTC/KRW")]}
FX = {"binance": USDT_KRW, "upbit": 1.0}
CONFIG = ExecutionConfig(hedge_retries=2, unwind_attempts=5, unwind_slippage_pct=1.0, max_unhedged_qty=0.0001)


def books(binance_ask: float = 100_100.0, upbit_bid: float = 141e6) -> dict[str, Any]:
    return {
        "binance": book("binance", "BTC/USDT", [(100_000.0, 1.0)], [(binance_ask, 1.0)]),
        "upbit": book("upbit", "BTC/KRW", [(upbit_bid, 1.0)], [(141_200_000.0, 1.0)]),
    }


def buy_leg(filled: str) -> LegState:
    return LegState("binance", "BTC/USDT", "buy", D("100200.00"), D(filled))


def sell_leg(filled: str) -> LegState:
    return LegState("upbit", "BTC/KRW", "sell", D("140709000"), D(filled))


def repair(first: LegState, second: LegState, attempt: int = 0, **kw: Any) -> RepairOrder | None:
    args: dict[str, Any] = {"books": books(), "rules": RULES, "fx": FX, "config": CONFIG, **kw}
    return plan_repair(asset="BTC", first=first, second=second, attempt=attempt, **args)


@pytest.mark.parametrize(
    ("first", "second", "kw", "purpose", "leg"),
    [
        # sell leg lagging, upbit still bids above its limit: retry the 0.004 there
        (buy_leg("0.01"), sell_leg("0.006"), {}, "retry", ("upbit", "sell", "0.004", "140709000", 1.0)),
        # the upbit bid fell below the sell limit: unwind the excess buy on binance, 1% under its bid
        (
            buy_leg("0.01"),
            sell_leg("0.006"),
            {"books": books(upbit_bid=140e6)},
            "unwind",
            ("binance", "sell", "0.004", "99000.00", USDT_KRW),
        ),
        # buy leg lagging, binance ask within its 100,200 limit: retry the buy
        (buy_leg("0.004"), sell_leg("0.01"), {}, "retry", ("binance", "buy", "0.006", "100200.00", USDT_KRW)),
        # binance ask moved above the limit: buy back on upbit, 1% over its ask, on its 1000 tick
        (
            buy_leg("0.004"),
            sell_leg("0.01"),
            {"books": books(binance_ask=100_300.0)},
            "unwind",
            ("upbit", "buy", "0.006", "142612000", 1.0),
        ),
        # the order of the two legs does not matter
        (sell_leg("0.006"), buy_leg("0.01"), {}, "retry", ("upbit", "sell", "0.004", "140709000", 1.0)),
        # no book for the lagging venue: no retry
        (
            buy_leg("0.01"),
            sell_leg("0.006"),
            {"books": {"binance": books()["binance"]}},
            "unwind",
            ("binance", "sell", "0.004", "99000.00", USDT_KRW),
        ),
        # no book for the over-filled venue either: the leg's own limit is the reference
        (
            buy_leg("0.01"),
            sell_leg("0.006"),
            {"books": {}},
            "unwind",
            ("binance", "sell", "0.004", "99198.00", USDT_KRW),
        ),
        # the imbalance rounded down to binance's 0.00001 step
        (
            buy_leg("0.004"),
            sell_leg("0.0100049"),
            {},
            "retry",
            ("binance", "buy", "0.00600", "100200.00", USDT_KRW),
        ),
    ],
)
def test_repair_order(first, second, kw, purpose, leg):
    order = repair(first, second, **kw)
    assert order is not None and order.purpose == purpose
    venue, side, qty, price, fx = leg
    symbol = "BTC/USDT" if venue == "binance" else "BTC/KRW"
    assert order.leg == LegPlan(venue, symbol, side, D(qty), D(price), fx)
    assert order.imbalance == imbalance(first, second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (buy_leg("0.01"), sell_leg("0.01")),  # hedged
        (buy_leg("0"), sell_leg("0")),  # nothing filled at all
        # 0.000004 BTC: under binance's step, 570 KRW under upbit's 5,000 minimum; within the bound
        (buy_leg("0.009996"), sell_leg("0.01")),
        # 0.00002 BTC: 2 USDT and 2,852 KRW, neither venue takes it (beyond the bound: the runtime alerts)
        (buy_leg("0.00998"), sell_leg("0.01")),
    ],
)
def test_nothing_to_send(first, second):
    assert repair(first, second) is None


def test_a_tradable_imbalance_within_the_bound_is_still_repaired():
    order = repair(buy_leg("0.00991"), sell_leg("0.01"))  # 0.00009 BTC, 9 USDT
    assert order is not None and order.purpose == "retry" and not order.over_bound
    assert repair(buy_leg("0.004"), sell_leg("0.01")).over_bound  # type: ignore[union-attr]


def test_retries_then_unwinds_then_gives_up_when_nothing_fills():
    purposes = [getattr(repair(buy_leg("0.01"), sell_leg("0.006"), n), "purpose", None) for n in range(9)]
    assert purposes == ["retry", "retry", *["unwind"] * 5, None, None]


def test_no_retries_configured_goes_straight_to_unwind():
    cfg = ExecutionConfig(hedge_retries=0, unwind_attempts=1)
    assert repair(buy_leg("0.01"), sell_leg("0.006"), 0, config=cfg).purpose == "unwind"  # type: ignore[union-attr]
    assert repair(buy_leg("0.01"), sell_leg("0.006"), 1, config=cfg) is None


def test_sequence_with_partial_fills_reaches_zero():
    """A runtime-like loop: the retry fills half, the book then moves, the unwind fills the rest."""
    first, second = buy_leg("0.01"), sell_leg("0.006")
    market = books()
    fills = iter([D("0.5"), D(0), D(1)])  # share of each repair order that fills
    sent: list[str] = []
    for attempt in range(CONFIG.hedge_retries + CONFIG.unwind_attempts + 1):
        order = repair(first, second, attempt, books=market)
        if order is None:
            break
        sent.append(order.purpose)
        done = order.leg.qty * next(fills)
        if order.purpose == "retry":
            second = replace(second, filled_qty=second.filled_qty + done)
            market = books(upbit_bid=140e6)  # the bid walks away after the first retry
        else:
            first = replace(first, filled_qty=first.filled_qty - done)
    assert sent == ["retry", "unwind", "unwind"]
    assert imbalance(first, second) == 0
    assert first.filled_qty == second.filled_qty == D("0.008")


def test_hedge_cost_of_an_unwound_round_trip():
    # bought 1 at 100, sold back at 99, 0.1% fee on both trades, 1,400 KRW per unit
    assert hedge_cost(
        side="buy", qty=D(1), entry_price=D(100), unwind_price=D(99), fx=1400.0, fee_pct=0.1
    ) == (pytest.approx((1 + 0.199) * 1400))
    # sold at 100, bought back at 101
    assert hedge_cost(
        side="sell", qty=D(2), entry_price=D(100), unwind_price=D(101), fx=1.0, fee_pct=0.0
    ) == (pytest.approx(2.0))
    # a favourable unwind is a negative cost
    assert hedge_cost(side="buy", qty=D(1), entry_price=D(100), unwind_price=D(102), fx=1.0, fee_pct=0.0) < 0


def test_a_buy_that_repairs_on_a_venue_taking_its_fee_from_the_coin_is_grossed_up():
    coin_fee = replace(RULES["binance"], buy_fee_in_base=D("0.001"))
    rules = {**RULES, "binance": coin_fee}
    # The buy leg delivered 0.004 of the 0.01 sold: 0.006 must still arrive.
    retry = repair(buy_leg("0.004"), sell_leg("0.01"), rules=rules)
    assert retry is not None and (retry.purpose, retry.leg.venue, retry.leg.side) == (
        "retry",
        "binance",
        "buy",
    )
    assert retry.leg.qty == D("0.00601") and coin_fee.received(retry.leg.qty) >= D("0.006")
    # Sold too much on binance (its sell leg): the unwind buys back what arrives within the gap.
    first = LegState("binance", "BTC/USDT", "sell", D("99800.00"), D("0.01"))
    second = LegState("upbit", "BTC/KRW", "buy", D("141200000"), D("0.004"))
    unwind = repair(first, second, attempt=CONFIG.hedge_retries, rules=rules)
    assert unwind is not None and (unwind.purpose, unwind.leg.venue, unwind.leg.side) == (
        "unwind",
        "binance",
        "buy",
    )
    assert unwind.leg.qty == D("0.00600")  # 0.006 / 0.999 rounded down: never past the gap
    assert coin_fee.received(unwind.leg.qty) <= D("0.006")


@pytest.mark.parametrize(
    ("fee_in_coin", "buy_filled", "purpose"),
    [
        # The grossed-up buy delivered less than a binance step beyond the sell: a residual by design.
        (D("0.001"), "0.0109", None),
        # The same sliver where binance takes its fee in the quote: the sell is topped up as usual.
        (D(0), "0.0109", "retry"),
        # A whole step or more short on the sell side is a real single leg, coin fee or not.
        (D("0.001"), "0.011", "retry"),
    ],
)
def test_a_coin_fee_buys_rounding_sliver_is_left_as_a_residual(
    fee_in_coin: Decimal, buy_filled: str, purpose: str | None
) -> None:
    # A coarse binance step (0.001 BTC) so that the sliver is something upbit would trade.
    coarse = replace(RULES["binance"], qty_step=D("0.001"), buy_fee_in_base=fee_in_coin)
    rules = {**RULES, "binance": coarse}
    order = repair(buy_leg(buy_filled), sell_leg("0.01"), rules=rules)
    assert (order.purpose if order is not None else None) == purpose
