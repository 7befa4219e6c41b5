"""The real bot (mock venues) as a fleet worker on a private Redis: its entries are reserved and its
open positions stay reserved; with Redis gone, entries are refused as REDIS_HEARTBEAT_STALE while
exits go on; back, entries resume; a restart rebuilds the reservations from the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.orders import OrderState
from arbitrage.runtime.wiring import Bot, build_bot
from arbitrage.store.ledger import open_ledger
from arbitrage.store.risk_budget import Limits, RiskBudget
from tests.runtime.mock_bot import Recorder, mock_config
from tests.store.ledger_factories import make_order
from tests.store.redis_server import PrivateRedisServer
from tests.waiting import wait_until

OVERRIDES = {
    "redis": {"enabled": True},
    "fleet": {"enabled": True, "key_prefix": "t"},
    "mock": {"premium_mean_pct": 0.6},
    "safety": {"max_open_positions": 3},
    "exit": {"max_hold_s": 5.0},
}


def worker(tmp_path: Path, url: str, clock: FakeClock) -> tuple[Bot, RiskBudget]:
    config = mock_config(OVERRIDES)
    budget = RiskBudget(url, "t", config.instance, 30.0, Limits.of(config), clock)
    bot = build_bot(
        config, data_dir=tmp_path, interval_s=1.0, max_ticks=None, alert=Recorder().alert, env={},
        clock=clock, risk_budget=budget,
    )  # fmt: skip
    return bot, budget


def tick_until(bot: Bot, clock: FakeClock, condition: object, what: str, limit: int = 400) -> None:
    for _ in range(limit):
        clock.advance(1.0)
        report = bot.loop.run_tick()
        for hook in bot.loop.hooks:  # as LiveLoop.run does after each tick
            hook.after_tick(report)
        if callable(condition) and condition():
            return
    raise AssertionError(f"no {what} in {limit} ticks")


def reserved(budget: RiskBudget) -> int:
    return sum(w.pairs for w in budget.workers() if w.instance == budget.instance)


def test_entries_need_the_budget_exits_do_not(tmp_path: Path, private_server: PrivateRedisServer) -> None:
    redis_server = private_server
    clock = FakeClock()
    bot, budget = worker(tmp_path, redis_server.url, clock)
    try:
        state = bot.state
        tick_until(bot, clock, lambda: len(state.positions) >= 2, "two open positions")
        assert reserved(budget) == len(state.positions)

        redis_server.kill()
        entries, exits = state.counters.entries, state.counters.exits
        tick_until(bot, clock, lambda: state.counters.exits > exits, "exit while Redis is down")
        assert state.counters.entries == entries  # not one entry went out
        assert state.counters.rejections["REDIS_HEARTBEAT_STALE"] > 0

        redis_server.start()  # empty: what it held is gone, the worker's next sync restores it
        tick_until(bot, clock, lambda: state.counters.entries > entries, "entry once Redis is back")
        wait_until(lambda: reserved(budget) == len(state.positions), 10.0, "reservations to match positions")
        # The day's fleet PnL came back too: seeded from the ledger's row, then this worker's since.
        tick_until(bot, clock, lambda: state.counters.exits > exits + 3, "more exits")
        assert budget.fleet_realized(state.day) == pytest.approx(float(state.daily_realized), abs=1e-6)
    finally:
        bot.close()
        budget.close()

    # A restart of the same worker reserves its open positions again, from the ledger.
    again, budget = worker(tmp_path, redis_server.url, clock)
    try:
        assert again.state.positions and reserved(budget) == len(again.state.positions)
    finally:
        again.close()
        budget.close()


def test_recovery_leaves_another_workers_orders_alone(tmp_path: Path) -> None:
    """w2 died with an order of unknown outcome and an unbooked group on the shared ledger: w1's
    start-up recovery neither looks them up nor closes them; w2's own recovery does."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    other = open_ledger(url, instance="w2")
    other.insert_orders([make_order("arb0000077-B", symbol="BTC/KRW", state=OrderState.SUBMITTED)], 1.0)
    other.close()

    def start(instance: str) -> Bot:
        config = mock_config({"instance": instance, "storage": {"url": url}})
        return build_bot(config, data_dir=tmp_path, interval_s=1.0, max_ticks=None, alert=Recorder().alert,
                         env={}, clock=FakeClock())  # fmt: skip

    w1 = start("w1")
    try:
        assert w1.recovery.last is not None and w1.recovery.last.orders == []
        assert w1.ledger.open_orders() == []
    finally:
        w1.close()
    check = open_ledger(url, instance="w2")
    try:
        assert [o.state for o in check.open_orders()] == [OrderState.SUBMITTED]
    finally:
        check.close()
    w2 = start("w2")
    try:
        assert w2.recovery.last is not None and len(w2.recovery.last.orders) == 1
        assert w2.ledger.open_orders() == []
    finally:
        w2.close()
