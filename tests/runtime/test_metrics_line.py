"""The one-line-per-tick metrics summary: its exact shape, currency signs, rounding
(see docs/ARCHITECTURE.md, The metrics line)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.runtime.metrics_line import TickFigures, metrics_line, money
from tests.e2e.runner import METRICS_RE
from tests.runtime.mock_bot import TickLog, mock_bot, mock_config


def figures(**changes: float | int | bool) -> TickFigures:
    base: dict[str, float | int | bool] = {
        "pnl": 0.0,
        "trades": 0,
        "open_pos": 0,
        "exposure": 0.0,
        "realized_pnl": 0.0,
        "signals": 0,
        "exec_rate_pct": 0.0,
        "safety_rejections": 0,
        "sl_triggers": 0,
        "loop_ms": 0.0,
        "cpu_pct": 0.0,
        "mem_mb": 0.0,
        "live": False,
    }
    base.update(changes)
    return TickFigures(**base)  # type: ignore[arg-type]


def test_the_spec_example_exactly() -> None:
    assert metrics_line(figures(), "KRW") == (
        "[LIVE] [METRICS] pnl=0₩ trades=0 open_pos=0 exposure=0₩ realized_pnl=0₩ signals=0 "
        "exec_rate=0.0% safety_rejections=0 sl_triggers=0 loop_ms=0.0 cpu=0.0% mem=0MB live=❌"
    )


def test_a_busy_tick() -> None:
    line = metrics_line(
        figures(
            pnl=212_825.4,
            trades=20,
            open_pos=4,
            exposure=20_016_334.0,
            realized_pnl=159_932.0,
            signals=28,
            exec_rate_pct=71.428,
            safety_rejections=8,
            sl_triggers=2,
            loop_ms=0.66,
            cpu_pct=12.34,
            mem_mb=50.4,
        ),
        "KRW",
    )
    assert line == (
        "[LIVE] [METRICS] pnl=212825₩ trades=20 open_pos=4 exposure=20016334₩ realized_pnl=159932₩ "
        "signals=28 exec_rate=71.4% safety_rejections=8 sl_triggers=2 loop_ms=0.7 cpu=12.3% mem=50MB live=❌"
    )


def test_live_mode_shows_the_check_mark() -> None:
    assert metrics_line(figures(live=True), "KRW").endswith("live=✅")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0.0, "KRW", "0₩"),
        (-0.4, "KRW", "0₩"),  # no "-0"
        (-1234.6, "KRW", "-1235₩"),
        (12.345, "USD", "12.35$"),  # small amounts keep cents
        (-0.001, "USD", "0.00$"),
        (1234.5, "USD", "1234$"),  # banker's rounding of the format
        (99.994, "EUR", "99.99€"),
        (250.0, "JPY", "250¥"),
        (0.5, "JPY", "0¥"),
        (3.2, "USDT", "3.20₮"),
        (3.2, "CHF", "3.20CHF"),  # no sign known: the code follows
    ],
)
def test_money(amount: float, currency: str, text: str) -> None:
    assert money(amount, currency) == text


def test_other_currencies_follow_the_accounting_currency() -> None:
    line = metrics_line(figures(pnl=-12.5, exposure=15_000.0, realized_pnl=2.0), "USD")
    assert "pnl=-12.50$ " in line and "exposure=15000$ " in line and "realized_pnl=2.00$ " in line


amounts = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
counts = st.integers(min_value=0, max_value=10**7)


@given(
    pnl=amounts,
    exposure=st.floats(min_value=0, max_value=1e12),
    realized=amounts,
    trades=counts,
    signals=counts,
    rate=st.floats(min_value=0, max_value=100),
    loop_ms=st.floats(min_value=0, max_value=1e6),
    cpu=st.floats(min_value=0, max_value=800),
    mem=st.floats(min_value=0, max_value=1e6),
    live=st.booleans(),
)
def test_every_line_has_the_shape_the_e2e_tests_parse(
    pnl: float,
    exposure: float,
    realized: float,
    trades: int,
    signals: int,
    rate: float,
    loop_ms: float,
    cpu: float,
    mem: float,
    live: bool,
) -> None:
    line = metrics_line(
        figures(
            pnl=pnl,
            exposure=exposure,
            realized_pnl=realized,
            trades=trades,
            signals=signals,
            exec_rate_pct=rate,
            loop_ms=loop_ms,
            cpu_pct=cpu,
            mem_mb=mem,
            live=live,
        ),
        "KRW",
    )
    assert METRICS_RE.fullmatch(line), line
    assert "\n" not in line and "-0₩" not in line
    assert re.search(r"trades=(\d+) ", line).group(1) == str(trades)  # type: ignore[union-attr]


def test_the_loop_writes_a_metrics_line_every_nth_tick_when_told(tmp_path: Path) -> None:
    # A replay's setting: every tick still runs to its figures, only the line is written less often.
    ticks = TickLog()
    bot, recorder = mock_bot(tmp_path, max_ticks=7, hooks=[ticks], metrics_line_every=3)
    try:
        bot.loop.run()
    finally:
        bot.close()
    assert len(ticks.reports) == 7
    currency = mock_config().accounting_currency
    assert recorder.lines == [metrics_line(ticks.reports[i].figures, currency) for i in (0, 3, 6)]  # 1, 4, 7
