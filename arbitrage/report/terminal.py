"""The report as rich tables: printed to the terminal, and reused by the HTML page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from arbitrage.report.figures import GroupLine, Report

CENT = Decimal("0.01")
NO_REJECTIONS = "none recorded in the ledger"
NO_REJECTIONS_NOTE = (
    "This ledger is older than the bot's count of safety rejections (ledger schema 4); "
    "its rejections by reason are in logs/safety.log."
)


def money(value: Decimal) -> str:
    """An accounting-currency amount to the cent, with thousands separators."""
    return f"{value.quantize(CENT):,}"


def signed(value: Decimal) -> Text:
    text = money(value)
    return Text(text, style="green" if value > 0 else "red" if value < 0 else "")


def qty(value: Decimal) -> str:
    return f"{value.normalize():,f}" if value else "0"


def pct(value: float | None, digits: int = 3) -> str:
    # + 0.0 turns a rounded -0.0 into 0.0: float noise is not a sign.
    return "-" if value is None else f"{round(value, digits) + 0.0:.{digits}f}%"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{m:02d}m"
    days, h = divmod(hours, 24)
    return f"{days}d{h:02d}h"


def when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def window_text(report: Report) -> str:
    w = report.window
    span = f"{w.since or 'start'} .. {w.until or 'now'}" if w.bounded else "whole ledger"
    sign = "+" if w.utc_offset_h >= 0 else "-"
    return f"{span} (trading days at UTC{sign}{abs(w.utc_offset_h):g})"


def summary_table(report: Report, currency: str) -> Table:
    r = report
    t = Table(title="Summary", show_header=False, title_justify="left")
    t.add_column("figure", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("note", style="dim")
    hold = r.hold
    rows: list[tuple[str, str | Text, str]] = [
        (
            "trades (positions)",
            str(r.trades),
            f"{r.closed} closed, {r.open} open"
            + ("; each on the day it closed (open: opened)" if r.window.bounded else ""),
        ),
        ("win rate", ratio(r.win_rate), f"{r.wins} of {r.closed} closed positions made money"),
        (f"realized PnL ({currency})", signed(r.net), "positions + hedge results"),
        ("  positions", signed(r.realized), "entry spread and exits, fees included"),
        ("  hedge results", signed(r.hedge), "retries, unwinds, residual netting"),
        (f"fees ({currency})", money(r.fees), "entry and exit legs of the positions"),
        ("net spread expected", pct(r.expected_spread_pct), "average at entry, from the opportunity"),
        ("net spread realized", pct(r.realized_spread_pct), "average at entry, from the fills"),
        ("slippage", pct(r.slippage_pct), "expected - realized, percentage points"),
        (
            f"max drawdown ({currency})",
            money(r.drawdown.amount),
            f"realized equity, peak {when(r.drawdown.peak_ts)} -> trough {when(r.drawdown.trough_ts)}"
            if r.drawdown.amount
            else "realized equity never fell",
        ),
        (
            "time in position",
            "-" if hold is None else duration(hold.avg_s),
            "no closed position"
            if hold is None
            else f"avg; median {duration(hold.median_s)}, max {duration(hold.max_s)}, {hold.count} closed",
        ),
        (
            "orders",
            str(r.orders),
            ", ".join(f"{k.lower()} {v}" for k, v in r.orders_by_state.items()) or "none",
        ),
        ("opportunities approved", str(r.approved), "each one an entry sent"),
        (
            "ledger check",
            "balanced" if not r.ledger_gap else money(r.ledger_gap),
            "daily PnL = positions + hedge results (whole ledger)"
            if not r.ledger_gap
            else "daily PnL differs from positions + hedge results by this much",
        ),
    ]
    for row in rows:
        t.add_row(*row)
    return t


def daily_table(report: Report, currency: str) -> Table:
    t = Table(title=f"PnL per day ({currency})", title_justify="left")
    t.caption = "as the bot booked them (daily_pnl); fees there are the entry legs'"
    for name in ("day", "trades", "realized PnL", "entry fees", "hedge results", "cumulative"):
        t.add_column(name, justify="left" if name == "day" else "right", no_wrap=True)
    for d in report.days:
        t.add_row(
            d.day, str(d.trades), signed(d.realized), money(d.fees), signed(d.hedge), signed(d.cumulative)
        )
    if not report.days:
        t.add_row("no day booked", "", "", "", "", "")
    return t


def group_table(title: str, key: str, lines: list[GroupLine], with_hedge: bool) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column(key, no_wrap=True)
    names = ["trades", "win rate", "realized PnL", "fees", "exp. spread", "real. spread"]
    if with_hedge:
        names[3:3] = ["hedge results", "net"]
    for name in names:
        t.add_column(name, justify="right", no_wrap=True)
    for g in lines:
        cells: list[str | Text] = [g.key, str(g.trades), ratio(g.win_rate), signed(g.realized)]
        if with_hedge:
            cells += [signed(g.hedge), signed(g.net)]
        cells += [money(g.fees), pct(g.expected_spread_pct), pct(g.realized_spread_pct)]
        t.add_row(*cells)
    if not lines:
        t.add_row("none", *[""] * len(names))
    return t


def hedge_table(report: Report, currency: str) -> Table:
    t = Table(title="Hedge events", title_justify="left", caption=f"result in {currency}: negative is a cost")
    for name in ("kind", "asset", "events", "qty", "result"):
        t.add_column(name, justify="right" if name in ("events", "qty", "result") else "left", no_wrap=True)
    for h in report.hedges:
        t.add_row(h.kind, h.asset, str(h.events), qty(h.qty), signed(h.result))
    if not report.hedges:
        t.add_row("none", "", "", "", "")
    return t


def inventory_table(report: Report, currency: str) -> Table:
    t = Table(title="Inventory now (whole ledger)", title_justify="left")
    for name in ("what", "venue / pair", "asset", "qty", f"cost ({currency})", "oldest"):
        t.add_column(name, justify="right" if name in ("qty", f"cost ({currency})", "oldest") else "left")
    for i in report.inventory:
        t.add_row("residual (unhedged)", i.venue, i.asset, qty(i.qty), "", "")
    for o in report.open_positions:
        asset, pair = o.key.split(" ", 1)
        t.add_row(
            f"open positions: {o.positions}", pair, asset, qty(o.qty), money(o.cost), duration(o.oldest_s)
        )
    if not report.inventory and not report.open_positions:
        t.add_row("flat: no residual, no open position", "", "", "", "", "")
    return t


def fees_table(report: Report) -> Table:
    t = Table(title="Fees paid per venue (orders, quote currency)", title_justify="left")
    for name in ("venue", "currency", "orders with fills", "fees"):
        t.add_column(name, justify="right" if name in ("orders with fills", "fees") else "left", no_wrap=True)
    for f in report.fees_by_venue:
        t.add_row(f.venue, f.currency, str(f.orders), qty(f.fee))
    if not report.fees_by_venue:
        t.add_row("none", "", "", "")
    return t


def rejections_table(report: Report) -> Table:
    t = Table(title="Safety rejections by reason", title_justify="left")
    t.add_column("reason", no_wrap=True)
    t.add_column("count", justify="right")
    for reason, count in sorted(report.rejections.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(reason, str(count))
    if not report.rejections_recorded:
        t.add_row(NO_REJECTIONS, "-")
    elif not report.rejections:
        t.add_row("none", "0")
    return t


def report_tables(report: Report, currency: str) -> Iterator[RenderableType]:
    yield summary_table(report, currency)
    yield daily_table(report, currency)
    yield group_table(f"PnL per asset ({currency})", "asset", report.by_asset, with_hedge=True)
    yield group_table(f"PnL per venue pair, buy->sell ({currency})", "pair", report.by_pair, with_hedge=False)
    yield group_table(f"PnL per worker ({currency})", "instance", report.by_instance, with_hedge=True)
    yield hedge_table(report, currency)
    yield inventory_table(report, currency)
    yield fees_table(report)
    yield rejections_table(report)
    if not report.rejections_recorded:
        yield Text(NO_REJECTIONS_NOTE, style="dim")
