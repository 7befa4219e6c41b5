"""SafetyEngine: one test per reason code, first failure wins, limits shared within a tick."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.decisions import SafetyVerdict
from arbitrage.engines.base import EngineOutput
from arbitrage.engines.safety import LIMIT_CHECKS, SafetyEngine, trading_day
from tests.engines.factories import (
    NOW,
    book,
    btc_books,
    ctx,
    default_balances,
    make_config,
    opportunity,
    pair_position,
    snapshot,
    state,
)


def judge(
    opps: list[Any] | None = None,
    *,
    config: dict[str, Any] | None = None,
    snap: dict[str, Any] | None = None,
    books: list[Any] | None = None,
    engine: SafetyEngine | None = None,
    **state_changes: Any,
) -> tuple[list[SafetyVerdict], EngineOutput]:
    cfg = make_config(**(config or {}))
    engine = engine or SafetyEngine("safety", cfg)
    view = state(cfg, **state_changes)
    tick = ctx(snapshot(books or btc_books(), **(snap or {})), view, signal=opps or [opportunity()])
    out = engine.on_tick(tick)
    return out.decisions, out


def reason_of(**kwargs: Any) -> str | None:
    verdicts, _ = judge(**kwargs)
    assert len(verdicts) == 1
    return verdicts[0].reason


def test_the_reference_opportunity_is_approved():
    verdicts, out = judge()
    assert [v.approved for v in verdicts] == [True]
    assert out.metrics == {"approvals": 1.0, "rejections": 0.0}
    assert out.notes == []


ONE_PER_REASON = [
    ("HALTED", {"halted": True, "halt_reason": ".halt exists"}),
    ("HALTED", {"entries_blocked": "shutting down"}),
    ("DAILY_LOSS_LIMIT", {"daily_realized_pnl": Decimal(-1_000_000)}),
    ("REDIS_HEARTBEAT_STALE", {"config": {"safety": {"require_redis_heartbeat": True}}}),
    (
        "REDIS_HEARTBEAT_STALE",
        {"config": {"safety": {"require_redis_heartbeat": True}}, "redis_heartbeat_age_ms": 5001.0},
    ),
    ("VENUE_DEGRADED", {"venues": {"upbit": {"degraded": True}}}),
    ("STALE_DATA", {"books": btc_books(ts=NOW - 2.5)}),
    ("STALE_DATA", {"snap": {"fx_age_ms": 6000.0}}),
    ("STALE_DATA", {"books": btc_books()[:1]}),
    # A book that did not come this tick: the last one stands in, younger than the limit, yet
    # not to be traded on (it missed the tick's read deadline, or its venue failed).
    ("STALE_DATA", {"snap": {"carried": [("upbit", "BTC")]}}),
    ("WS_LAG", {"venues": {"binance": {"ws_lag_ms": 1500.0}}}),
    ("WS_LAG", {"snap": {"ws_lag_ms": {"upbit": 1001.0}}}),
    ("SPREAD_OUTLIER", {"opps": [opportunity(net_spread_pct=5.5)]}),
    ("MIN_LIQUIDITY", {"opps": [opportunity(qty=0.0005)]}),  # 70,000 KRW < 100,000
    ("MAX_SLIPPAGE", {"opps": [opportunity(slippage_pct=0.31)]}),
    ("MAX_OPEN_POSITIONS", {"config": {"safety": {"max_open_positions": 1}}, "positions": [pair_position()]}),
    ("MAX_POSITION_SIZE", {"opps": [opportunity(qty=0.08)]}),  # 11.2M KRW > 10M
    ("MAX_EXPOSURE", {"config": {"safety": {"max_exposure": 5_000_000.0}}, "positions": [pair_position()]}),
    ("INSUFFICIENT_BALANCE", {"balances": {**default_balances(), "binance": {"USDT": Decimal(30)}}}),
    ("INSUFFICIENT_BALANCE", {"balances": {**default_balances(), "upbit": {"KRW": Decimal(10**9)}}}),
    ("ORDER_RATE", {"venues": {"upbit": {"orders_last_minute": 119}}}),
    (None, {"venues": {"upbit": {"orders_last_minute": 118}}}),
    (None, {"redis_heartbeat_age_ms": None}),  # Redis not required
    (None, {"daily_realized_pnl": Decimal(-999_999)}),
]


@pytest.mark.parametrize(("reason", "kwargs"), ONE_PER_REASON)
def test_reason_codes(reason, kwargs):
    assert reason_of(**kwargs) == reason


def test_every_check_is_covered_by_a_case():
    covered = {reason for reason, _ in ONE_PER_REASON if reason}
    assert len(LIMIT_CHECKS) == len(covered) + 1  # ASSET_BUSY has its own test below


def test_first_failure_wins():
    # halted, stale and an outlier at once: the operator halt is what is reported
    kwargs = {"halted": True, "books": btc_books(ts=NOW - 10), "opps": [opportunity(net_spread_pct=9.0)]}
    assert reason_of(**kwargs) == "HALTED"
    del kwargs["halted"]
    assert reason_of(**kwargs) == "STALE_DATA"


def test_rejection_metrics_and_notes():
    opps = [opportunity(net_spread_pct=6.0), eth_opportunity(slippage_pct=1.0)]
    verdicts, out = judge(opps, books=eth_books())
    assert [v.reason for v in verdicts] == ["SPREAD_OUTLIER", "MAX_SLIPPAGE"]
    assert out.metrics == {
        "approvals": 0.0,
        "rejections": 2.0,
        "rejections.SPREAD_OUTLIER": 1.0,
        "rejections.MAX_SLIPPAGE": 1.0,
    }
    assert [n.level for n in out.notes] == ["INFO", "INFO"]
    assert "BTC:binance>upbit" in out.notes[0].message and "SPREAD_OUTLIER" in out.notes[0].message
    assert "net=6.000%" in out.notes[0].message


def test_rejections_for_the_same_reason_and_detail_share_one_note():
    # An operator halt refuses every opportunity with the same detail: one line names them all.
    opps = [opportunity(net_spread_pct=0.5), eth_opportunity(net_spread_pct=0.6)]
    verdicts, out = judge(opps, books=eth_books(), halted=True)
    assert [v.reason for v in verdicts] == ["HALTED", "HALTED"]
    assert len(out.notes) == 1
    message = out.notes[0].message
    assert "ETH:" in message and "BTC:binance>upbit net=0.500%" in message and "reason=HALTED" in message
    assert out.metrics["rejections.HALTED"] == 2.0
    # Different details (each outlier's own spread) stay on lines of their own.
    _, out = judge([opportunity(net_spread_pct=6.0), eth_opportunity(net_spread_pct=7.0)],
                   books=eth_books())  # fmt: skip
    assert len(out.notes) == 2


def test_one_approval_per_asset_per_tick_best_spread_first():
    worse, better = opportunity(net_spread_pct=0.4), opportunity(net_spread_pct=0.9)
    verdicts, _ = judge([worse, better])
    assert [(v.opportunity.net_spread_pct, v.reason) for v in verdicts] == [(0.9, None), (0.4, "ASSET_BUSY")]


def eth_opportunity(**changes: Any) -> Any:
    base = {
        "asset": "ETH",
        "buy_symbol": "ETH/USDT",
        "sell_symbol": "ETH/KRW",
        "qty": 0.5,
        "buy_price": 3_500.0,
        "buy_vwap": 3_500.0,
        "sell_price": 4_930_000.0,
        "sell_vwap": 4_930_000.0,
    }
    return opportunity(**{**base, **changes})


def eth_books() -> list[Any]:
    return [
        *btc_books(),
        book("binance", "ETH/USDT", [(3_499.0, 10.0)], [(3_500.0, 10.0)]),
        book("upbit", "ETH/KRW", [(4_930_000.0, 10.0)], [(4_935_000.0, 10.0)]),
    ]


@pytest.mark.parametrize(
    ("kwargs", "second"),
    [
        ({"config": {"safety": {"max_open_positions": 1}}}, "MAX_OPEN_POSITIONS"),
        ({"config": {"safety": {"max_exposure": 5_000_000.0}}}, "MAX_EXPOSURE"),
        # BTC reserves 3,003 USDT (with its fee), leaving 17 USDT: below ETH's 35.75 USDT minimum
        ({"balances": {**default_balances(), "binance": {"USDT": Decimal(3_020)}}}, "INSUFFICIENT_BALANCE"),
        ({"venues": {"upbit": {"orders_last_minute": 118}}}, "ORDER_RATE"),
    ],
)
def test_earlier_approvals_in_the_tick_count_against_shared_limits(kwargs, second):
    verdicts, _ = judge(
        [opportunity(net_spread_pct=0.9), eth_opportunity(net_spread_pct=0.5)], books=eth_books(), **kwargs
    )
    assert [v.reason for v in verdicts] == [None, second]


def test_both_assets_approved_when_limits_allow():
    verdicts, out = judge([opportunity(), eth_opportunity()], books=eth_books())
    assert [v.approved for v in verdicts] == [True, True]
    assert out.metrics["approvals"] == 2.0


def test_kill_switch_note_once_per_trading_day():
    cfg = make_config()
    engine = SafetyEngine("safety", cfg)
    loss = Decimal(-1_500_000)

    def errors_at(ts: float, pnl: Decimal = loss) -> list[str]:
        view = state(cfg, daily_realized_pnl=pnl)
        out = engine.on_tick(ctx(snapshot(btc_books(ts=ts), ts=ts), view))
        return [n.message for n in out.notes if n.level == "ERROR"]

    first = errors_at(NOW)
    assert len(first) == 1 and "kill switch" in first[0]
    assert errors_at(NOW + 60) == []
    next_day = (trading_day(NOW, 9.0) + 1) * 86400 - 9 * 3600 + 1
    assert trading_day(next_day, 9.0) == trading_day(NOW, 9.0) + 1
    assert len(errors_at(next_day)) == 1
    assert errors_at(next_day + 5, Decimal(0)) == []


def test_trading_day_follows_the_configured_offset():
    midnight_kst = 1_700_000_000 - (1_700_000_000 + 9 * 3600) % 86400
    assert trading_day(midnight_kst - 1, 9.0) + 1 == trading_day(midnight_kst, 9.0)
