"""The report's figures from small hand-made ledgers: table-driven, no database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.config import parse_config
from arbitrage.domain.trading_day import trading_day
from arbitrage.report.command import ReportInputError, as_url, parse_day
from arbitrage.report.figures import (
    Window,
    compute_report,
    entry_spread_pct,
    equity_curve,
    max_drawdown,
    residual_inventory,
)
from arbitrage.runtime import state as runtime_state
from arbitrage.store.ledger import ledger_url
from arbitrage.store.ledger_reader import (
    DayRow,
    HedgeRow,
    LedgerContents,
    OrderGroup,
    PositionRow,
    VerdictCount,
)
from tests.e2e.runner import base_config

D = Decimal
T0 = datetime(2026, 12, 3, 1, 0, tzinfo=UTC).timestamp()  # 10:00 KST on 2026-12-03


def position(pid: str = "E1", **kw: object) -> PositionRow:
    fields: dict[str, object] = {
        "position_id": pid,
        "asset": "BTC",
        "buy_venue": "binance",
        "sell_venue": "upbit",
        "qty": D(0),
        "closed_qty": D("0.01"),
        "entry_cost": D("1000000"),
        "entry_proceeds": D("1010000"),
        "entry_fees": D("1000"),
        "exit_fees": D("1000"),
        "entry_spread_pct": 1.0,
        "exit_reason": "TAKE_PROFIT",
        "state": "CLOSED",
        "opened_at": T0,
        "closed_at": T0 + 60,
        "realized_pnl": D("7000"),
        "updated_at": T0 + 60,
    }
    fields.update(kw)
    return PositionRow(**fields)  # type: ignore[arg-type]


def order(venue: str = "upbit", side: str = "buy", filled: str = "0.01", **kw: object) -> OrderGroup:
    """One order, as the reader's group of one."""
    fields: dict[str, object] = {
        "venue": venue,
        "symbol": "BTC/KRW" if venue == "upbit" else "BTC/USDT",
        "side": side,
        "state": "FILLED",
        "fee_currency": "KRW" if venue == "upbit" else "USDT",
        "orders": 1,
        "with_fills": 1 if D(filled) else 0,
        "filled_qty": D(filled),
        "fee": D("500"),
    }
    fields.update(kw)
    return OrderGroup(**fields)  # type: ignore[arg-type]


def hedge(cost: str, ts: float = T0, kind: str = "unwind", asset: str = "BTC") -> HedgeRow:
    return HedgeRow("E9", asset, "upbit", kind, D("0.001"), D(cost), ts)


def contents(
    positions: Sequence[PositionRow] = (),
    hedges: Sequence[HedgeRow] = (),
    orders: Sequence[OrderGroup] = (),
    days: list[DayRow] | None = None,
    verdicts: Sequence[VerdictCount] = (),
) -> LedgerContents:
    if days is None:  # the bot's own booking: everything on the day it happened
        total = sum((p.realized_pnl for p in positions), D(0)) + sum((h.cost for h in hedges), D(0))
        days = [DayRow("2026-12-03", total, D(0), sum((h.cost for h in hedges), D(0)), len(positions))]
    return LedgerContents(
        list(orders), list(orders), list(positions), list(hedges), days, list(verdicts), (None, None)
    )


# Drawdown and the equity curve ------------------------------------------------------------


@pytest.mark.parametrize(
    ("amounts", "drawdown"),
    [
        ([], "0"),
        (["5", "5"], "0"),  # only up
        (["-3"], "3"),  # below the start, which is the first peak
        (["10", "-4", "-3", "20", "-1"], "7"),  # 10 -> 3
        (["10", "-4", "8", "-15"], "15"),  # 14 -> -1, deeper than the first dip
        (["0.1", "0.2", "-0.30000001"], "0.30000001"),  # exact, not binary floats
    ],
)
def test_max_drawdown(amounts: list[str], drawdown: str) -> None:
    hedges = [hedge(a, ts=T0 + i) for i, a in enumerate(amounts)]
    curve = equity_curve([], hedges)
    assert max_drawdown(curve).amount == D(drawdown)


def test_equity_curve_orders_positions_and_hedges_by_time() -> None:
    positions = [position("E1", realized_pnl=D("100"), closed_at=T0 + 30)]
    hedges = [hedge("-40", ts=T0 + 10), hedge("5", ts=T0 + 50)]
    assert equity_curve(positions, hedges) == [(T0 + 10, D(-40)), (T0 + 30, D(60)), (T0 + 50, D(65))]


# Window and trading days ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_utc", "offset", "day"),
    [
        ("2026-12-02T14:59:59", 9.0, "2026-12-02"),
        ("2026-12-02T15:00:00", 9.0, "2026-12-03"),  # midnight KST
        ("2026-12-02T23:59:59", 0.0, "2026-12-02"),
        ("2026-12-03T04:00:00", -5.0, "2026-12-02"),
    ],
)
def test_trading_day_and_window_edges(ts_utc: str, offset: float, day: str) -> None:
    ts = datetime.fromisoformat(ts_utc).replace(tzinfo=UTC).timestamp()
    assert trading_day(ts, offset) == day
    d = date.fromisoformat(day)
    assert Window(d, d, offset).has_ts(ts)
    assert not Window(d.replace(day=d.day - 1), d.replace(day=d.day - 1), offset).has_ts(ts)


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from([-12.0, -5.5, 0.0, 9.0, 14.0]))
def test_trading_day_is_the_bots(ts: float, offset: float) -> None:
    assert trading_day(ts, offset) == runtime_state.trading_day(ts, offset)


def test_window_picks_positions_by_close_and_open_ones_by_opening() -> None:
    day = 86400.0
    positions = [
        position("E1", opened_at=T0 - day, closed_at=T0, realized_pnl=D("1")),  # closed today
        position("E2", opened_at=T0 - day, closed_at=T0 - day + 5, realized_pnl=D("10")),  # yesterday
        position("E3", state="OPEN", qty=D("0.01"), closed_qty=D(0), closed_at=None, realized_pnl=D(0)),
    ]
    today = date(2026, 12, 3)
    report = compute_report(contents(positions), Window(today, today), now=T0 + 100)
    assert (report.trades, report.closed, report.open, report.realized) == (2, 1, 1, D("1"))
    whole = compute_report(contents(positions), Window(), now=T0 + 100)
    assert (whole.trades, whole.realized) == (3, D("11"))


# The summary figures ------------------------------------------------------------------------


def test_summary_figures_of_a_small_ledger() -> None:
    positions = [
        position("E1", realized_pnl=D("7000.12345678"), opened_at=T0, closed_at=T0 + 10),
        position("E2", realized_pnl=D("-2000"), opened_at=T0, closed_at=T0 + 30, asset="ETH"),
        position(
            "E3",
            realized_pnl=D("0"),
            opened_at=T0,
            closed_at=T0 + 20,
            buy_venue="upbit",
            sell_venue="binance",
        ),
    ]
    hedges = [hedge("-150.5"), hedge("0", kind="retry"), hedge("-49.5", asset="ETH")]
    report = compute_report(contents(positions, hedges), Window(), now=T0 + 100)
    assert report.trades == 3 and report.closed == 3
    assert report.wins == 1 and report.win_rate == pytest.approx(1 / 3)  # a zero is not a win
    assert report.realized == D("5000.12345678")
    assert report.hedge == D("-200.0")
    assert report.net == D("4800.12345678")
    assert report.fees == D("6000")
    assert report.hold is not None
    assert (report.hold.avg_s, report.hold.median_s, report.hold.max_s) == (20.0, 20.0, 30.0)
    # 1010000 - 1000000 - 1000 over 1000000: 0.9% realized against 1.0% expected.
    assert report.realized_spread_pct == pytest.approx(0.9)
    assert report.slippage_pct == pytest.approx(0.1)
    assert report.ledger_gap == 0
    assert [(g.key, g.trades, g.realized, g.hedge) for g in report.by_asset] == [
        ("BTC", 2, D("7000.12345678"), D("-150.5")),
        ("ETH", 1, D("-2000"), D("-49.5")),
    ]
    assert [(g.key, g.trades) for g in report.by_pair] == [("binance->upbit", 2), ("upbit->binance", 1)]
    assert [(h.kind, h.asset, h.events, h.result) for h in report.hedges] == [
        ("retry", "BTC", 1, D(0)),
        ("unwind", "BTC", 1, D("-150.5")),
        ("unwind", "ETH", 1, D("-49.5")),
    ]


def test_days_come_from_daily_pnl_with_a_running_total() -> None:
    days = [
        DayRow("2026-12-01", D("100.5"), D("10"), D("0"), 2),
        DayRow("2026-12-02", D("-300"), D("20"), D("-5"), 3),
        DayRow("2026-12-03", D("50"), D("5"), D("0"), 1),
    ]
    report = compute_report(contents(days=days), Window(date(2026, 12, 2)), now=T0)
    assert [(d.day, d.realized, d.cumulative) for d in report.days] == [
        ("2026-12-02", D("-300"), D("-300")),
        ("2026-12-03", D("50"), D("-250")),
    ]


def test_ledger_gap_shows_books_that_do_not_balance() -> None:
    days = [DayRow("2026-12-03", D("7000.01"), D(0), D(0), 1)]
    report = compute_report(contents([position()], days=days), Window(), now=T0)
    assert report.ledger_gap == D("0.01")


@pytest.mark.parametrize(
    ("verdicts", "recorded", "rejections", "approved"),
    [
        ([VerdictCount("APPROVED", None, 5)], False, {}, 5),
        (
            [
                VerdictCount("APPROVED", None, 2),
                VerdictCount("REJECTED", "STALE_DATA", 3),
                VerdictCount("REJECTED", "MAX_EXPOSURE", 1),
            ],
            True,
            {"STALE_DATA": 3, "MAX_EXPOSURE": 1},
            2,
        ),
    ],
)
def test_rejections_are_counted_only_from_what_the_ledger_holds(
    verdicts: list[VerdictCount], recorded: bool, rejections: dict[str, int], approved: int
) -> None:
    report = compute_report(contents(verdicts=verdicts), Window(), now=T0)
    got = (report.rejections_recorded, report.rejections, report.approved)
    assert got == (recorded, rejections, approved)


# Inventory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "positions", "expected"),
    [
        # A hedged pair that closed through the reverse trade: flat.
        (
            [
                order("binance", "buy"),
                order("upbit", "sell"),
                order("binance", "sell"),
                order("upbit", "buy"),
            ],
            [position()],
            [],
        ),
        # Inventory arbitrage: the entry stays held, by design not a residual.
        ([order("binance", "buy"), order("upbit", "sell")], [position(exit_reason="INVENTORY")], []),
        # One leg filled more than the other: the excess is residual on its venue.
        (
            [order("binance", "buy", "0.012"), order("upbit", "sell", "0.01")],
            [position(qty=D("0.01"), closed_qty=D(0), state="OPEN", closed_at=None)],
            [("binance", "BTC", D("0.002"))],
        ),
        # A one-leg fill with no position at all.
        ([order("upbit", "sell", "0.003")], [], [("upbit", "BTC", D("-0.003"))]),
    ],
)
def test_residual_inventory_follows_recoverys_rule(
    orders: list[OrderGroup], positions: list[PositionRow], expected: list[tuple[str, str, Decimal]]
) -> None:
    assert [(i.venue, i.asset, i.qty) for i in residual_inventory(orders, positions)] == expected


def test_open_positions_carry_the_cost_of_their_open_part() -> None:
    half_closed = position(state="OPEN", qty=D("0.005"), closed_qty=D("0.005"), closed_at=None, opened_at=T0)
    report = compute_report(contents([half_closed]), Window(), now=T0 + 90)
    (line,) = report.open_positions
    assert (line.key, line.positions, line.qty, line.cost, line.oldest_s) == (
        "BTC binance->upbit", 1, D("0.005"), D("500000"), 90.0
    )  # fmt: skip


def test_fees_per_venue_are_summed_in_each_quote_currency() -> None:
    orders = [order("upbit", fee=D("0.1")), order("upbit", fee=D("0.2")), order("binance", fee=D("0.3")),
              order("binance", filled="0", fee=D("0"))]  # fmt: skip
    report = compute_report(contents(orders=orders), Window(), now=T0)
    assert [(f.venue, f.currency, f.fee, f.orders) for f in report.fees_by_venue] == [
        ("binance", "USDT", D("0.3"), 1),
        ("upbit", "KRW", D("0.3"), 2),
    ]
    assert report.orders == 4


def test_entry_spread_of_a_position_without_cost_is_unknown() -> None:
    assert entry_spread_pct(position(entry_cost=D(0))) is None


# The command's inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("storage_url", [None, "postgresql://u@127.0.0.1:5432/db?schema=s", "sqlite:///x.db"])
def test_default_ledger_is_the_one_a_run_uses(storage_url: str | None) -> None:
    # The report and the run both ask store.ledger.ledger_url; a bare --data-dir needs no config.
    data = base_config()
    data["storage"] = {**data.get("storage", {}), "url": storage_url}
    config = parse_config(data)
    in_data_dir = f"sqlite:///{Path('somewhere') / 'ledger.sqlite3'}"
    assert ledger_url(config, Path("somewhere")) == (storage_url or in_data_dir)
    assert ledger_url(None, Path("somewhere")) == in_data_dir


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026/12/01", ""])
def test_a_bad_date_is_one_sentence(bad: str) -> None:
    with pytest.raises(ReportInputError, match=r"--since .* is not a date: expected YYYY-MM-DD"):
        parse_day(bad, "--since")


def test_a_bare_path_is_a_sqlite_ledger() -> None:
    assert as_url("data/ledger.sqlite3") == "sqlite:///data/ledger.sqlite3"
    assert as_url("postgresql://h/db") == "postgresql://h/db"
