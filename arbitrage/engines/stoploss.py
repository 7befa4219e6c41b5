"""The exit engine: closes pair positions on take profit, stop loss or maximum hold time.

Values each open position by its reverse trade at this tick's books. The dynamic stop band
follows the volatility of each pair's recent net spread, kept in a rolling window per pair.
An exit needs both legs: while either venue is degraded (breaker open, Retry-After pause) or
either book is stale (not read this tick, or older than safety.max_book_age_ms), it is held,
since sending it would leave one leg filled on the healthy venue, to be unwound at a cost and
tried again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from arbitrage.config import AppConfig
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.pnl import ReverseTrade, fx_spread_pct
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.engines.base import EngineOutput, Note, TickContext, VenueStatus
from arbitrage.engines.execution import plan_exit

PairKey = tuple[str, str, str]  # (asset, buy venue, sell venue)
MIN_SAMPLES = 5


class SpreadWindow:
    """The last `size` top-of-book net spreads of each (asset, buy venue, sell venue)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._samples: dict[PairKey, deque[float]] = {}

    def observe(
        self, snapshot: MarketSnapshot, assets: tuple[str, ...], venues: Mapping[str, VenueStatus]
    ) -> None:
        for asset in assets:
            for buy_venue, buy in venues.items():
                ask_book = snapshot.book(buy_venue, asset)
                buy_fx = snapshot.fx.get(buy.quote)
                if ask_book is None or ask_book.best_ask is None or buy_fx is None:
                    continue
                for sell_venue, sell in venues.items():
                    bid_book = snapshot.book(sell_venue, asset) if sell_venue != buy_venue else None
                    sell_fx = snapshot.fx.get(sell.quote)
                    if bid_book is None or bid_book.best_bid is None or sell_fx is None:
                        continue
                    net = fx_spread_pct(ask_book.best_ask, buy_fx, bid_book.best_bid, sell_fx)
                    self.add((asset, buy_venue, sell_venue), net - buy.taker_fee_pct - sell.taker_fee_pct)

    def add(self, key: PairKey, value: float) -> None:
        window = self._samples.get(key)
        if window is None:
            window = self._samples[key] = deque(maxlen=self._size)
        window.append(value)

    def stdev(self, key: PairKey) -> float | None:
        """Sample standard deviation, None until the window holds MIN_SAMPLES."""
        window = self._samples.get(key)
        if window is None or len(window) < MIN_SAMPLES:
            return None
        n = len(window)
        mean = sum(window) / n
        return math.sqrt(sum((x - mean) ** 2 for x in window) / (n - 1))


class ExitEngine:
    """One ExitIntent per open position that hits a trigger; nothing at all when exit.mode is none.

    Triggers, first match wins: STOP_LOSS (loss % of the open cost basis >= the static or dynamic
    band), TAKE_PROFIT (the reverse trade nets >= exit.min_spread_pct), MAX_HOLD. A stop loss or
    a max-hold exit gets the wider unwind slippage bound, since getting out matters more than price.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._config = config
        self._assets = tuple(config.symbols)
        self._window = SpreadWindow(config.stoploss.dynamic_window)
        self._held: dict[str, str] = {}  # position id -> why its exit is held (noted once)

    def stop_band_pct(self, position: PairPosition) -> float:
        """The loss % that stops this position out."""
        sl = self._config.stoploss
        if sl.mode == "dynamic":
            sd = self._window.stdev((position.asset, position.buy_venue, position.sell_venue))
            if sd is not None:
                return min(sl.dynamic_max_pct, max(sl.dynamic_min_pct, sl.dynamic_k * sd))
        return sl.static_pct

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        counts = {"STOP_LOSS": 0, "TAKE_PROFIT": 0, "MAX_HOLD": 0}
        out = EngineOutput()
        unrealized = 0.0
        if self._config.exit.mode != "none":
            if self._config.stoploss.mode == "dynamic":
                self._window.observe(ctx.snapshot, self._assets, ctx.state.venues)
            for position in sorted(ctx.state.positions.values(), key=lambda p: p.opened_at):
                if position.state is not PositionState.OPEN or position.qty <= 0:
                    continue
                trade, pnl = ctx.reverse_trade(position), ctx.unrealized_pnl(position)
                if trade is None or pnl is None:
                    out.notes.append(
                        Note("DEBUG", f"{position.position_id}: no books to value the reverse trade")
                    )
                    continue
                unrealized += pnl
                reason, why = self._trigger(position, trade, pnl, ctx.snapshot.ts)
                if reason is None:
                    self._held.pop(position.position_id, None)
                    continue
                if self._hold(ctx, position, reason, out):
                    continue
                if self._exit(ctx, position, trade, reason, why, out):
                    counts[reason] += 1
        out.metrics.update(
            sl_triggers=float(counts["STOP_LOSS"]),
            tp_triggers=float(counts["TAKE_PROFIT"]),
            hold_triggers=float(counts["MAX_HOLD"]),
            unrealized_pnl=unrealized,
        )
        return out

    def _hold(self, ctx: TickContext, position: PairPosition, reason: str, out: EngineOutput) -> bool:
        """True when the exit must wait: a leg's venue degraded or its book stale (noted once)."""
        pid = position.position_id
        blocker = exit_blocker(ctx, position, self._config.safety.max_book_age_ms)
        if blocker is None:
            if self._held.pop(pid, None) is not None:
                out.notes.append(Note("INFO", f"{reason} {pid}: exit no longer held"))
            return False
        cause, why = blocker
        if self._held.get(pid) != cause:
            out.notes.append(Note("WARNING", f"{reason} {pid} {position.asset}: exit held, {why}"))
        self._held[pid] = cause
        return True

    def _trigger(
        self, position: PairPosition, trade: ReverseTrade, pnl: float, now: float
    ) -> tuple[str | None, str]:
        cost = float(position.open_cost)
        loss_pct = -pnl / cost * 100.0 if cost > 0 else 0.0
        band = self.stop_band_pct(position)
        if loss_pct >= band:
            return "STOP_LOSS", f"loss {loss_pct:.3f}% >= band {band:.3f}%"
        if trade.net_spread_pct >= self._config.exit.min_spread_pct:
            return (
                "TAKE_PROFIT",
                f"reverse net {trade.net_spread_pct:.3f}% >= {self._config.exit.min_spread_pct}%",
            )
        held = now - position.opened_at
        if held >= self._config.exit.max_hold_s:
            return "MAX_HOLD", f"held {held:.0f}s >= {self._config.exit.max_hold_s:.0f}s"
        return None, ""

    def _exit(
        self,
        ctx: TickContext,
        position: PairPosition,
        trade: ReverseTrade,
        reason: str,
        why: str,
        out: EngineOutput,
    ) -> bool:
        ex = self._config.execution
        slippage = ex.max_slippage_pct if reason == "TAKE_PROFIT" else ex.unwind_slippage_pct
        sell_rules = ctx.state.rules.get((position.buy_venue, position.buy_symbol))
        buy_rules = ctx.state.rules.get((position.sell_venue, position.sell_symbol))
        if sell_rules is None or buy_rules is None:
            out.notes.append(
                Note("WARNING", f"{reason} {position.position_id}: no market rules, cannot price the exit")
            )
            return False
        out.decisions.append(plan_exit(position, trade, reason, slippage, sell_rules, buy_rules))
        out.notes.append(Note("INFO", f"{reason} {position.position_id} {position.asset}: {why}"))
        return True


def exit_blocker(ctx: TickContext, position: PairPosition, max_book_age_ms: float) -> tuple[str, str] | None:
    """(cause, text) when a position's exit cannot go out on both legs now, else None."""
    snapshot = ctx.snapshot
    for venue in (position.buy_venue, position.sell_venue):
        status = ctx.state.venues.get(venue)
        if status is not None and status.degraded:
            return f"{venue}:degraded", f"{venue} is degraded (circuit breaker open or paused)"
        book = snapshot.book(venue, position.asset)
        if book is not None and (venue, position.asset) in snapshot.carried:
            return f"{venue}:stale", f"{venue} {position.asset} book not read this tick"
        if book is not None and book.age_ms(snapshot.ts) > max_book_age_ms:
            age = book.age_ms(snapshot.ts)
            return (
                f"{venue}:stale",
                f"{venue} {position.asset} book {age:.0f}ms old > {max_book_age_ms:.0f}ms",
            )
    return None
