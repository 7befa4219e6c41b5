"""Exits through the real bot (build_bot, mock venues, SQLite ledger, fake clock): both legs on the
common step, the dust closed into the residual book, and an exit a venue refuses backed off.

Entries are halted (the operator's halt file) so that the one position the test opens is the only
one; exits are never blocked by a halt.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from arbitrage.domain import ids
from arbitrage.domain.money import ZERO, booked, dec
from arbitrage.domain.orders import Order, OrderState
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.runtime.shutdown import Shutdown
from arbitrage.runtime.wiring import Bot
from arbitrage.store.schema import TABLES
from tests.runtime.mock_bot import Recorder, mock_bot
from tests.runtime.test_pair_trader import check_books_balance

D = Decimal
PID = "arbT0000001"
FLOAT_QTY = "0.16999999999999998"


@pytest.fixture(autouse=True)
def _halted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory
    (tmp_path / ".halt").write_text("test: no entries\n", encoding="utf-8")


def open_position(bot: Bot, qty: str, age_s: float) -> PairPosition:
    """An ETH position bought on binance and sold on upbit at the current books, `age_s` old."""
    snap = bot.feed.snapshot()
    buy, sell = snap.book("binance", "ETH"), snap.book("upbit", "ETH")
    assert buy is not None and sell is not None and buy.best_ask and sell.best_bid
    q = D(qty)
    cost = booked(q * dec(buy.best_ask) * dec(snap.fx["USDT"]))
    proceeds = booked(q * dec(sell.best_bid))
    opened = bot.clock.time() - age_s
    position = PairPosition(
        PID, "ETH", "binance", "upbit", "ETH/USDT", "ETH/KRW", q, q, q, cost, proceeds, ZERO, 0.5, opened
    )
    bot.ledger.save_position(position, opened)
    bot.state.put_position(position)
    return position


def run(tmp_path: Path, qty: str, ticks: int, **overrides: Any) -> tuple[Bot, Recorder]:
    config = {"exit": {"max_hold_s": 10.0}, "symbols": ["ETH"], **overrides}
    bot, recorder = mock_bot(tmp_path, overrides=config, max_ticks=ticks)
    open_position(bot, qty, age_s=100.0)  # past max_hold_s: the exit engine exits it at once
    bot.loop.run()
    return bot, recorder


def exit_groups(bot: Bot) -> dict[str, list[Order]]:
    groups: dict[str, list[Order]] = {}
    for order in bot.ledger.orders():
        if order.position_id == PID:
            groups.setdefault(ids.group_of(order.client_order_id), []).append(order)
    return groups


def stored_position(bot: Bot) -> PairPosition:
    (position,) = [p for p in bot.ledger.positions() if p.position_id == PID]
    return position


def common_step(bot: Bot) -> Decimal:
    return max(
        bot.state.rules[("binance", "ETH/USDT")].qty_step, bot.state.rules[("upbit", "ETH/KRW")].qty_step
    )


def test_a_float_qty_exits_on_the_common_step_and_the_dust_closes_into_the_residual_book(
    tmp_path: Path,
) -> None:
    bot, recorder = run(tmp_path, FLOAT_QTY, ticks=5)
    step = common_step(bot)
    closable = (D(FLOAT_QTY) / step).to_integral_value(ROUND_DOWN) * step
    dust = D(FLOAT_QTY) - closable
    assert step > D("1e-8") and 0 < dust < step

    # One exit, both legs the same qty on the coarser venue's step, both filled.
    (legs,) = exit_groups(bot).values()
    assert sorted((o.venue, o.side, o.qty, o.state) for o in legs) == [
        ("binance", "sell", closable, OrderState.FILLED),
        ("upbit", "buy", closable, OrderState.FILLED),
    ]
    # The rest is closed as dust: not open, not counted, not retried; held as residual inventory.
    position = stored_position(bot)
    assert (position.state, position.qty, position.closed_qty) == (PositionState.CLOSED, 0, D(FLOAT_QTY))
    assert position.exit_reason == "DUST"
    assert bot.state.positions == {} and bot.state.exit_retries == {}
    assert bot.trader.residuals.quantities() == {("binance", "ETH"): dust, ("upbit", "ETH"): -dust}
    assert bot.trader.residuals.net("ETH") == 0
    dust_rows = [r for r in bot.ledger.hedge_events() if r["detail"].startswith(f"dust of {PID}")]
    assert sorted((r["venue"], r["qty"]) for r in dust_rows) == [("binance", dust), ("upbit", dust)]
    assert "open_pos=0" in recorder.lines[-1]
    assert recorder.alerts == []  # nothing failed
    check_books_balance(bot)


def test_a_position_below_every_minimum_closes_as_dust_without_an_order(tmp_path: Path) -> None:
    bot, _ = run(tmp_path, "0.0000005", ticks=3)  # 2.5 KRW on upbit, 0.0018 USDT on binance
    assert exit_groups(bot) == {}
    position = stored_position(bot)
    assert (position.state, position.exit_reason) == (PositionState.CLOSED, "DUST")
    assert bot.trader.residuals.net("ETH") == 0 and bot.state.positions == {}
    check_books_balance(bot)


def test_an_exit_refused_for_funds_is_backed_off_exponentially_and_alerted_once(tmp_path: Path) -> None:
    # 10,000 KRW on upbit cannot buy back 0.2 ETH (about 1M KRW): every exit's buy leg is refused,
    # the binance sell is unwound. 40 one-second ticks of the fake clock.
    upbit = {"balances": {"KRW": 10000, "BTC": 0.5, "ETH": 10}}
    bot, recorder = run(tmp_path, "0.2", ticks=40, venues={"upbit": upbit})
    groups = exit_groups(bot)
    columns = TABLES["orders"].columns
    cid, created = columns.index("client_order_id"), columns.index("created_at")
    written = {row[cid]: row[created] for row in bot.ledger.dump_rows("orders")}
    started = sorted(min(written[o.client_order_id] for o in legs) for legs in groups.values())
    # Attempts at t0, +1, +3, +7, +15, +31 s: the waits double (1, 2, 4, 8, 16 s), 6 in 40 s.
    assert [b - a for a, b in pairwise(started)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    for legs in groups.values():
        buy = next(o for o in legs if ids.leg_of(o.client_order_id) == "B")
        assert buy.state is OrderState.REJECTED and "insufficient" in (buy.reason or "")
    position = stored_position(bot)
    assert position.state is PositionState.OPEN and position.qty == D("0.2")
    retry = bot.state.exit_retries[PID]
    assert retry.failures == 6 and "insufficient balance" in retry.why
    failed = [text for key, text in recorder.alerts if key == f"exit-failed:{PID}"]
    assert len(failed) == 1 and "insufficient balance" in failed[0]
    check_books_balance(bot)


def test_shutdown_flatten_takes_the_same_path(tmp_path: Path) -> None:
    overrides = {"exit": {"max_hold_s": 86400.0}, "symbols": ["ETH"], "shutdown": {"flatten": True}}
    bot, recorder = mock_bot(tmp_path, overrides=overrides, max_ticks=1)
    open_position(bot, FLOAT_QTY, age_s=1.0)
    bot.loop.run()
    assert PID in bot.state.positions  # no trigger: only the shutdown closes it
    assert Shutdown(bot, recorder.alert, tmp_path / "state.json").run("test", 0) == 0
    step = common_step(bot)
    closable = (D(FLOAT_QTY) / step).to_integral_value(ROUND_DOWN) * step
    (legs,) = exit_groups(bot).values()  # pass 1: the closable part; pass 2: the dust, no order
    assert {(o.venue, o.qty, o.state) for o in legs} == {
        ("binance", closable, OrderState.FILLED),
        ("upbit", closable, OrderState.FILLED),
    }
    position = stored_position(bot)
    assert (position.state, position.exit_reason, position.qty) == (PositionState.CLOSED, "DUST", 0)
    assert bot.trader.residuals.net("ETH") == 0 and bot.state.positions == {}
