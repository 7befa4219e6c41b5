"""What the bot answers to the operator's chat commands (/status, /profit, /balance, /positions,
/halt, /resume, /stop, /help), in plain text.

Runs on the Telegram thread, never the loop's: it reads the last console state (immutable), a copy
of the balances, and for /profit the ledger opened read-only, like `arb report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from arbitrage.ops.telegram_commands import Command
from arbitrage.runtime.operator_control import OperatorControl
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger_reader import LedgerUnavailable, read_ledger

PROFIT_DEFAULT_DAYS = 7
PROFIT_MAX_DAYS = 366

HELP = """Commands:
/status - mode, halt, watchdog, today's PnL, best spreads
/profit [days] - realized PnL, fees and trades per day (default 7)
/balance - balances per venue
/positions - open positions with unrealized PnL and age
/halt - stop new entries (writes the halt file; survives a restart)
/resume - allow entries again (removes the halt file)
/stop - stop the bot gracefully (as SIGTERM)
/help - this list"""


class OperatorCommands:
    def __init__(
        self,
        state: BotState,
        console: Callable[[], Mapping[str, Any] | None],
        control: OperatorControl,
        ledger_url: str,
    ) -> None:
        self._state = state
        self._console = console
        self._control = control
        self._ledger_url = ledger_url
        self._handlers: dict[str, Callable[[tuple[str, ...]], str]] = {
            "status": lambda _: self.status(),
            "profit": self.profit,
            "balance": lambda _: self.balance(),
            "positions": lambda _: self.positions(),
            "halt": lambda _: self._control.halt("telegram /halt"),
            "resume": lambda _: self._control.resume("telegram /resume"),
            "stop": lambda _: self._control.stop("telegram /stop"),
            "help": lambda _: HELP,
            "start": lambda _: HELP,  # what Telegram sends when a chat opens the bot
        }

    def answer(self, command: Command) -> str:
        handler = self._handlers.get(command.name)
        if handler is None:
            return f"unknown command /{command.name}\n\n{HELP}"
        return handler(command.args)

    def status(self) -> str:
        doc = self._console()
        if doc is None:
            return "no tick finished yet"
        today = doc["today"]
        cur = doc["currency"]
        lines = [
            f"{doc['instance']} ({doc['mode']}) tick {doc['tick']}",
            "STOPPING"
            if doc["stopping"]
            else ("HALTED: " + doc["halt_reason"] if doc["halted"] else "trading"),
            f"watchdog {doc['watchdog']['level']}",
            f"today {today['day']}: realized {today['realized']} {cur}, fees {today['fees']}, "
            f"trades {today['trades']}",
            f"open positions {len(doc['positions'])}",
        ]
        if doc["entries_blocked"]:
            lines.append(f"entries blocked: {doc['entries_blocked']}")
        for asset, directions in doc["spreads"].items():
            known = {d: v for d, v in directions.items() if v is not None}
            if known:
                best = max(known, key=lambda d: known[d])
                lines.append(f"{asset} best {best} {known[best]:+.3f}% (entry at {doc['threshold_pct']}%)")
        return "\n".join(lines)

    def profit(self, args: tuple[str, ...]) -> str:
        days = PROFIT_DEFAULT_DAYS
        if args:
            if not args[0].isdigit() or not 1 <= int(args[0]) <= PROFIT_MAX_DAYS:
                limit = PROFIT_MAX_DAYS
                return f"/profit [days]: days must be a whole number from 1 to {limit}, got {args[0]!r}"
            days = int(args[0])
        today = self._state.day
        if not today:
            return "no trading day yet"
        first = (date.fromisoformat(today) - timedelta(days=days - 1)).isoformat()
        try:
            ledger = read_ledger(self._ledger_url)
        except LedgerUnavailable as err:
            return f"ledger unreadable: {err}"
        rows = [d for d in ledger.days if first <= d.day <= today]
        realized = sum((d.realized_pnl for d in rows), Decimal(0))
        fees = sum((d.fees for d in rows), Decimal(0))
        trades = sum(d.trades for d in rows)
        lines = [
            f"profit {first} .. {today} ({days} day(s)): realized {realized}, fees {fees}, trades {trades}"
        ]
        lines += [f"{d.day}: realized {d.realized_pnl}, fees {d.fees}, trades {d.trades}" for d in rows]
        return "\n".join(lines)

    def balance(self) -> str:
        balances = dict(self._state.balances)
        if not balances:
            return "no balances read yet"
        lines = []
        for venue, amounts in sorted(balances.items()):
            held = ", ".join(
                f"{asset} {qty.normalize():f}" for asset, qty in sorted(dict(amounts).items()) if qty
            )
            lines.append(f"{venue}: {held or 'nothing'}")
        return "\n".join(lines)

    def positions(self) -> str:
        doc = self._console()
        if doc is None:
            return "no tick finished yet"
        if not doc["positions"]:
            return "no open positions"
        lines = []
        for p in doc["positions"]:
            pnl = "n/a" if p["unrealized"] is None else f"{p['unrealized']:+.2f}"
            lines.append(
                f"{p['asset']} {p['buy']}>{p['sell']} qty {p['qty']} unrealized {pnl} {doc['currency']} "
                f"age {p['age_s']:.0f}s"
            )
        return "\n".join(lines)
