"""The operator's commands as the bot answers them (parsing, arguments, effects), and halt,
resume and stop as every channel carries them out."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbitrage.clock import FakeClock
from arbitrage.ops.telegram_commands import Command, parse_command
from arbitrage.runtime.operator_commands import HELP, OperatorCommands
from arbitrage.runtime.operator_control import OperatorControl
from arbitrage.runtime.state import BotState
from arbitrage.runtime.stop_signals import StopSignals
from arbitrage.store.ledger import open_ledger

DOC: dict[str, Any] = {
    "instance": "arb-1",
    "mode": "mock",
    "currency": "KRW",
    "tick": 42,
    "halted": False,
    "halt_reason": "",
    "entries_blocked": None,
    "stopping": False,
    "threshold_pct": 0.3,
    "spreads": {"BTC": {"upbit>binance": -0.5, "binance>upbit": 0.21}, "ETH": {"upbit>binance": None}},
    "positions": [
        {"asset": "BTC", "buy": "binance", "sell": "upbit", "qty": "0.01", "unrealized": -12.5, "age_s": 61.0}
    ],
    "today": {"day": "2026-12-03", "realized": "100.5", "fees": "7.25", "trades": 3},
    "watchdog": {"level": "WARN", "per_metric": {}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/status", Command("status", ())),
        ("  /profit 7 ", Command("profit", ("7",))),
        ("/Profit@arb_bot 30", Command("profit", ("30",))),
        ("/", None),
        ("status", None),
        ("", None),
        ("/@bot", None),
    ],
)
def test_parse_command(text: str, expected: Command | None) -> None:
    assert parse_command(text) == expected


class Stops:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.stopping = threading.Event()

    def request_stop(self, reason: str) -> None:
        self.reasons.append(reason)
        self.stopping.set()


@pytest.fixture
def stops() -> Stops:
    return Stops()


@pytest.fixture
def control(tmp_path: Path, stops: Stops) -> OperatorControl:
    signals = StopSignals(stops.request_stop, stops.stopping.is_set)  # not installed: no handlers
    return OperatorControl(tmp_path / "run" / ".halt", signals.request, FakeClock(start=1_796_256_000.0))


def _commands(control: OperatorControl, tmp_path: Path, doc: dict[str, Any] | None = DOC) -> OperatorCommands:
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9.0)
    state.day = "2026-12-03"
    state.balances = {
        "upbit": {"KRW": Decimal("1000.50"), "BTC": Decimal("0")},
        "binance": {"USDT": Decimal(5)},
    }
    return OperatorCommands(state, lambda: doc, control, f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


def test_halt_writes_the_halt_file_and_resume_removes_it(control: OperatorControl) -> None:
    assert control.halt("POST /halt from 127.0.0.1:5").startswith("halted:")
    text = control.halt_file.read_text(encoding="utf-8")
    assert text.startswith("halted by POST /halt from 127.0.0.1:5 at 2026-")
    assert control.halt("again").startswith("already halted")
    assert control.resume("telegram /resume").startswith("resumed:")
    assert not control.halt_file.exists()
    assert control.resume("twice").startswith("not halted")


def test_stop_goes_the_way_of_a_signal_once(control: OperatorControl, stops: Stops) -> None:
    assert control.stop("telegram /stop") == "stopping after this tick"
    assert control.stop("POST /stop") == "already stopping"
    assert stops.reasons == ["stop requested by telegram /stop"]


def test_status_positions_and_balance(control: OperatorControl, tmp_path: Path) -> None:
    commands = _commands(control, tmp_path)
    status = commands.answer(Command("status", ()))
    assert "arb-1 (mock) tick 42" in status and "trading" in status and "watchdog WARN" in status
    assert "today 2026-12-03: realized 100.5 KRW, fees 7.25, trades 3" in status
    assert "BTC best binance>upbit +0.210% (entry at 0.3%)" in status and "ETH best" not in status
    assert commands.answer(Command("positions", ())) == (
        "BTC binance>upbit qty 0.01 unrealized -12.50 KRW age 61s"
    )
    assert commands.answer(Command("balance", ())) == "binance: USDT 5\nupbit: KRW 1000.5"
    halted = _commands(control, tmp_path, {**DOC, "halted": True, "halt_reason": "halt file .halt exists"})
    assert "HALTED: halt file .halt exists" in halted.answer(Command("status", ()))
    assert _commands(control, tmp_path, None).answer(Command("status", ())) == "no tick finished yet"


def test_profit_reads_the_days_from_the_ledger(control: OperatorControl, tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger.add_daily_pnl("2026-11-20", Decimal(1000), Decimal(1), Decimal(0), 9, 1.0)
    ledger.add_daily_pnl("2026-12-02", Decimal("10.5"), Decimal(2), Decimal(0), 1, 2.0)
    ledger.add_daily_pnl("2026-12-03", Decimal(-3), Decimal("0.5"), Decimal(0), 2, 3.0)
    ledger.close()
    commands = _commands(control, tmp_path)
    week = commands.answer(Command("profit", ()))
    assert week.splitlines()[0] == (
        "profit 2026-11-27 .. 2026-12-03 (7 day(s)): realized 7.5, fees 2.5, trades 3"
    )
    assert "2026-11-20" not in week
    assert "realized 1007.5" in commands.answer(Command("profit", ("30",)))
    for bad in ("0", "soon", "-1", "400"):
        assert "days must be a whole number from 1 to 366" in commands.answer(Command("profit", (bad,)))


def test_profit_without_a_ledger_says_so(control: OperatorControl, tmp_path: Path) -> None:
    assert (
        _commands(control, tmp_path).answer(Command("profit", ())).startswith("ledger unreadable: no ledger")
    )


def test_help_and_unknown_commands(control: OperatorControl, tmp_path: Path) -> None:
    commands = _commands(control, tmp_path)
    assert commands.answer(Command("help", ())) == HELP
    assert commands.answer(Command("reboot", ())).startswith("unknown command /reboot\n\nCommands:")
    for name in ("status", "profit", "balance", "positions", "halt", "resume", "stop", "help"):
        assert f"/{name}" in HELP
    assert commands.answer(Command("halt", ())).startswith("halted:")
    assert control.halt_file.read_text(encoding="utf-8").startswith("halted by telegram /halt")
