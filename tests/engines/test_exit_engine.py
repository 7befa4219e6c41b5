"""ExitEngine: take profit, static and dynamic stop loss, max hold, and the exit legs.

The position bought 0.01 BTC on binance at 100,000 USDT (140M KRW) and sold it on upbit at
141M KRW: entry result 10,000 - 2,105 fees = 7,895 KRW. Closing sells back on binance's bids
and buys back on upbit's asks.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.decisions import ExitIntent, LegPlan
from arbitrage.engines.stoploss import ExitEngine, SpreadWindow
from tests.engines.factories import (
    NOW,
    USDT_KRW,
    book,
    btc_books,
    ctx,
    make_config,
    pair_position,
    snapshot,
    state,
)

D = Decimal


def market(upbit_ask: float, binance_bid: float = 100_000.0) -> list[Any]:
    return [
        book("binance", "BTC/USDT", [(binance_bid, 1.0)], [(binance_bid + 100, 1.0)]),
        book("upbit", "BTC/KRW", [(upbit_ask - 100_000, 1.0)], [(upbit_ask, 1.0)]),
    ]


CONVERGED = market(139_800_000.0)  # reverse trade nets -0.007%: take profit
CRASHED = market(142_200_000.0)  # reverse trade loses 24,111: 1.16% of cost
DRIFTING = market(141_200_000.0)  # reverse trade loses 14,106: 0.44% of cost, no trigger


def run(books: list[Any], *, engine: ExitEngine | None = None, positions: Any = None, **config: Any):
    cfg = make_config(**config)
    engine = engine or ExitEngine("stoploss", cfg)
    view = state(cfg, positions=[pair_position()] if positions is None else positions)
    return engine.on_tick(ctx(snapshot(books), view))


@pytest.mark.parametrize(
    ("books", "opened_at", "config", "reason"),
    [
        (CONVERGED, NOW - 60, {}, "TAKE_PROFIT"),
        (CRASHED, NOW - 60, {}, "STOP_LOSS"),
        (DRIFTING, NOW - 60, {}, None),
        (DRIFTING, NOW - 3600, {}, "MAX_HOLD"),
        (DRIFTING, NOW - 100, {"exit": {"max_hold_s": 100.0}}, "MAX_HOLD"),
        (DRIFTING, NOW - 60, {"stoploss": {"static_pct": 0.4}}, "STOP_LOSS"),
        (DRIFTING, NOW - 60, {"exit": {"min_spread_pct": -1.1}}, "TAKE_PROFIT"),
        # a stop loss outranks max hold: it gets out with the wider bound
        (CRASHED, NOW - 7200, {}, "STOP_LOSS"),
    ],
)
def test_triggers(books, opened_at, config, reason):
    out = run(books, positions=[pair_position(opened_at=opened_at)], **config)
    assert [i.reason for i in out.decisions] == ([reason] if reason else [])
    counts = {"STOP_LOSS": "sl_triggers", "TAKE_PROFIT": "tp_triggers", "MAX_HOLD": "hold_triggers"}
    for name, metric in counts.items():
        assert out.metrics[metric] == (1.0 if name == reason else 0.0)


@pytest.mark.parametrize(
    ("books", "unrealized"),
    [(CONVERGED, 7_895 - 99), (CRASHED, 7_895 - 24_111), (DRIFTING, 7_895 - 14_106)],
)
def test_unrealized_pnl_metric(books, unrealized):
    assert run(books).metrics["unrealized_pnl"] == pytest.approx(unrealized)


@pytest.mark.parametrize(
    ("books", "sell_price", "buy_price"),
    [
        # take profit within execution.max_slippage_pct (0.2%)
        (CONVERGED, "99800.00", "140079000"),
        # stop loss within execution.unwind_slippage_pct (1%)
        (CRASHED, "99000.00", "143622000"),
    ],
)
def test_exit_legs(books, sell_price, buy_price):
    (intent,) = run(books).decisions
    assert isinstance(intent, ExitIntent)
    assert (intent.position_id, intent.qty) == ("P1", D("0.01"))
    assert intent.sell == LegPlan("binance", "BTC/USDT", "sell", D("0.01"), D(sell_price), USDT_KRW)
    assert intent.buy == LegPlan("upbit", "BTC/KRW", "buy", D("0.01"), D(buy_price), 1.0)
    proceeds, cost = 1_400_000.0, float(books[1].asks[0][0]) * 0.01
    fees = proceeds * 0.001 + cost * 0.0005
    assert intent.spread_pct == pytest.approx((proceeds - cost - fees) / cost * 100)


def test_exit_mode_none_does_nothing():
    out = run(CRASHED, exit={"mode": "none"})
    assert out.decisions == [] and out.notes == []
    assert out.metrics == {
        "sl_triggers": 0.0,
        "tp_triggers": 0.0,
        "hold_triggers": 0.0,
        "dust_closes": 0.0,
        "exits_held_back": 0.0,
        "unrealized_pnl": 0.0,
    }


def test_positions_without_books_are_skipped():
    out = run(CRASHED[:1])
    assert out.decisions == []
    assert out.metrics["unrealized_pnl"] == 0.0
    assert [n.level for n in out.notes] == ["DEBUG"]


def test_missing_rules_are_noted_not_counted():
    cfg = make_config()
    out = ExitEngine("stoploss", cfg).on_tick(
        ctx(snapshot(CRASHED), state(cfg, positions=[pair_position()], rules={}))
    )
    assert out.decisions == []
    assert out.metrics["sl_triggers"] == 0.0
    assert [n.level for n in out.notes] == ["WARNING"]


def test_several_positions_each_judged():
    positions = [
        pair_position("P1"),
        pair_position("P2", opened_at=NOW - 4000),
        pair_position("P3", qty="0.02"),
    ]
    out = run(DRIFTING, positions=positions)
    assert [(i.position_id, i.reason, i.qty) for i in out.decisions] == [("P2", "MAX_HOLD", D("0.01"))]


DYNAMIC = {"stoploss": {"mode": "dynamic", "dynamic_k": 4.0, "dynamic_min_pct": 0.3, "dynamic_max_pct": 3.0}}


def test_dynamic_band_uses_static_until_five_samples_then_the_clamped_band():
    cfg = make_config(**DYNAMIC)
    engine = ExitEngine("stoploss", cfg)
    reasons = [[i.reason for i in run(DRIFTING, engine=engine, **DYNAMIC).decisions] for _ in range(6)]
    # a flat spread has no volatility: the band is clamped to dynamic_min_pct 0.3% < the 0.44% loss
    assert reasons == [[], [], [], [], ["STOP_LOSS"], ["STOP_LOSS"]]
    assert engine.stop_band_pct(pair_position()) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("bids", "k", "expected"),
    [
        # equally spaced bids: 4 x the sample stdev of the top-of-book net spreads
        ([141.0e6, 141.1e6, 141.2e6, 141.3e6, 141.4e6], 4.0, None),
        ([141.0e6, 145.0e6, 137.0e6, 146.0e6, 136.0e6], 4.0, 3.0),  # clamped to dynamic_max_pct
        ([141.0e6] * 4, 4.0, 1.0),  # 4 samples: still static_pct
    ],
)
def test_dynamic_band_values(bids, k, expected):
    config = {"stoploss": {**DYNAMIC["stoploss"], "dynamic_k": k}}
    cfg = make_config(**config)
    engine = ExitEngine("stoploss", cfg)
    samples = []
    for bid in bids:
        books = [
            book("binance", "BTC/USDT", [(99_900.0, 1.0)], [(100_000.0, 1.0)]),
            book("upbit", "BTC/KRW", [(bid, 1.0)], [(bid + 1e5, 1.0)]),
        ]
        run(books, engine=engine, positions=[], **config)
        samples.append((bid - 140e6) / 140e6 * 100 - 0.15)
    if expected is None:
        expected = k * statistics.stdev(samples)
        assert 0.3 < expected < 3.0
    assert engine.stop_band_pct(pair_position()) == pytest.approx(expected)


# Exits need both legs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venues", "snap", "why"),
    [
        ({"upbit": {"degraded": True}}, {}, "upbit is degraded"),
        ({"binance": {"degraded": True}}, {}, "binance is degraded"),
        ({}, {"carried": [("binance", "BTC")]}, "binance BTC book not read this tick"),
        ({}, {"ts": NOW + 2.5}, "book 2500ms old > 2000ms"),
    ],
)
def test_an_exit_is_held_while_a_leg_cannot_trade_and_noted_once(venues, snap, why):
    cfg = make_config()
    engine = ExitEngine("stoploss", cfg)
    view = state(cfg, positions=[pair_position(opened_at=NOW - 60)], venues=venues)
    notes = []
    for tick in range(3):
        out = engine.on_tick(ctx(snapshot(CRASHED, **snap), view, tick=tick))
        assert out.decisions == [] and out.metrics["sl_triggers"] == 0.0
        notes += [n.message for n in out.notes if "exit held" in n.message]
    assert len(notes) == 1 and why in notes[0], notes  # noted when it starts, not every tick
    view = state(cfg, positions=[pair_position(opened_at=NOW - 60)])
    released = engine.on_tick(ctx(snapshot(CRASHED), view, tick=3))
    assert [i.reason for i in released.decisions] == ["STOP_LOSS"]
    assert any("no longer held" in n.message for n in released.notes)


def test_the_spread_window_samples_only_assets_whose_books_changed() -> None:
    config = make_config()
    venues = state(config).venues
    snap = snapshot(btc_books())
    window = SpreadWindow(10)
    for changed in (None, frozenset({("upbit", "ETH")}), frozenset({("upbit", "BTC")}), frozenset()):
        window.observe(replace(snap, changed=changed), ("BTC",), venues)
    # the full pass and the tick that changed BTC's book: two samples, not four
    assert len(window._samples[("BTC", "binance", "upbit")]) == 2
