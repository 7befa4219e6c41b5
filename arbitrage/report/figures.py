"""What the bot did, figured from the ledger's rows: pure arithmetic, no I/O.

Money is summed as exact Decimals from the ledger's stored values; ratios and averages
(win rate, spreads, hold times) are analysis figures and use floats.

Which rows fall in a window of trading days:
- a position counts on the trading day it closed, an open one on the day it opened (its PnL,
  its trade, its fees, its hold time, its point on the equity curve);
- hedge events and orders on the day of their timestamp (orders are windowed by the reader);
  daily PnL rows by their day;
- residual inventory and open positions are the ledger's state now, whatever the window.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext

from arbitrage.store.ledger_reader import DayRow, HedgeRow, LedgerContents, OrderGroup, PositionRow

ZERO = Decimal(0)
UNNAMED = "(unnamed)"  # rows from before workers had names, in a ledger no bot has opened since
# Sums of many 1e-8-quantized amounts stay exact, as the ledger keeps them.
_EXACT = Context(prec=200)


@dataclass(frozen=True, slots=True)
class Window:
    """Trading days `since`..`until`, both included; None leaves that end open."""

    since: date | None = None
    until: date | None = None
    utc_offset_h: float = 9.0

    def _start_of(self, day: date) -> float:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=self.utc_offset_h)
        return midnight.timestamp()

    @property
    def start_ts(self) -> float:
        return self._start_of(self.since) if self.since else float("-inf")

    @property
    def end_ts(self) -> float:
        return self._start_of(self.until + timedelta(days=1)) if self.until else float("inf")

    def has_ts(self, ts: float) -> bool:
        return self.start_ts <= ts < self.end_ts

    def has_day(self, day: str) -> bool:
        d = date.fromisoformat(day)
        return (self.since is None or d >= self.since) and (self.until is None or d <= self.until)

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass(frozen=True, slots=True)
class DayLine:
    day: str
    trades: int
    realized: Decimal  # position PnL and hedge results booked that day
    fees: Decimal
    hedge: Decimal
    cumulative: Decimal


@dataclass(frozen=True, slots=True)
class GroupLine:
    """Positions grouped by asset or by venue pair."""

    key: str
    trades: int
    closed: int
    wins: int
    realized: Decimal
    fees: Decimal
    hedge: Decimal  # hedge results of the group (by asset only: hedges carry no venue pair)
    expected_spread_pct: float | None
    realized_spread_pct: float | None

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.closed if self.closed else None

    @property
    def net(self) -> Decimal:
        return self.realized + self.hedge


@dataclass(frozen=True, slots=True)
class HedgeLine:
    kind: str
    asset: str
    events: int
    qty: Decimal
    result: Decimal  # negative: what the repair cost


@dataclass(frozen=True, slots=True)
class InventoryLine:
    venue: str
    asset: str
    qty: Decimal  # + held beyond positions, - owed to positions


@dataclass(frozen=True, slots=True)
class OpenLine:
    key: str  # "ASSET buy->sell"
    positions: int
    qty: Decimal
    cost: Decimal  # cost basis of the open part on the buy venue
    oldest_s: float


@dataclass(frozen=True, slots=True)
class FeeLine:
    venue: str
    currency: str
    fee: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class HoldTimes:
    count: int
    avg_s: float
    median_s: float
    max_s: float


@dataclass(frozen=True, slots=True)
class Drawdown:
    amount: Decimal  # >= 0: the largest fall of realized equity from a previous peak
    peak_ts: float | None
    trough_ts: float | None


@dataclass(frozen=True, slots=True)
class Report:
    window: Window
    trades: int
    closed: int
    open: int
    wins: int
    realized: Decimal  # positions
    hedge: Decimal  # hedge results
    fees: Decimal  # entry and exit fees of the positions, accounting currency
    expected_spread_pct: float | None
    realized_spread_pct: float | None
    hold: HoldTimes | None
    drawdown: Drawdown
    equity: list[tuple[float, Decimal]]  # (ts, cumulative realized) after each booking
    days: list[DayLine]
    by_asset: list[GroupLine]
    by_pair: list[GroupLine]
    by_instance: list[GroupLine]  # per worker of a fleet (one line for a single bot)
    hedges: list[HedgeLine]
    inventory: list[InventoryLine]
    open_positions: list[OpenLine]
    fees_by_venue: list[FeeLine]
    orders: int
    orders_by_state: dict[str, int]
    approved: int
    rejections: dict[str, int]  # reason -> count of safety rejections in the window's trading days
    rejections_recorded: bool  # False: a ledger from before the bot wrote its safety rejections
    ledger_gap: Decimal  # Σ daily realized - (Σ position realized + Σ hedge results), whole ledger

    @property
    def net(self) -> Decimal:
        return self.realized + self.hedge

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.closed if self.closed else None

    @property
    def slippage_pct(self) -> float | None:
        """Expected minus realized entry net spread, in percentage points: what the fills cost."""
        if self.expected_spread_pct is None or self.realized_spread_pct is None:
            return None
        return self.expected_spread_pct - self.realized_spread_pct


# Single positions ----------------------------------------------------------------------------


def booked_at(p: PositionRow) -> float:
    """When a position counts: its close, or its opening while it is open."""
    return p.closed_at if p.closed_at is not None else p.opened_at


def entry_spread_pct(p: PositionRow) -> float | None:
    """The entry's realized net spread: proceeds - cost - fees over cost, in % (an analysis figure)."""
    if p.entry_cost <= 0:
        return None
    return float(p.entry_proceeds - p.entry_cost - p.entry_fees) / float(p.entry_cost) * 100


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _dsum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(_EXACT):
        return sum(values, ZERO)


# Figures ---------------------------------------------------------------------------------


def _group(
    positions: list[PositionRow],
    key: Callable[[PositionRow], str],
    hedge: dict[str, Decimal],
    spreads: dict[str, float | None],
) -> list[GroupLine]:
    groups: dict[str, list[PositionRow]] = defaultdict(list)
    for p in positions:
        groups[key(p)].append(p)
    lines = []
    for name in sorted(set(groups) | set(hedge)):
        ps = groups.get(name, [])
        closed = [p for p in ps if p.state == "CLOSED"]
        lines.append(
            GroupLine(
                key=name,
                trades=len(ps),
                closed=len(closed),
                wins=sum(1 for p in closed if p.realized_pnl > 0),
                realized=_dsum(p.realized_pnl for p in ps),
                fees=_dsum(p.entry_fees for p in ps) + _dsum(p.exit_fees for p in ps),
                hedge=hedge.get(name, ZERO),
                expected_spread_pct=_mean(p.entry_spread_pct for p in ps),
                realized_spread_pct=_mean(spreads[p.position_id] for p in ps),
            )
        )
    return lines


def pair_key(p: PositionRow) -> str:
    return f"{p.buy_venue}->{p.sell_venue}"


def equity_curve(positions: Iterable[PositionRow], hedges: Iterable[HedgeRow]) -> list[tuple[float, Decimal]]:
    """Cumulative realized PnL after each booking, in time order."""
    events = [(booked_at(p), p.realized_pnl) for p in positions if p.realized_pnl]
    events += [(h.ts, h.cost) for h in hedges if h.cost]
    events.sort(key=lambda e: e[0])
    curve, total = [], ZERO
    for ts, amount in events:
        total = _EXACT.add(total, amount)
        curve.append((ts, total))
    return curve


def max_drawdown(curve: list[tuple[float, Decimal]]) -> Drawdown:
    """The largest fall from a running peak (the start, at 0, is the first peak)."""
    peak, peak_ts = ZERO, None
    worst = Drawdown(ZERO, None, None)
    for ts, equity in curve:
        if equity > peak:
            peak, peak_ts = equity, ts
        fall = peak - equity
        if fall > worst.amount:
            worst = Drawdown(fall, peak_ts, ts)
    return worst


def hold_times(positions: Iterable[PositionRow]) -> HoldTimes | None:
    spans = [p.closed_at - p.opened_at for p in positions if p.closed_at is not None]
    if not spans:
        return None
    return HoldTimes(len(spans), sum(spans) / len(spans), statistics.median(spans), max(spans))


def residual_inventory(orders: Iterable[OrderGroup], positions: Iterable[PositionRow]) -> list[InventoryLine]:
    """What orders filled per venue minus what positions hold there (runtime.recovery's rule)."""
    held: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for g in orders:
        if g.filled_qty:
            held[(g.venue, g.symbol.partition("/")[0])] += g.filled_qty if g.side == "buy" else -g.filled_qty
    for p in positions:
        entry = p.qty + p.closed_qty
        # Inventory arbitrage (exit.mode none) closes without a reverse trade: the entry stays held.
        still = entry if p.exit_reason == "INVENTORY" else p.qty
        held[(p.buy_venue, p.asset)] -= still
        held[(p.sell_venue, p.asset)] += still
    return [InventoryLine(v, a, q) for (v, a), q in sorted(held.items()) if q]


def open_positions(positions: Iterable[PositionRow], now: float) -> list[OpenLine]:
    groups: dict[str, list[PositionRow]] = defaultdict(list)
    for p in positions:
        if p.state == "OPEN" and p.qty > 0:
            groups[f"{p.asset} {pair_key(p)}"].append(p)
    lines = []
    for key, ps in sorted(groups.items()):
        cost = _dsum(p.entry_cost * p.qty / (p.qty + p.closed_qty) for p in ps)
        lines.append(
            OpenLine(key, len(ps), _dsum(p.qty for p in ps), cost, max(now - p.opened_at for p in ps))
        )
    return lines


def _fees_by_venue(orders: Iterable[OrderGroup]) -> list[FeeLine]:
    fees: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for g in orders:
        if g.with_fills or g.fee:
            key = (g.venue, g.fee_currency or "?")
            fees[key] += g.fee
            counts[key] += g.with_fills
    return [FeeLine(v, c, fees[(v, c)], counts[(v, c)]) for v, c in sorted(fees)]


def _days(rows: Iterable[DayRow]) -> list[DayLine]:
    lines, total = [], ZERO
    for r in rows:
        total = _EXACT.add(total, r.realized_pnl)
        lines.append(DayLine(r.day, r.trades, r.realized_pnl, r.fees, r.hedge_cost, total))
    return lines


def _rejections(ledger: LedgerContents, window: Window) -> tuple[dict[str, int], bool]:
    """Safety rejections by reason over the window's trading days, and whether the ledger keeps them.

    A ledger from before the rejection counts has only the rejected opportunities it may hold."""
    if ledger.rejections is None:
        by_verdict = {
            (v.reason or "(no reason)"): v.count for v in ledger.verdicts if v.verdict == "REJECTED"
        }
        return by_verdict, bool(by_verdict)
    counts: dict[str, int] = defaultdict(int)
    for r in ledger.rejections:
        if window.has_day(r.day):
            counts[r.reason or "(no reason)"] += r.count
    return dict(counts), True


def compute_report(ledger: LedgerContents, window: Window, now: float) -> Report:
    """Every figure of the report for `window`; `now` dates the open positions' ages."""
    with localcontext(_EXACT):
        lo, hi = window.start_ts, window.end_ts
        positions = [p for p in ledger.positions if lo <= booked_at(p) < hi]
        hedges = [h for h in ledger.hedges if lo <= h.ts < hi]
        spreads = {p.position_id: entry_spread_pct(p) for p in positions}
        closed = [p for p in positions if p.state == "CLOSED"]
        hedge_by_asset: dict[str, Decimal] = defaultdict(lambda: ZERO)
        hedge_by_instance: dict[str, Decimal] = defaultdict(lambda: ZERO)
        hedge_lines: dict[tuple[str, str], list[HedgeRow]] = defaultdict(list)
        for h in hedges:
            hedge_by_asset[h.asset] += h.cost
            hedge_by_instance[h.instance or UNNAMED] += h.cost
            hedge_lines[(h.kind, h.asset)].append(h)
        curve = equity_curve(positions, hedges)
        states: dict[str, int] = defaultdict(int)
        for g in ledger.orders:
            states[g.state] += g.orders
        rejections, rejections_recorded = _rejections(ledger, window)
        # One worker's rows (--instance) have no daily rows of their own to reconcile with.
        whole = (
            ZERO
            if ledger.instance is not None
            else _dsum(d.realized_pnl for d in ledger.days)
            - (_dsum(p.realized_pnl for p in ledger.positions) + _dsum(h.cost for h in ledger.hedges))
        )
        return Report(
            window=window,
            trades=len(positions),
            closed=len(closed),
            open=len(positions) - len(closed),
            wins=sum(1 for p in closed if p.realized_pnl > 0),
            realized=_dsum(p.realized_pnl for p in positions),
            hedge=_dsum(h.cost for h in hedges),
            fees=_dsum(p.entry_fees + p.exit_fees for p in positions),
            expected_spread_pct=_mean(p.entry_spread_pct for p in positions),
            realized_spread_pct=_mean(spreads.values()),
            hold=hold_times(closed),
            drawdown=max_drawdown(curve),
            equity=curve,
            days=_days(d for d in ledger.days if window.has_day(d.day)),
            by_asset=_group(positions, lambda p: p.asset, dict(hedge_by_asset), spreads),
            by_pair=_group(positions, pair_key, {}, spreads),
            by_instance=_group(positions, lambda p: p.instance or UNNAMED, dict(hedge_by_instance), spreads),
            hedges=[
                HedgeLine(kind, asset, len(hs), _dsum(h.qty for h in hs), _dsum(h.cost for h in hs))
                for (kind, asset), hs in sorted(hedge_lines.items())
            ],
            inventory=residual_inventory(ledger.all_orders, ledger.positions),
            open_positions=open_positions(ledger.positions, now),
            fees_by_venue=_fees_by_venue(ledger.orders),
            orders=sum(states.values()),
            orders_by_state=dict(sorted(states.items())),
            approved=sum(v.count for v in ledger.verdicts if v.verdict == "APPROVED"),
            rejections=rejections,
            rejections_recorded=rejections_recorded,
            ledger_gap=whole,
        )
