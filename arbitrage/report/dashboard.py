"""The operator's dashboard: one console state (GET /state, or the Redis console key) drawn as a
full-screen rich layout. Pure: a document in, a renderable out; `arb watch` does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

LEVEL_STYLES = {"OK": "green", "WARN": "yellow", "ERROR": "red", "CRITICAL": "bold white on red"}


def _table(*columns: str) -> Table:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    return table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}%"


def header(doc: Mapping[str, Any], source: str, now: float) -> Text:
    if doc["stopping"]:
        status = Text(" STOPPING ", style="bold white on red")
    elif doc["halted"]:
        status = Text(" HALTED ", style="bold black on yellow")
    elif doc["entries_blocked"]:
        status = Text(" ENTRIES BLOCKED ", style="bold black on yellow")
    else:
        status = Text(" TRADING ", style="bold black on green")
    level = doc["watchdog"]["level"]
    text = Text.assemble(
        (f"{doc['instance']} ", "bold"),
        f"({doc['mode']})  ",
        status,
        "  watchdog ",
        (level, LEVEL_STYLES.get(level, "")),
        f"  tick {doc['tick']}  loop {doc['loop_ms']:.1f} ms  state age {max(0.0, now - doc['ts']):.1f}s",
        f"  from {source}   q quits",
    )
    text.no_wrap, text.overflow = True, "ellipsis"  # the header's height is its line count
    if doc["halted"] and doc["halt_reason"]:
        text.append(f"\nhalt: {doc['halt_reason']}", style="yellow")
    if doc["entries_blocked"]:
        text.append(f"\nentries blocked: {doc['entries_blocked']}", style="yellow")
    return text


def spreads_table(doc: Mapping[str, Any]) -> Table:
    threshold = float(doc["threshold_pct"])
    table = _table("asset", "direction", "net spread", "entry at", "gap")
    for asset, directions in doc["spreads"].items():
        for direction, net in directions.items():
            gap = None if net is None else net - threshold
            style = "bold green" if gap is not None and gap >= 0 else ""
            table.add_row(
                asset, direction.replace(">", " → "), Text(_pct(net), style), f"{threshold:.3f}%", _pct(gap)
            )
    return table


def venues_table(doc: Mapping[str, Any]) -> Table:
    table = _table("venue", "feed", "book age", "breaker", "orders/min", "state")
    for name, v in doc["venues"].items():
        age = "n/a" if v["book_age_ms"] is None else f"{v['book_age_ms']:.0f} ms"
        breaker = Text(v["breaker"], "green" if v["breaker"] == "closed" else "bold red")
        state = Text("degraded", "bold red") if v["degraded"] else Text("ok", "green")
        table.add_row(name, v["feed"], age, breaker, str(v["orders_last_minute"]), state)
    return table


def positions_table(doc: Mapping[str, Any]) -> RenderableType:
    if not doc["positions"]:
        return Text("no open positions", style="dim")
    table = _table("asset", "buy → sell", "qty", "entry", f"unrealized {doc['currency']}", "age")
    for p in doc["positions"]:
        pnl = p["unrealized"]
        shown = Text("n/a") if pnl is None else Text(f"{pnl:+,.2f}", "green" if pnl >= 0 else "red")
        age = p["age_s"]
        table.add_row(
            p["asset"],
            f"{p['buy']} → {p['sell']}",
            p["qty"],
            f"{p['entry_spread_pct']:.3f}%",
            shown,
            f"{age:.0f}s" if age < 120 else f"{age / 60:.0f}m",
        )
    return table


def today_and_watchdog(doc: Mapping[str, Any]) -> Group:
    today = doc["today"]
    cur = doc["currency"]
    lines = Table.grid(padding=(0, 2))
    lines.add_row("day", today["day"])
    lines.add_row("realized", f"{float(today['realized']):+,.2f} {cur}")
    lines.add_row("fees", f"{float(today['fees']):,.2f} {cur}")
    lines.add_row("trades", str(today["trades"]))
    wd = _table("metric", "level")
    for metric, level in doc["watchdog"]["per_metric"].items():
        wd.add_row(metric, Text(level, LEVEL_STYLES.get(level, "")))
    return Group(lines, Text(""), wd)


def events_table(doc: Mapping[str, Any]) -> Table:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    # Fixed widths for time and kind: a long event text is cut, never the columns that date it.
    table.add_column("time", width=8, no_wrap=True)
    table.add_column("kind", width=8, no_wrap=True)
    table.add_column("event", ratio=1, no_wrap=True, overflow="ellipsis")
    for event in reversed(doc["events"]):  # newest first: the panel cuts the oldest
        when = datetime.fromtimestamp(event["ts"]).strftime("%H:%M:%S")
        style = "red" if "[ERROR]" in event["text"] or "[CRITICAL]" in event["text"] else ""
        table.add_row(when, event["kind"], Text(event["text"], style))
    return table


def _used(used: float, limit: float, fmt: str) -> Text:
    share = used / limit if limit > 0 else 0.0
    style = "bold red" if share >= 1.0 else "yellow" if share >= 0.8 else "green"
    return Text(f"{used:{fmt}}/{limit:{fmt}}", style)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def fleet_panel(fleet: Mapping[str, Any]) -> RenderableType:
    """The fleet's workers and its shared budget (report.fleet_watch's document): alive or dead
    by heartbeat, what each holds, and what the fleet holds against its limits."""
    if "error" in fleet:
        return Text(f"fleet unreadable: {fleet['error']}", style="bold red")
    limits, realized = fleet["limits"], fleet["realized"] or 0.0
    workers = fleet["workers"]
    loss = limits["daily_loss_limit"]
    budget = Text.assemble(
        f"{sum(1 for w in workers if w['alive'])}/{len(workers)} worker(s) alive   positions ",
        _used(fleet["reserved"], limits["max_open_positions"], ",.0f"),
        "   exposure ",
        _used(fleet["exposure"], limits["max_exposure"], ",.0f"),
        f"   day {fleet['day']} realized ",
        Text(f"{realized:+,.0f}", "bold red" if realized <= -0.8 * loss else ""),
        f" (loss limit {loss:,.0f})",
    )
    budget.no_wrap, budget.overflow = True, "ellipsis"
    table = _table("worker", "state", "heartbeat", "lease", "symbols", "open", "reserved", "in flight")
    table.add_column("exposure", no_wrap=True)
    for w in workers:
        state = Text("alive", "green") if w["alive"] else Text("DEAD", "bold red")
        opened = "-" if w["open_positions"] is None else str(w["open_positions"])
        table.add_row(
            w["instance"], state, _seconds(w["heartbeat_age_s"]), _seconds(w["lease_s"]),
            ",".join(w["symbols"]) or "-", opened, str(w["reserved"]), str(w["in_flight"]),
            f"{w['exposure']:,.0f}",
        )  # fmt: skip
    return Group(budget, table)


def dashboard(
    doc: Mapping[str, Any], source: str, now: float | None = None, fleet: Mapping[str, Any] | None = None
) -> Layout:
    """The whole screen for one console state, and the fleet's panel when a fleet is watched."""
    now = time.time() if now is None else now
    top = header(doc, source, now)
    layout = Layout()
    rows = [
        Layout(Panel(top), name="header", size=2 + len(top.plain.splitlines())),
        Layout(name="middle", ratio=3),
        Layout(Panel(positions_table(doc), title="open positions"), name="positions", ratio=2),
        Layout(Panel(events_table(doc), title="last events"), name="events", ratio=2),
    ]
    if fleet is not None:
        # Its own height (a line per worker, the budget's line, the header, the border): the
        # fleet is what this view is for, so the other panels give way.
        height = 4 + len(fleet.get("workers", ()))
        rows.insert(1, Layout(Panel(fleet_panel(fleet), title="fleet"), name="fleet", size=height))
    layout.split_column(*rows)
    layout["middle"].split_row(
        Layout(name="market", ratio=3),
        Layout(Panel(today_and_watchdog(doc), title="today / watchdog"), name="side", ratio=2),
    )
    layout["market"].split_column(
        Layout(Panel(spreads_table(doc), title="net spread vs entry threshold")),
        Layout(Panel(venues_table(doc), title="venues")),
    )
    return layout


def unreachable(
    source: str,
    problem: str,
    last_seen: float | None,
    now: float | None = None,
    headline: str = "bot unreachable",
) -> Panel:
    """What the screen says while the bot cannot be read: plainly, with how long ago it last was."""
    now = time.time() if now is None else now
    text = Text.assemble(
        (headline, "bold red"), f" at {source} ({problem}), retrying\n\n", ("q quits", "dim")
    )
    if last_seen is not None:
        text.append(f"\nlast state received {now - last_seen:.0f}s ago")
    return Panel(text, title="arb watch", border_style="red")
