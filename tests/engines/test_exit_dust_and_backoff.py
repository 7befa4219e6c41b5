"""Exits the venues can take, dust that they cannot, and the backoff of a failing exit.

Binance trades BTC in steps of 0.00001 with a 5 USDT minimum, Upbit in steps of 1e-8 with a
5,000 KRW minimum (tests.engines.factories.default_rules). A position's qty can be finer than the
coarser step (the finer venue's fills, or float digits): both legs must close the same amount.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.exit_retry import ExitRetry, first_failure, retry_delay_s
from arbitrage.domain.money import MarketRules
from arbitrage.domain.pnl import reverse_trade
from arbitrage.engines.execution import DUST, closable_qty, plan_exit, price_floors
from arbitrage.engines.position import PositionEngine
from arbitrage.engines.stoploss import ExitEngine
from arbitrage.errors import ConfigError
from tests.engines.factories import (
    FEES,
    NOW,
    book,
    ctx,
    default_rules,
    make_config,
    pair_position,
    snapshot,
    state,
)

D = Decimal
BINANCE_BTC = default_rules()[("binance", "BTC/USDT")]
UPBIT_BTC = default_rules()[("upbit", "BTC/KRW")]
BINANCE_ETH = default_rules()[("binance", "ETH/USDT")]
UPBIT_ETH = default_rules()[("upbit", "ETH/KRW")]


def market(binance_bid: float = 100_000.0, upbit_ask: float = 141_200_000.0) -> list[Any]:
    """Deep books where the reverse trade loses a little (no trigger for a young position)."""
    return [
        book("binance", "BTC/USDT", [(binance_bid, 10.0)], [(binance_bid + 100, 10.0)]),
        book("upbit", "BTC/KRW", [(upbit_ask - 100_000, 10.0)], [(upbit_ask, 10.0)]),
    ]


@pytest.mark.parametrize(
    ("qty", "sell_rules", "buy_rules", "sell_price", "buy_price", "closable"),
    [
        # the float that reached a position: both legs close 0.16999, the rest is dust
        ("0.16999999999999998", BINANCE_BTC, UPBIT_BTC, "99000", "141000000", "0.16999"),
        ("0.16999999999999998", UPBIT_BTC, BINANCE_BTC, "141000000", "100000", "0.16999"),
        ("0.16999999999999998", BINANCE_ETH, UPBIT_ETH, "3500", "5000000", "0.1699"),
        # on both steps already: unchanged
        ("0.01", BINANCE_BTC, UPBIT_BTC, "99000", "141000000", "0.01"),
        # what the rounding left behind: below the coarser step, nothing to send
        ("0.00000999999999998", BINANCE_BTC, UPBIT_BTC, "99000", "141000000", "0"),
        # below Binance's 5 USDT at the sell limit (4.95), though Upbit would take 7,050 KRW
        ("0.00005", BINANCE_BTC, UPBIT_BTC, "99000", "141000000", "0"),
        # at the touch the same qty is 5 USDT: tradable on both
        ("0.00005", BINANCE_BTC, UPBIT_BTC, "100000", "141000000", "0.00005"),
        # below Upbit's 5,000 KRW (4,230) though Binance takes 6 USDT
        ("0.00003", MarketRules(D("0.01"), D("0.00001"), D(1)), UPBIT_BTC, "200000", "141000000", "0"),
    ],
)
def test_closable_qty(qty, sell_rules, buy_rules, sell_price, buy_price, closable):
    got = closable_qty(D(qty), sell_rules, buy_rules, D(sell_price), D(buy_price))
    assert got == D(closable)
    # The exit engine's per-tick screen agrees (the floors are the prices at the minimums).
    floors = price_floors(D(qty), sell_rules, buy_rules)
    screened = floors is not None and float(sell_price) >= floors[0] and float(buy_price) >= floors[1]
    assert screened == (got > 0)


def _trade(position, books):
    return reverse_trade(position, snapshot(books), FEES)


def test_plan_exit_sends_the_common_step_on_both_legs():
    position = pair_position(qty="0.16999999999999998")
    intent = plan_exit(position, _trade(position, market()), "STOP_LOSS", 1.0, BINANCE_BTC, UPBIT_BTC)
    assert intent.reason == "STOP_LOSS" and intent.sell is not None and intent.buy is not None
    assert intent.qty == intent.sell.qty == intent.buy.qty == D("0.16999")
    assert (intent.sell.venue, intent.buy.venue) == ("binance", "upbit")


@pytest.mark.parametrize("qty", ["0.00000999999999998", "0.00004", "0.00000001"])
def test_plan_exit_of_what_no_venue_pair_trades_is_a_dust_close(qty):
    position = pair_position(qty=qty)
    intent = plan_exit(position, _trade(position, market()), "SHUTDOWN", 1.0, BINANCE_BTC, UPBIT_BTC)
    assert (intent.reason, intent.qty, intent.sell, intent.buy) == (DUST, D(qty), None, None)


@pytest.mark.parametrize(
    ("qty", "decided"),
    [
        ("0.01", []),  # a tradable position without a trigger stays open
        ("0.16999999999999998", []),  # the closable part is tradable: no dust yet
        ("0.00000999999999998", [DUST]),  # closed at once, no trigger needed
        ("0.00003", [DUST]),  # 3 USDT on Binance even at the touch
    ],
)
def test_the_exit_engine_closes_dust_without_waiting_for_a_trigger(qty, decided):
    cfg = make_config()
    position = pair_position(qty=qty, opened_at=NOW - 60)
    out = ExitEngine("stoploss", cfg).on_tick(ctx(snapshot(market()), state(cfg, positions=[position])))
    assert [i.reason for i in out.decisions] == decided
    assert out.metrics["dust_closes"] == float(len(decided))
    if decided:
        assert out.decisions[0].qty == D(qty) and out.decisions[0].sell is None


@pytest.mark.parametrize(
    ("failures", "base", "cap", "delay"),
    [
        (0, 1.0, 60.0, 0.0),
        (1, 1.0, 60.0, 1.0),
        (2, 1.0, 60.0, 2.0),
        (3, 1.0, 60.0, 4.0),
        (6, 1.0, 60.0, 32.0),
        (7, 1.0, 60.0, 60.0),  # 64 capped
        (10_000, 1.0, 60.0, 60.0),  # no overflow
        (4, 0.5, 10.0, 4.0),
        (6, 0.5, 10.0, 10.0),
        (1, 2.0, 2.0, 2.0),
    ],
)
def test_retry_delay_schedule(failures, base, cap, delay):
    assert retry_delay_s(failures, base, cap) == delay


def test_retry_record_counts_failures_from_the_first():
    retry = first_failure("P1", 100.0, "upbit buy REJECTED").after(101.0, "again").after(103.0, "again")
    assert retry == ExitRetry("P1", 3, 100.0, 103.0, "again")
    assert retry.retry_at(1.0, 60.0) == 107.0  # third failure: 4 s after the last


CRASHED = market(upbit_ask=142_200_000.0)  # a 1.16% loss: stop loss
OLD = NOW - 7200  # past exit.max_hold_s


@pytest.mark.parametrize(
    ("books", "failures", "ago", "goes_out"),
    [
        # MAX_HOLD, default backoff 1 s doubling up to 300 s
        (market(), 1, 0.5, False),
        (market(), 1, 1.0, True),
        (market(), 3, 3.9, False),
        (market(), 3, 4.0, True),
        (market(), 8, 127.0, False),
        (market(), 8, 128.0, True),
        (market(), 12, 299.0, False),  # 2048 s capped at 300
        (market(), 12, 300.0, True),
        # STOP_LOSS: the same doubling, capped at exit.stoploss_retry_backoff_max_s (60 s)
        (CRASHED, 3, 3.9, False),
        (CRASHED, 8, 59.9, False),
        (CRASHED, 8, 60.0, True),
    ],
)
def test_a_failing_exit_waits_out_its_backoff(books, failures, ago, goes_out):
    cfg = make_config()
    retry = ExitRetry("P1", failures, NOW - 500, NOW - ago, "upbit buy REJECTED (insufficient balance)")
    view = state(cfg, positions=[pair_position(opened_at=OLD)], exit_retries={"P1": retry})
    out = ExitEngine("stoploss", cfg).on_tick(ctx(snapshot(books), view))
    assert len(out.decisions) == (1 if goes_out else 0)
    assert out.metrics["exits_held_back"] == (0.0 if goes_out else 1.0)
    if not goes_out:
        assert any("failed exit attempt" in n.message for n in out.notes)


def test_a_dust_close_is_never_held_back():
    cfg = make_config()
    retry = ExitRetry("P1", 5, NOW - 50, NOW, "refused")
    view = state(cfg, positions=[pair_position(qty="0.000001", opened_at=OLD)], exit_retries={"P1": retry})
    out = ExitEngine("stoploss", cfg).on_tick(ctx(snapshot(market()), view))
    assert [i.reason for i in out.decisions] == [DUST]


@pytest.mark.parametrize(("ago", "reduced"), [(0.5, []), (2.0, ["P1"])])
def test_reducing_exposure_waits_out_the_backoff_too(ago, reduced):
    cfg = make_config(rebalancer={"max_exposure": 1000.0}, safety={"max_exposure": 1000.0})
    retry = ExitRetry("P1", 2, NOW - 10, NOW - ago, "refused")  # second failure: 2 s
    view = state(cfg, positions=[pair_position()], exit_retries={"P1": retry})
    out = PositionEngine("position", cfg).on_tick(ctx(snapshot(market()), view))
    assert [i.position_id for i in out.decisions if hasattr(i, "position_id")] == reduced


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"retry_backoff_s": 5, "retry_backoff_max_s": 2}, "exit.retry_backoff_max_s"),
        ({"stoploss_retry_backoff_max_s": 0.5}, "exit.stoploss_retry_backoff_max_s"),
        ({"retry_backoff_s": 0}, "exit.retry_backoff_s"),
    ],
)
def test_the_backoff_settings_are_checked(section, key):
    with pytest.raises(ConfigError) as err:
        make_config(exit=section)
    assert key in str(err.value)
