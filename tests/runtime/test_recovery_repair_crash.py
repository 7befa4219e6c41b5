"""Recovery of a group whose repair orders a crash interrupted: the repairs sent before the crash
count, and the next one gets an id of its own (found by the SIGKILL crash test against the simulator,
where the restart died on `order ...-RS1 is already in the ledger`)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import parse_config
from arbitrage.domain import ids
from arbitrage.domain.legs import ResidualBook
from arbitrage.domain.orders import Order, OrderRejected, OrderRequest, OrderState, OrderSubmitted, apply
from arbitrage.runtime.recovery import Recovery
from arbitrage.runtime.wiring import Bot, build_bot
from tests.e2e.runner import base_config


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    """A mock-venue bot on a real SQLite ledger, its market stepped once so that books exist."""
    data = base_config()
    data["venues"]["binance"]["buy_fee_in"] = "quote"  # whole quantities arrive (see test_recovery.py)
    b = build_bot(
        parse_config(data), data_dir=tmp_path, interval_s=0, max_ticks=1, env={}, clock=FakeClock(),
        alert=lambda key, text: None,
    )  # fmt: skip
    b.venues.before_tick[0]()
    yield b
    b.close()


def restart(bot: Bot) -> Recovery:
    """What a new process would have: the ledger and the venues, nothing in memory."""
    bot.state.positions.clear()
    for position in bot.ledger.open_positions():
        bot.state.put_position(position)
    bot.trader.residuals = ResidualBook()
    bot.sender.unresolved.clear()
    return Recovery(
        bot.ledger, bot.venues.by_name, bot.sender, bot.trader, bot.state, bot.clock,
        lambda key, text: None, fx=bot.feed.fx_now, mid=bot.feed.mid,
    )  # fmt: skip


def _order(bot: Bot, group: str, leg: str, venue: str, side: str, purpose: str) -> Order:
    symbol = bot.config.venue_symbol(venue, "BTC")
    book = bot.feed.book(venue, "BTC")
    assert book is not None and book.best_ask and book.best_bid
    rules = bot.state.rules[(venue, symbol)]
    raw = Decimal(repr(book.best_ask if side == "buy" else book.best_bid))
    raw *= Decimal("1.002") if side == "buy" else Decimal("0.998")
    req = OrderRequest(
        ids.client_order_id(group, leg), venue, symbol, side, Decimal("0.01"),
        rules.round_price(raw, side), purpose, group, group,
    )  # fmt: skip
    return Order.from_request(req, group)


def _fx(bot: Bot, venue: str) -> float:
    return bot.feed.fx_now()[bot.venues.by_name[venue].quote]


def test_a_retry_written_before_the_crash_is_not_written_again(bot: Bot) -> None:
    group = ids.entry_group("arb", bot.ledger.next_sequence("entry"))
    buy = _order(bot, group, "B", "binance", "buy", "entry")
    sell = _order(bot, group, "S", "upbit", "sell", "entry")
    bot.ledger.insert_orders([buy, sell], bot.clock.time())
    bot.sender.send(buy, _fx(bot, "binance"))
    refused = apply(apply(sell, OrderSubmitted()), OrderRejected("refused by the venue"))
    bot.ledger.update_order(refused, bot.clock.time())
    retry = _order(bot, group, "RS1", "upbit", "sell", "retry")
    bot.ledger.insert_orders([retry], bot.clock.time())  # the process died right after this write

    report = restart(bot).run()

    assert report.complete and bot.ledger.unconcluded_groups() == []
    legs = {ids.leg_of(o.client_order_id): o for o in bot.ledger.group_orders(group)}
    assert legs["RS1"].state is OrderState.CANCELLED  # never sent
    assert legs["RS2"].state is OrderState.FILLED  # the retry recovery sent, under a new id
    position = bot.ledger.position(group)
    assert position is not None and position.qty == Decimal("0.01")


def test_repairs_before_the_crash_count_against_the_budget(bot: Bot) -> None:
    cfg = bot.config.execution
    group = ids.entry_group("arb", bot.ledger.next_sequence("entry"))
    buy = _order(bot, group, "B", "binance", "buy", "entry")
    bot.ledger.insert_orders([buy], bot.clock.time())
    bot.sender.send(buy, _fx(bot, "binance"))
    budget = cfg.hedge_retries + cfg.unwind_attempts
    sells = [_order(bot, group, "S", "upbit", "sell", "entry")] + [
        _order(bot, group, f"RS{n}", "upbit", "sell", "retry") for n in range(1, budget + 1)
    ]
    bot.ledger.insert_orders(sells, bot.clock.time())  # every repair already tried, none sent

    restart(bot).run()

    orders = bot.ledger.group_orders(group)
    assert len(orders) == 1 + len(sells)  # the budget is spent: recovery sends nothing more
    assert bot.ledger.unconcluded_groups() == []
    assert bot.state.unhedged == {("binance", "BTC"): Decimal("0.01")}  # parked, for the residual unwind
