"""ExecutionPlanner and the leg arithmetic: sizing by balances and steps, limits on the tick."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.decisions import EntryIntent, SafetyVerdict
from arbitrage.domain.money import MarketRules
from arbitrage.domain.pnl import ReverseTrade
from arbitrage.engines.execution import ExecutionPlanner, limit_price, plan_exit, round_to_both
from tests.engines.factories import (
    USDT_KRW,
    btc_books,
    ctx,
    default_balances,
    default_rules,
    make_config,
    opportunity,
    pair_position,
    snapshot,
    state,
)

D = Decimal


def plan(verdicts: list[SafetyVerdict], config: dict[str, Any] | None = None, **state_changes: Any):
    cfg = make_config(**(config or {}))
    out = ExecutionPlanner("execution", cfg).on_tick(
        ctx(snapshot(btc_books()), state(cfg, **state_changes), safety=verdicts)
    )
    return out


def approved(**changes: Any) -> SafetyVerdict:
    return SafetyVerdict(opportunity(**changes), None)


def test_both_legs_sized_and_priced():
    out = plan([approved(qty=0.0312345678, buy_price=100_010.0, sell_price=140_990_000.0)])
    (intent,) = out.decisions
    assert isinstance(intent, EntryIntent)
    # binance steps 0.00001 BTC (coarser than upbit's 1e-8): rounded down
    assert intent.buy.qty == intent.sell.qty == D("0.03123")
    # 100,010 * 1.002 = 100,210.02 on a 0.01 tick; 140,990,000 * 0.998 = 140,708,020 -> up to 140,709,000
    assert (intent.buy.venue, intent.buy.symbol, intent.buy.side, intent.buy.price) == (
        "binance",
        "BTC/USDT",
        "buy",
        D("100210.02"),
    )
    assert (intent.sell.venue, intent.sell.symbol, intent.sell.side, intent.sell.price) == (
        "upbit",
        "BTC/KRW",
        "sell",
        D("140709000"),
    )
    assert (intent.buy.fx, intent.sell.fx) == (USDT_KRW, 1.0)
    assert out.metrics == {"intents": 1.0}


def bal(**venues: dict[str, str]) -> dict[str, dict[str, Decimal]]:
    out = default_balances()
    for venue, assets in venues.items():
        out[venue] = {**out[venue], **{k: D(v) for k, v in assets.items()}}
    return out


@pytest.mark.parametrize(
    ("kwargs", "qty"),
    [
        # 1,000 USDT / (100,200 * 1.001) = 0.009970... BTC
        ({"balances": bal(binance={"USDT": "1000"})}, D("0.00997")),
        # only 0.012345 BTC to sell on upbit
        ({"balances": bal(upbit={"BTC": "0.012345"})}, D("0.01234")),
        # max_position_notional 2.8M KRW at the 100,200 USDT limit: 0.019960... BTC
        ({"config": {"safety": {"max_position_notional": 2_800_000.0}}}, D("0.01996")),
        ({}, D("0.03")),
    ],
)
def test_quantity_is_clipped(kwargs, qty):
    (intent,) = plan([approved()], **kwargs).decisions
    assert intent.buy.qty == intent.sell.qty == qty


def test_intents_of_one_tick_share_the_balances():
    balances = bal(binance={"USDT": "4000"})
    out = plan([approved(), approved(qty=0.02)], balances=balances)
    first, second = out.decisions
    assert first.buy.qty == D("0.03")
    spent = first.buy.qty * first.buy.price * D("1.001")
    assert second.buy.qty == ((D(4000) - spent) / (D("100200") * D("1.001"))).quantize(
        D("0.00001"), "ROUND_DOWN"
    )


@pytest.mark.parametrize(
    ("kwargs", "verdicts", "why"),
    [
        ({"balances": bal(binance={"USDT": "0.001"})}, [approved()], "quantity 0"),
        # 0.00003 BTC is 3.006 USDT at the limit: below binance's 5 USDT minimum
        ({"balances": bal(upbit={"BTC": "0.00003"})}, [approved()], "buy leg not tradable: notional"),
        ({"rules": {}}, [approved()], "no market rules for BTC/USDT"),
    ],
)
def test_untradable_legs_are_skipped_with_a_note(kwargs, verdicts, why):
    out = plan(verdicts, **kwargs)
    assert out.decisions == []
    assert out.metrics == {"intents": 0.0}
    (note,) = out.notes
    assert "skipped BTC:binance>upbit" in note.message and why in note.message


def test_rejected_verdicts_are_ignored():
    out = plan([SafetyVerdict(opportunity(), "STALE_DATA", "old")])
    assert out.decisions == [] and out.notes == []


@pytest.mark.parametrize(
    ("price", "side", "pct", "tick", "expected"),
    [
        (100.0, "buy", 1.0, "0.01", "101.00"),
        (100.0, "sell", 1.0, "0.01", "99.00"),
        (100.004, "buy", 0.0, "0.01", "100.00"),  # down: never above the bound
        (100.004, "sell", 0.0, "0.01", "100.01"),  # up: never below the bound
        (141_000_000.0, "sell", 0.2, "1000", "140718000"),
    ],
)
def test_limit_price(price, side, pct, tick, expected):
    rules = MarketRules(D(tick), D("0.0001"))
    assert limit_price(price, side, pct, rules) == D(expected)


@pytest.mark.parametrize(
    ("step_a", "step_b", "qty", "expected"),
    [
        ("0.00001", "0.00000001", "0.03123456", "0.03123"),
        ("0.00000001", "0.00001", "0.03123456", "0.03123"),
        # steps that do not divide each other: 0.023 on the coarser, then 0.0228 on the finer
        ("0.0004", "0.001", "0.0239", "0.0228"),
    ],
)
def test_round_to_both_steps(step_a, step_b, qty, expected):
    a, b = MarketRules(D(1), D(step_a)), MarketRules(D(1), D(step_b))
    assert round_to_both(D(qty), a, b) == D(expected)


# A fee taken from the coin bought (Binance) ------------------------------------------------


def coin_fee_rules() -> dict[tuple[str, str], MarketRules]:
    rules = dict(default_rules())
    binance = rules[("binance", "BTC/USDT")]
    rules[("binance", "BTC/USDT")] = MarketRules(
        binance.price_tick, binance.qty_step, binance.min_notional, buy_fee_in_base=D("0.001")
    )
    return rules


def test_a_buy_whose_fee_is_taken_from_the_coin_is_grossed_up_to_cover_the_sell():
    out = plan(
        [approved(qty=0.0312345678, buy_price=100_010.0, sell_price=140_990_000.0)], rules=coin_fee_rules()
    )
    (intent,) = out.decisions
    # The sell stays on both venues' steps; the buy delivers at least as much after Binance's fee.
    assert intent.sell.qty == D("0.03123")
    assert intent.buy.qty == D("0.03127")  # 0.03123 / 0.999 = 0.0312613 -> up to the 0.00001 step
    assert coin_fee_rules()[("binance", "BTC/USDT")].received(intent.buy.qty) >= intent.sell.qty


def test_with_the_fee_in_the_quote_or_in_bnb_the_legs_are_equal():
    # The rules of a venue whose fee is not taken from the coin carry no rate: nothing changes.
    out = plan([approved(qty=0.0312345678, buy_price=100_010.0, sell_price=140_990_000.0)])
    (intent,) = out.decisions
    assert intent.buy.qty == intent.sell.qty == D("0.03123")


def test_the_grossed_up_buy_stays_within_the_quote_balance():
    # 1,000 USDT at the 100,210.02 limit with the fee: the gross buy too must be affordable.
    out = plan([approved()], balances=bal(binance={"USDT": "1000"}), rules=coin_fee_rules())
    (intent,) = out.decisions
    assert intent.buy.qty * intent.buy.price * D("1.001") <= D(1000)
    assert coin_fee_rules()[("binance", "BTC/USDT")].received(intent.buy.qty) >= intent.sell.qty


def test_an_exit_buying_back_where_the_fee_is_taken_from_the_coin_is_grossed_up():
    # Bought on upbit, sold on binance: the exit buys back on binance, whose fee is in the coin.
    position = pair_position(
        buy_venue="upbit", sell_venue="binance", qty="0.01",
        buy_price=141_000_000.0, sell_price=100_000.0, buy_fx=1.0, sell_fx=USDT_KRW,
    )  # fmt: skip
    trade = ReverseTrade(
        qty=0.01, sell_vwap=141e6, sell_worst=141e6, buy_vwap=100_000.0, buy_worst=100_000.0, sell_fx=1.0,
        buy_fx=USDT_KRW, proceeds=0.0, cost=0.0, fees=0.0, net_spread_pct=0.0, complete=True,
    )  # fmt: skip
    sell_rules = default_rules()[("upbit", "BTC/KRW")]
    buy_rules = coin_fee_rules()[("binance", "BTC/USDT")]
    intent = plan_exit(position, trade, "TAKE_PROFIT", 0.2, sell_rules, buy_rules)
    assert intent.sell is not None and intent.buy is not None
    assert intent.sell.qty == D("0.01")
    assert intent.buy.qty == D("0.01002") and buy_rules.received(intent.buy.qty) >= D("0.01")
    plain = plan_exit(
        position, trade, "TAKE_PROFIT", 0.2, sell_rules, default_rules()[("binance", "BTC/USDT")]
    )
    assert plain.buy is not None and plain.buy.qty == D("0.01")
