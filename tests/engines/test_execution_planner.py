"""ExecutionPlanner and the leg arithmetic: sizing by balances and steps, limits on the tick."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.decisions import EntryIntent, SafetyVerdict
from arbitrage.domain.money import MarketRules
from arbitrage.engines.execution import ExecutionPlanner, limit_price, round_to_both
from tests.engines.factories import (
    USDT_KRW,
    btc_books,
    ctx,
    default_balances,
    make_config,
    opportunity,
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
