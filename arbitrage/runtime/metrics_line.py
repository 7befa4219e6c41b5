"""The one-line-per-tick metrics summary (see docs/ARCHITECTURE.md, The metrics line)."""

from __future__ import annotations

from dataclasses import dataclass

CURRENCY_SIGNS = {"KRW": "₩", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£", "USDT": "₮"}


def money(amount: float, currency: str) -> str:
    sign = CURRENCY_SIGNS.get(currency)
    text = f"{amount:.0f}" if abs(amount) >= 100 or currency in ("KRW", "JPY") else f"{amount:.2f}"
    if text in ("-0", "-0.00"):
        text = text[1:]
    return f"{text}{sign}" if sign else f"{text}{currency}"


@dataclass(frozen=True, slots=True)
class TickFigures:
    pnl: float
    trades: int
    open_pos: int
    exposure: float
    realized_pnl: float
    signals: int
    exec_rate_pct: float
    safety_rejections: int
    sl_triggers: int
    loop_ms: float
    cpu_pct: float
    mem_mb: float
    live: bool


def metrics_line(f: TickFigures, currency: str) -> str:
    return (
        f"[LIVE] [METRICS] pnl={money(f.pnl, currency)} trades={f.trades} open_pos={f.open_pos} "
        f"exposure={money(f.exposure, currency)} realized_pnl={money(f.realized_pnl, currency)} "
        f"signals={f.signals} exec_rate={f.exec_rate_pct:.1f}% safety_rejections={f.safety_rejections} "
        f"sl_triggers={f.sl_triggers} loop_ms={f.loop_ms:.1f} cpu={f.cpu_pct:.1f}% mem={f.mem_mb:.0f}MB "
        f"live={'✅' if f.live else '❌'}"
    )
