"""Recovery where Binance takes a buy's fee from the coin bought: the position and the inventory
outside it are rebuilt from what arrived, as the venue's balance shows it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain import ids
from arbitrage.runtime.wiring import Bot, build_bot
from tests.runtime.test_recovery import _fx, _leg, config, restart

D = Decimal


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    cfg = config()
    venues = {name: v.model_copy(update={"buy_fee_in": "auto"}) for name, v in cfg.venues.items()}
    b = build_bot(
        cfg.model_copy(update={"venues": venues}), data_dir=tmp_path, interval_s=0, max_ticks=1, env={},
        clock=FakeClock(), alert=lambda k, t: None,
    )  # fmt: skip
    b.venues.before_tick[0]()
    yield b
    b.close()


def test_an_entry_booked_after_a_crash_holds_what_arrived(bot: Bot) -> None:
    rules = bot.state.rules[("binance", "BTC/USDT")]
    assert rules.buy_fee_in_base == D("0.001")  # the mock's Binance takes the fee from the coin
    start = bot.venues.by_name["binance"].balances()["BTC"]
    group = ids.entry_group("arb", bot.ledger.next_sequence("entry"))
    buy = _leg(bot, group, "B", "binance", "buy", str(rules.buy_qty_for(D("0.01"))))
    sell = _leg(bot, group, "S", "upbit", "sell", "0.01")
    bot.ledger.insert_orders([buy, sell], bot.clock.time())
    bot.sender.send(buy, _fx(bot, "binance"))
    bot.sender.send(sell, _fx(bot, "upbit"))  # both legs filled; the process died before booking
    restart(bot).run()

    arrived = bot.venues.by_name["binance"].balances()["BTC"] - start
    assert buy.qty == D("0.01002") and arrived == D("0.01000998")  # 0.01002 less its 0.1% in BTC
    position = bot.ledger.position(group)
    assert position is not None and position.qty == D("0.01") and position.buy_qty == arrived
    # What arrived beyond the position is inventory outside it, not a phantom 0.00002.
    assert bot.trader.residuals.quantities() == {("binance", "BTC"): arrived - D("0.01")}
    # A second restart rebuilds the same from the ledger alone.
    restart(bot).run()
    assert bot.trader.residuals.quantities() == {("binance", "BTC"): arrived - D("0.01")}
