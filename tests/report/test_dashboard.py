"""The dashboard drawn from a console document, read back as text."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType

from arbitrage.report.dashboard import dashboard, unreachable

NOW = 1_796_000_000.0
DOC: dict[str, Any] = {
    "instance": "arb-7",
    "mode": "paper",
    "currency": "KRW",
    "tick": 1234,
    "ts": NOW - 0.5,
    "loop_ms": 2.5,
    "halted": False,
    "halt_reason": "",
    "entries_blocked": None,
    "stopping": False,
    "threshold_pct": 0.3,
    "spreads": {"BTC": {"upbit>binance": 0.45, "binance>upbit": None}},
    "venues": {
        "upbit": {
            "feed": "stream",
            "book_age_ms": 120.0,
            "breaker": "open",
            "degraded": True,
            "orders_last_minute": 3,
            "ws_lag_ms": 0.0,
        },
    },
    "positions": [
        {
            "id": "P1",
            "asset": "BTC",
            "buy": "upbit",
            "sell": "binance",
            "qty": "0.5",
            "entry_spread_pct": 0.41,
            "unrealized": -1234.5,
            "age_s": 300.0,
        },
    ],
    "today": {"day": "2026-12-03", "realized": "1500.25", "fees": "10", "trades": 4},
    "watchdog": {"level": "ERROR", "per_metric": {"loop_latency_ms": "ERROR"}},
    "events": [{"ts": NOW - 5, "kind": "alert", "text": "[ERROR] circuit-open:upbit: breaker open"}],
}


def screen(renderable: RenderableType, width: int = 140, height: int = 40) -> str:
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(renderable, height=height)
    return console.export_text()


def test_every_panel_shows_its_figures() -> None:
    text = screen(dashboard(DOC, "http://127.0.0.1:8080", now=NOW))
    assert "arb-7 (paper)" in text and "TRADING" in text and "watchdog ERROR" in text and "tick 1234" in text
    assert "state age 0.5s" in text
    assert "upbit → binance" in text and "+0.450%" in text and "+0.150%" in text  # net, gap
    assert "binance → upbit" in text and "n/a" in text
    assert "stream" in text and "120 ms" in text and "open" in text and "degraded" in text
    assert "-1,234.50" in text and "5m" in text and "0.410%" in text
    assert "+1,500.25 KRW" in text and "trades    4" in text
    assert "loop_latency_ms" in text
    assert "[ERROR] circuit-open:upbit: breaker open" in text


def test_halted_and_stopping_are_said_first() -> None:
    halted = screen(dashboard({**DOC, "halted": True, "halt_reason": "halt file .halt exists"}, "x", now=NOW))
    assert "HALTED" in halted and "halt: halt file .halt exists" in halted
    assert "STOPPING" in screen(dashboard({**DOC, "stopping": True}, "x", now=NOW))
    no_positions = screen(dashboard({**DOC, "positions": []}, "x", now=NOW))
    assert "no open positions" in no_positions


def test_an_unreachable_bot_is_said_plainly() -> None:
    text = screen(unreachable("http://127.0.0.1:8080", "connection refused", NOW - 12, now=NOW), height=8)
    assert "bot unreachable at http://127.0.0.1:8080 (connection refused), retrying" in text
    assert "last state received 12s ago" in text
