"""Recovery against real mock venues and a real SQLite ledger: each test leaves the ledger and the
venues as a crash at one point would, then runs the start-up reconciliation of a restarted bot."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.domain import ids
from arbitrage.domain.legs import ResidualBook
from arbitrage.domain.money import dec
from arbitrage.domain.orders import Order, OrderRequest, OrderState, OrderSubmitted, apply
from arbitrage.runtime.recovery import Recovery
from arbitrage.runtime.wiring import Bot, build_bot
from tests.e2e.runner import base_config


def config(**overrides: object) -> AppConfig:
    data = base_config()
    # Whole quantities arrive here: the fee taken from the coin bought has tests of its own
    # (test_recovery_coin_fee.py).
    data["venues"]["binance"]["buy_fee_in"] = "quote"
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    alerts: list[tuple[str, str]] = []
    b = build_bot(
        config(),
        data_dir=tmp_path,
        interval_s=0,
        max_ticks=1,
        env={},
        clock=FakeClock(),
        alert=lambda k, t: alerts.append((k, t)),
    )
    b.venues.before_tick[0]()  # one market step, so books exist
    yield b
    b.close()


def _leg(bot: Bot, group: str, leg: str, venue: str, side: str, qty: str) -> Order:
    symbol = bot.config.venue_symbol(venue, "BTC")
    book = bot.feed.book(venue, "BTC")
    assert book is not None and book.best_ask and book.best_bid
    rules = bot.state.rules[(venue, symbol)]
    raw = dec(book.best_ask) * Decimal("1.002") if side == "buy" else dec(book.best_bid) * Decimal("0.998")
    req = OrderRequest(
        ids.client_order_id(group, leg),
        venue,
        symbol,
        side,
        Decimal(qty),
        rules.round_price(raw, side),
        "entry",
        group,
        group,
    )
    return Order.from_request(req, group)


def _entry_orders(bot: Bot) -> tuple[str, Order, Order]:
    group = ids.entry_group("arb", bot.ledger.next_sequence("entry"))
    buy = _leg(bot, group, "B", "binance", "buy", "0.01")
    sell = _leg(bot, group, "S", "upbit", "sell", "0.01")
    bot.ledger.insert_orders([buy, sell], bot.clock.time())
    return group, buy, sell


def _fx(bot: Bot, venue: str) -> float:
    return bot.feed.fx_now()[bot.venues.by_name[venue].quote]


def restart(bot: Bot) -> Recovery:
    """What a new process would have: the ledger and the venues, nothing in memory."""
    bot.state.positions.clear()
    for p in bot.ledger.open_positions():
        bot.state.put_position(p)
    bot.trader.residuals = ResidualBook()
    bot.sender.unresolved.clear()
    return Recovery(
        bot.ledger,
        bot.venues.by_name,
        bot.sender,
        bot.trader,
        bot.state,
        bot.clock,
        lambda k, t: None,
        fx=bot.feed.fx_now,
        mid=bot.feed.mid,
    )


def venue_orders(bot: Bot, venue: str) -> dict[str, object]:
    return dict(bot.venues.by_name[venue]._orders)  # type: ignore[attr-defined]


def test_crash_between_the_two_legs_completes_the_missing_leg(bot: Bot) -> None:
    group, buy, sell = _entry_orders(bot)
    bot.sender.send(buy, _fx(bot, "binance"))  # the first leg went out; the process died here
    report = restart(bot).run()
    assert report.complete
    assert bot.ledger.order(sell.client_order_id).state is OrderState.CANCELLED  # never sent
    position = bot.ledger.position(group)
    assert position is not None and position.qty == Decimal("0.01")
    assert abs(position.buy_qty - position.sell_qty) <= Decimal("0.0001")
    assert group not in bot.ledger.unconcluded_groups()
    retries = [o for o in bot.ledger.group_orders(group) if o.purpose == "retry"]
    assert len(retries) == 1 and retries[0].state is OrderState.FILLED
    # The cancelled sell id was never placed, and the retry used a new id.
    assert sell.client_order_id not in venue_orders(bot, "upbit")


def test_crash_after_both_legs_books_the_position_once(bot: Bot) -> None:
    group, buy, sell = _entry_orders(bot)
    bot.sender.send(buy, _fx(bot, "binance"))
    bot.sender.send(sell, _fx(bot, "upbit"))
    restart(bot).run()
    position = bot.ledger.position(group)
    assert position is not None and position.qty == Decimal("0.01")
    assert [o.purpose for o in bot.ledger.group_orders(group)] == ["entry", "entry"]  # nothing resent
    again = restart(bot).run()  # a second restart finds nothing to do
    assert again.groups == [] and again.orders == []
    assert len([p for p in bot.ledger.positions() if p.position_id == group]) == 1


def test_crash_after_the_venue_filled_but_before_the_ledger_heard(bot: Bot) -> None:
    group, buy, _sell = _entry_orders(bot)
    venue = bot.venues.by_name["binance"]
    submitted = apply(buy, OrderSubmitted())
    bot.ledger.update_order(submitted, bot.clock.time())
    venue.submit(
        OrderRequest(
            buy.client_order_id, buy.venue, buy.symbol, "buy", buy.qty, buy.price, "entry", group, group
        )
    )  # the venue filled it; the bot died before writing that
    report = restart(bot).run()
    recovered = bot.ledger.order(buy.client_order_id)
    assert recovered.state is OrderState.FILLED and recovered.filled_qty == Decimal("0.01")
    assert len(bot.ledger.fills(buy.client_order_id)) == 1
    assert any(buy.client_order_id in line and "SUBMITTED -> FILLED" in line for line in report.orders)
    assert bot.ledger.position(group) is not None


def test_an_order_written_submitted_that_never_reached_the_venue_is_closed(bot: Bot) -> None:
    group, buy, sell = _entry_orders(bot)
    bot.ledger.update_order(apply(buy, OrderSubmitted()), bot.clock.time())  # died before the call
    restart(bot).run()
    assert bot.ledger.order(buy.client_order_id).state is OrderState.REJECTED
    assert bot.ledger.order(sell.client_order_id).state is OrderState.CANCELLED
    assert bot.ledger.position(group) is None
    assert bot.ledger.unconcluded_groups() == []
    assert bot.state.unhedged == {}


def test_inventory_outside_positions_is_rebuilt_and_unwound(bot: Bot) -> None:
    group, buy, sell = _entry_orders(bot)
    filled = bot.sender.send(buy, _fx(bot, "binance"))
    bot.ledger.update_order(apply(sell, OrderSubmitted()), bot.clock.time())
    # The sell never reached upbit and the retry cannot happen: make upbit refuse everything.
    bot.venues.by_name["upbit"]._balances["BTC"] = Decimal(0)  # type: ignore[attr-defined]
    restart(bot).run()
    assert bot.ledger.position(group) is None  # nothing could be hedged; the buy was unwound
    unwinds = [o for o in bot.ledger.group_orders(group) if o.purpose == "unwind"]
    assert unwinds and sum(o.filled_qty for o in unwinds) == filled.filled_qty
    assert bot.state.unhedged == {}
    events = bot.ledger.hedge_events()
    assert any(e["kind"] == "unwind" for e in events)
