"""PositionEngine: exposure and PnL metrics, exposure reduction, inventory drift warnings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.domain.decisions import ExitIntent, InventoryWarning, LegPlan
from arbitrage.domain.positions import PositionState
from arbitrage.engines.position import PositionEngine
from tests.engines.factories import (
    NOW,
    USDT_KRW,
    book,
    ctx,
    default_balances,
    make_config,
    pair_position,
    snapshot,
    state,
)

D = Decimal
# binance mid 100,050 USDT: each 0.01 BTC position is worth 1,400,700 KRW
BOOKS = [
    book("binance", "BTC/USDT", [(100_000.0, 1.0)], [(100_100.0, 1.0)]),
    book("upbit", "BTC/KRW", [(141_100_000.0, 1.0)], [(141_200_000.0, 1.0)]),
]
MARK = 0.01 * 100_050 * USDT_KRW
THREE = [
    pair_position("P1", opened_at=NOW - 300),
    pair_position("P3", opened_at=NOW - 100),
    pair_position("P2", opened_at=NOW - 200),
]


def tick(
    engine: PositionEngine,
    cfg: Any,
    *,
    positions: Any = THREE,
    books: Any = BOOKS,
    stoploss: Any = (),
    **kw: Any,
):
    view = state(cfg, positions=positions, **kw)
    return engine.on_tick(ctx(snapshot(books), view, stoploss=list(stoploss)))


def test_metrics():
    cfg = make_config()
    closed = pair_position("P9").close_without_trade("INVENTORY", NOW)
    assert closed.state is PositionState.CLOSED
    out = tick(PositionEngine("position", cfg), cfg, positions=[*THREE, closed])
    assert out.metrics["open_positions"] == 3.0
    assert out.metrics["exposure"] == pytest.approx(3 * MARK)
    # each: entry 7,895 + reverse (1,400,000 - 1,412,000 - 1,400 - 706)
    assert out.metrics["unrealized_pnl"] == pytest.approx(3 * (7_895 - 12_000 - 2_106))
    assert out.metrics["inventory_drifting"] == 0.0
    assert out.decisions == []


def test_exposure_falls_back_to_cost_without_a_book():
    cfg = make_config()
    out = tick(PositionEngine("position", cfg), cfg, books=BOOKS[1:])
    assert out.metrics["exposure"] == pytest.approx(3 * 1_400_000.0)
    assert out.metrics["unrealized_pnl"] == 0.0


@pytest.mark.parametrize(
    ("limit", "stoploss", "reduced"),
    [
        (3_000_000.0, [], ["P1"]),  # the oldest goes first, one is enough
        (1_000_000.0, [], ["P1", "P2", "P3"]),
        (3_000_000.0, ["P1"], []),  # the stop-loss exit of P1 already brings it under
        (1_500_000.0, ["P1"], ["P2"]),
        (5_000_000.0, [], []),
    ],
)
def test_reduce_exposure(limit, stoploss, reduced):
    # safety's entry limit stays at or below the rebalancer's, as the config requires
    cfg = make_config(rebalancer={"max_exposure": limit}, safety={"max_exposure": limit})
    exits = [ExitIntent(pid, "STOP_LOSS", D("0.01"), None, None, -1.0) for pid in stoploss]
    out = tick(PositionEngine("position", cfg), cfg, stoploss=exits)
    intents = [d for d in out.decisions if isinstance(d, ExitIntent)]
    assert [i.position_id for i in intents] == reduced
    assert all(i.reason == "REDUCE_EXPOSURE" for i in intents)


def test_reduce_exposure_legs():
    cfg = make_config(rebalancer={"max_exposure": 3_000_000.0}, safety={"max_exposure": 3_000_000.0})
    (intent,) = tick(PositionEngine("position", cfg), cfg).decisions
    # within execution.max_slippage_pct: 100,000 * 0.998 and 141.2M * 1.002 on the 1000 tick
    assert intent.sell == LegPlan("binance", "BTC/USDT", "sell", D("0.01"), D("99800.00"), USDT_KRW)
    assert intent.buy == LegPlan("upbit", "BTC/KRW", "buy", D("0.01"), D("141482000"), 1.0)


@pytest.mark.parametrize("config", [{"rebalancer": {"auto_reduce": False}}, {"exit": {"mode": "none"}}])
def test_no_reduction_only_a_warning_when_it_starts(config):
    cfg = make_config(
        **{
            **config,
            "rebalancer": {"max_exposure": 1_000_000.0, **config.get("rebalancer", {})},
            "safety": {"max_exposure": 1_000_000.0},
        }
    )
    engine = PositionEngine("position", cfg)
    first, second = tick(engine, cfg), tick(engine, cfg)
    assert first.decisions == second.decisions == []
    assert [n.level for n in first.notes] == ["WARNING"] and "max_exposure" in first.notes[0].message
    assert second.notes == []


def balances(**changes: str) -> dict[str, dict[str, Decimal]]:
    out = default_balances()
    for key, value in changes.items():
        venue, asset = key.split("_")
        out[venue] = {**out[venue], asset: D(value)}
    return out


def test_inventory_warning_when_drift_starts_only():
    cfg = make_config()
    engine = PositionEngine("position", cfg)
    start = default_balances()

    def warnings(**changes: str) -> list[InventoryWarning]:
        out = tick(engine, cfg, positions=[], balances=balances(**changes), initial_balances=start)
        found = [d for d in out.decisions if isinstance(d, InventoryWarning)]
        assert len([n for n in out.notes if n.level == "WARNING"]) == len(found)
        return found

    (w,) = warnings(binance_USDT="400000")  # 60% below the start
    assert (w.venue, w.asset, w.ratio) == ("binance", "USDT", pytest.approx(0.6))
    assert warnings(binance_USDT="350000") == []  # still drifting: already warned
    assert warnings(binance_USDT="900000") == []  # back within 50%
    drifts = warnings(binance_USDT="1600000", upbit_BTC="4")  # drifting again, and a second asset
    assert [(x.venue, x.asset) for x in drifts] == [("upbit", "BTC"), ("binance", "USDT")]
    assert warnings(binance_USDT="1600000", upbit_BTC="4") == []


def test_inventory_ignores_assets_that_started_at_zero():
    cfg = make_config()
    start = {**default_balances(), "upbit": {**default_balances()["upbit"], "XRP": D(0)}}
    now = balances(upbit_XRP="1000")
    out = tick(PositionEngine("position", cfg), cfg, positions=[], balances=now, initial_balances=start)
    assert out.decisions == []


def test_a_missing_balance_counts_as_fully_drifted():
    cfg = make_config()
    now = {"upbit": default_balances()["upbit"], "binance": {"USDT": D(1_000_000), "ETH": D(100)}}
    out = tick(
        PositionEngine("position", cfg), cfg, positions=[], balances=now, initial_balances=default_balances()
    )
    assert [(w.venue, w.asset, w.ratio) for w in out.decisions] == [("binance", "BTC", 1.0)]
    assert out.metrics["inventory_drifting"] == 1.0
