"""The console state a tick publishes: spreads per direction against the threshold, venues,
positions with unrealized PnL and age, the day, the watchdog and the last events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.spread import taker_net_spread_pct, taker_rates
from arbitrage.ops.watchdog import Level, WatchdogReport
from arbitrage.runtime.console_state import (
    ConsoleHook,
    EventLog,
    TickFacts,
    console_document,
    direction_spreads,
    event_text,
    venue_lines,
)
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.metrics_line import TickFigures
from arbitrage.runtime.state import BotState
from tests.engines.factories import (
    FEES,
    NOW,
    USDT_KRW,
    book,
    btc_books,
    make_config,
    pair_position,
    snapshot,
    venue_status,
)

CONFIG = make_config(signal={"min_spread_pct": 0.3, "slippage_buffer_pct": 0.05})
STATUSES = {name: venue_status(CONFIG, name) for name in CONFIG.venues}


def _report(tick: int = 5) -> TickReport:
    figures = TickFigures(0, 0, 0, 0, 0, 0, 0, 0, 0, 1.25, 0, 0, False)
    return TickReport(tick=tick, started_at=0.0, loop_ms=1.25, figures=figures)


def _state() -> BotState:
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9.0)
    state.venues = dict(STATUSES)
    state.roll_day(NOW)
    return state


def test_spreads_per_asset_and_direction_are_the_signal_engines_top_of_book_test() -> None:
    snap = snapshot(btc_books(binance_ask=100_000.0, upbit_bid=141_000_000.0))
    spreads = direction_spreads(("BTC", "ETH"), snap, STATUSES, 0.05)
    buy_k = taker_rates(USDT_KRW, FEES["binance"])[0]
    sell_k = taker_rates(1.0, FEES["upbit"])[1]
    expected = taker_net_spread_pct(100_000.0, USDT_KRW, buy_k, 141_000_000.0, sell_k) - 0.05
    assert spreads["BTC"]["binance>upbit"] == pytest.approx(expected, abs=1e-4)
    assert spreads["BTC"]["upbit>binance"] is not None and spreads["BTC"]["upbit>binance"] < 0
    assert spreads["ETH"] == {"upbit>binance": None, "binance>upbit": None}  # no books: said, not hidden


def test_a_missing_side_or_fx_rate_gives_no_spread() -> None:
    books = [book("binance", "BTC/USDT", bids=[(99_000.0, 1.0)]), *btc_books()[1:]]
    assert direction_spreads(("BTC",), snapshot(books), STATUSES, 0.0)["BTC"]["binance>upbit"] is None
    no_fx = snapshot(btc_books(), fx={"KRW": 1.0})
    assert direction_spreads(("BTC",), no_fx, STATUSES, 0.0) == {"BTC": {}}


def test_venue_lines_show_feed_oldest_book_breaker_and_order_rate() -> None:
    books = [*btc_books(ts=NOW - 0.5), book("upbit", "ETH/KRW", [(1.0, 1.0)], [(2.0, 1.0)], ts=NOW - 2.0)]
    statuses = {**STATUSES, "binance": venue_status(CONFIG, "binance", degraded=True, orders_last_minute=7)}
    described = {"binance": {"feed": "rest", "circuit": {"state": "open"}}, "upbit": {"feed": "simulated"}}
    lines = venue_lines(snapshot(books), statuses, described)
    assert lines["upbit"]["book_age_ms"] == 2000.0 and lines["upbit"]["breaker"] == "closed"
    assert lines["binance"] == {
        "feed": "rest",
        "book_age_ms": 500.0,
        "breaker": "open",
        "degraded": True,
        "orders_last_minute": 7,
        "ws_lag_ms": 0.0,
    }


def test_the_document_carries_positions_day_watchdog_and_events() -> None:
    state = _state()
    position = pair_position(opened_at=NOW - 90.0)
    state.put_position(position)
    state.daily_realized, state.daily_fees, state.daily_trades = Decimal("12.5"), Decimal("3.25"), 4
    state.halted, state.halt_reason = True, "halt file .halt exists"
    watchdog = WatchdogReport(Level.WARN, Level.OK, True, {"loop_latency_ms": Level.WARN})
    events = [{"ts": NOW, "kind": "entry", "text": "group=g1"}]
    facts = TickFacts.of(CONFIG, state, snapshot(btc_books()), _report(), watchdog, stopping=False)
    state.halted = False  # the facts were taken at the tick: later changes are not in them
    doc = console_document(facts, {}, events)
    assert doc["tick"] == 5 and doc["halted"] and doc["halt_reason"] == "halt file .halt exists"
    assert doc["threshold_pct"] == 0.3 and doc["stopping"] is False
    [line] = doc["positions"]
    assert line["id"] == "P1" and line["age_s"] == 90.0 and line["qty"] == "0.01"
    assert isinstance(line["unrealized"], float)
    assert doc["today"] == {"day": state.day, "realized": "12.5", "fees": "3.25", "trades": 4}
    assert doc["watchdog"] == {"level": "WARN", "per_metric": {"loop_latency_ms": "WARN"}}
    assert doc["events"] == events


def test_the_event_log_keeps_the_last_ones_and_forwards_every_one() -> None:
    forwarded: list[str] = []
    log = EventLog(FakeClock(start=NOW), lambda kind, payload: forwarded.append(kind), size=3)
    for i in range(5):
        log.publish("entry", {"group": f"g{i}", "position": None})
    log.publish("alert", {"key": "single_leg", "text": "upbit leg failed", "level": "ERROR"})
    assert [e["text"] for e in log.recent()] == [
        "group=g3",
        "group=g4",
        "[ERROR] single_leg: upbit leg failed",
    ]
    assert len(forwarded) == 6


def test_event_text_is_one_bounded_line() -> None:
    assert len(event_text("hedge", {"detail": "x" * 1000})) == 200


def test_the_hook_publishes_each_tick_and_saves_remotely_at_its_own_pace() -> None:
    clock = FakeClock(start=NOW)
    state = _state()
    saved: list[int] = []
    hook = ConsoleHook(
        CONFIG,
        clock,
        state,
        snapshot=lambda: snapshot(btc_books()),
        watchdog=lambda: None,
        describe_venues=dict,
        events=EventLog(clock),
        stopping=lambda: False,
        save_remote=lambda doc: saved.append(doc["tick"]),
        remote_every_s=1.0,
    )
    assert hook.document() is None  # before the first tick
    for tick in range(1, 6):
        assert hook.after_tick(_report(tick)) is None
        clock.advance(0.4)
    assert saved == [1, 4]  # at 0.0 s and 1.2 s
    assert hook.latest is not None and hook.latest.tick == 5
    document = hook.document()
    assert document is not None and document["tick"] == 5 and document is hook.document()  # built once


def test_the_hook_takes_no_facts_when_nothing_reads_them() -> None:
    """No health server, chat commands or Redis: a tick's facts would be taken for no one."""
    clock = FakeClock(start=NOW)
    hook = ConsoleHook(
        CONFIG,
        clock,
        _state(),
        snapshot=lambda: snapshot(btc_books()),
        watchdog=lambda: None,
        describe_venues=dict,
        events=EventLog(clock),
        stopping=lambda: False,
        read=False,
    )
    assert hook.after_tick(_report(1)) is None
    assert hook.latest is None and hook.document() is None
