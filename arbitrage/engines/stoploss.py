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
from decimal import Decimal

from arbitrage.config import AppConfig
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.exit_retry import ExitRetry
from arbitrage.domain.money import MarketRules
from arbitrage.domain.pnl import ReverseTrade, fx_spread_pct
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.engines.base import EngineOutput, Note, StateView, TickContext, VenueStatus
from arbitrage.engines.execution import DUST, dust_exit, plan_exit, price_floors

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
        # A book-triggered tick adds a sample only for the assets whose books changed: the same
        # books again are no new sample, and would crowd the window at the tick rate.
        changed = snapshot.changed_assets()
        for asset in assets:
            if changed is not None and asset not in changed:
                continue
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


def exit_rules(state: StateView, position: PairPosition) -> tuple[MarketRules, MarketRules] | None:
    """(sell leg rules, buy leg rules) of the position's reverse trade, None if either is unknown."""
    sell_rules = state.rules.get((position.buy_venue, position.buy_symbol))
    buy_rules = state.rules.get((position.sell_venue, position.sell_symbol))
    return None if sell_rules is None or buy_rules is None else (sell_rules, buy_rules)


def exit_held_back(retry: ExitRetry | None, now: float, base_s: float, cap_s: float) -> str | None:
    """Why a position's exit must wait (its last attempts failed and the backoff runs), or None."""
    if retry is None:
        return None
    at = retry.retry_at(base_s, cap_s)
    if now >= at:
        return None
    return f"{retry.failures} failed exit attempt(s), next in {at - now:.1f}s (last: {retry.why})"


class ExitEngine:
    """One ExitIntent per open position that hits a trigger; nothing at all when exit.mode is none.

    Triggers, first match wins: STOP_LOSS (loss % of the open cost basis >= the static or dynamic
    band), TAKE_PROFIT (the reverse trade nets >= exit.min_spread_pct), MAX_HOLD. A stop loss or
    a max-hold exit gets the wider unwind slippage bound, since getting out matters more than price.

    A position too small for either venue even at the reverse trade's own prices is closed as
    DUST at once, trigger or not: it can never be traded back, and open it would count toward
    safety.max_open_positions for ever. A position whose last exit attempts failed waits out
    its backoff (exit.retry_backoff_s doubling up to exit.retry_backoff_max_s, 300 s by default):
    each failed attempt costs an unwind (about 0.3% of the notional in the incident that set
    these), so while a venue refuses, fewer attempts lose less. A stop loss waits at most
    exit.stoploss_retry_backoff_max_s (60 s): its position is losing, and once the venue takes
    orders again, five minutes of market against it can cost more than the extra unwinds (at
    most one a minute) that the shorter cap spends meanwhile.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._config = config
        self._assets = tuple(config.symbols)
        self._window = SpreadWindow(config.stoploss.dynamic_window)
        self._held: dict[str, str] = {}  # position id -> why its exit is held (noted once)
        # position id -> (its qty, price_floors of that qty): the Decimal work once per qty.
        self._floors: dict[str, tuple[Decimal, tuple[float, float] | None]] = {}

    def stop_band_pct(self, position: PairPosition) -> float:
        """The loss % that stops this position out."""
        sl = self._config.stoploss
        if sl.mode == "dynamic":
            sd = self._window.stdev((position.asset, position.buy_venue, position.sell_venue))
            if sd is not None:
                return min(sl.dynamic_max_pct, max(sl.dynamic_min_pct, sl.dynamic_k * sd))
        return sl.static_pct

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        counts = {"STOP_LOSS": 0, "TAKE_PROFIT": 0, "MAX_HOLD": 0, DUST: 0, "HELD_BACK": 0}
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
                if self._dust(ctx, position, trade, out):
                    counts[DUST] += 1
                    continue
                reason, why = self._trigger(position, trade, pnl, ctx.snapshot.ts)
                if reason is None:
                    self._held.pop(position.position_id, None)
                    continue
                if self._hold(ctx, position, reason, out):
                    continue
                wait = self._held_back(ctx, position, reason)
                if wait is not None:
                    counts["HELD_BACK"] += 1
                    out.notes.append(Note("DEBUG", f"{reason} {position.position_id} waits: {wait}"))
                    continue
                if self._exit(ctx, position, trade, reason, why, out):
                    counts[reason] += 1
        out.metrics.update(
            sl_triggers=float(counts["STOP_LOSS"]),
            tp_triggers=float(counts["TAKE_PROFIT"]),
            hold_triggers=float(counts["MAX_HOLD"]),
            dust_closes=float(counts[DUST]),
            exits_held_back=float(counts["HELD_BACK"]),
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

    def _dust(self, ctx: TickContext, position: PairPosition, trade: ReverseTrade, out: EngineOutput) -> bool:
        """Close the position as DUST when its venues cannot trade it back even at the touch."""
        rules = exit_rules(ctx.state, position)
        if rules is None:
            return False
        known = self._floors.get(position.position_id)
        if known is None or known[0] != position.qty:
            if len(self._floors) > 2 * len(ctx.state.positions) + 16:  # closed positions' entries
                self._floors = {k: v for k, v in self._floors.items() if k in ctx.state.positions}
            known = self._floors[position.position_id] = (position.qty, price_floors(position.qty, *rules))
        floors = known[1]
        if floors is not None and trade.sell_vwap >= floors[0] and trade.buy_vwap >= floors[1]:
            return False
        out.decisions.append(dust_exit(position, trade.net_spread_pct))
        out.notes.append(
            Note(
                "INFO",
                f"{DUST} {position.position_id} {position.asset}: open {position.qty} is below what "
                f"{position.buy_venue} and {position.sell_venue} both trade; closed into the residual book",
            )
        )
        return True

    def _held_back(self, ctx: TickContext, position: PairPosition, reason: str) -> str | None:
        ex = self._config.exit
        cap = ex.retry_backoff_max_s
        if reason == "STOP_LOSS":
            cap = min(cap, ex.stoploss_retry_backoff_max_s)
        retry = ctx.state.exit_retries.get(position.position_id)
        return exit_held_back(retry, ctx.snapshot.ts, ex.retry_backoff_s, cap)

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
        rules = exit_rules(ctx.state, position)
        if rules is None:
            out.notes.append(
                Note("WARNING", f"{reason} {position.position_id}: no market rules, cannot price the exit")
            )
            return False
        intent = plan_exit(position, trade, reason, slippage, *rules)
        out.decisions.append(intent)
        if intent.reason == DUST:
            why += f"; {position.qty} is below a venue's minimum at the exit's limits: closed as {DUST}"
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
