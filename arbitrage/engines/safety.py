"""The limit checker: approves or rejects each opportunity with a reason code.

Checks are small functions run in order; the first that fails names the reason. Approvals made
earlier in the same tick count against the limits (positions, exposure, balances, order rate).
See docs/ARCHITECTURE.md, Safety's reason codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from arbitrage.config import AppConfig
from arbitrage.domain.book import split_symbol
from arbitrage.domain.decisions import SafetyVerdict
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.pnl import total_exposure
from arbitrage.domain.positions import PositionState
from arbitrage.engines.base import EngineOutput, Note, TickContext

Rejection = tuple[str, str]  # (reason code, detail)


@dataclass(slots=True)
class TickLimits:
    """What the checks see: the tick, the config, and what earlier approvals this tick took."""

    ctx: TickContext
    config: AppConfig
    exposure: float  # mark-to-market exposure of open positions
    open_positions: int
    approved: int = 0
    approved_notional: float = 0.0
    approved_assets: set[str] = field(default_factory=set)
    reserved: dict[tuple[str, str], float] = field(default_factory=dict)  # (venue, asset) -> amount
    orders: dict[str, int] = field(default_factory=dict)  # venue -> orders planned this tick

    def free(self, venue: str, asset: str) -> float:
        held = float(self.ctx.state.balances.get(venue, {}).get(asset, 0))
        return held - self.reserved.get((venue, asset), 0.0)

    def record(self, opp: Opportunity) -> None:
        """Reserve what an approved opportunity will use."""
        self.approved += 1
        self.approved_notional += opp.notional
        self.approved_assets.add(opp.asset)
        quote = split_symbol(opp.buy_symbol)[1]
        fee = self.ctx.state.venues[opp.buy_venue].taker_fee_pct
        want_quote = opp.qty * opp.buy_price * (1.0 + fee / 100.0)
        for key, want in (((opp.buy_venue, quote), want_quote), ((opp.sell_venue, opp.asset), opp.qty)):
            self.reserved[key] = self.reserved.get(key, 0.0) + min(want, max(0.0, self.free(*key)))
        for venue in (opp.buy_venue, opp.sell_venue):
            self.orders[venue] = self.orders.get(venue, 0) + 1


Check = Callable[[Opportunity, TickLimits], Rejection | None]


def halted(opp: Opportunity, t: TickLimits) -> Rejection | None:
    state = t.ctx.state
    if state.halted:
        return "HALTED", state.halt_reason or "operator halt"
    if state.entries_blocked:
        return "HALTED", state.entries_blocked
    return None


def daily_loss(opp: Opportunity, t: TickLimits) -> Rejection | None:
    if daily_loss_tripped(t.ctx, t.config):
        pnl = t.ctx.state.daily_realized_pnl
        return "DAILY_LOSS_LIMIT", f"daily realized pnl {pnl} <= -{t.config.safety.daily_loss_limit}"
    return None


def redis_heartbeat(opp: Opportunity, t: TickLimits) -> Rejection | None:
    cfg = t.config.safety
    if not cfg.require_redis_heartbeat:
        return None
    age = t.ctx.state.redis_heartbeat_age_ms
    if age is None:
        return "REDIS_HEARTBEAT_STALE", "no heartbeat"
    if age > cfg.max_heartbeat_age_ms:
        return "REDIS_HEARTBEAT_STALE", f"heartbeat {age:.0f}ms old > {cfg.max_heartbeat_age_ms:.0f}ms"
    return None


def venue_degraded(opp: Opportunity, t: TickLimits) -> Rejection | None:
    for venue in (opp.buy_venue, opp.sell_venue):
        status = t.ctx.state.venues.get(venue)
        if status is None:
            return "VENUE_DEGRADED", f"{venue}: no status"
        if status.degraded:
            return "VENUE_DEGRADED", f"{venue}: circuit breaker open"
    return None


def stale_data(opp: Opportunity, t: TickLimits) -> Rejection | None:
    snap = t.ctx.snapshot
    limit = t.config.safety.max_book_age_ms
    for venue in (opp.buy_venue, opp.sell_venue):
        book = snap.book(venue, opp.asset)
        if book is None:
            return "STALE_DATA", f"{venue} {opp.asset}: no book"
        age = book.age_ms(snap.ts)
        if (venue, opp.asset) in snap.carried:
            return "STALE_DATA", f"{venue} {opp.asset} book not read this tick ({age:.0f}ms old)"
        if age > limit:
            return "STALE_DATA", f"{venue} {opp.asset} book {age:.0f}ms old > {limit:.0f}ms"
    if snap.fx_age_ms > t.config.fx.max_age_ms:
        return "STALE_DATA", f"fx rate {snap.fx_age_ms:.0f}ms old > {t.config.fx.max_age_ms:.0f}ms"
    return None


def ws_lag(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_ws_lag_ms
    for venue in (opp.buy_venue, opp.sell_venue):
        status = t.ctx.state.venues[venue]
        lag = max(status.ws_lag_ms, t.ctx.snapshot.ws_lag_ms.get(venue, 0.0))
        if lag > limit:
            return "WS_LAG", f"{venue} lag {lag:.0f}ms > {limit:.0f}ms"
    return None


def spread_outlier(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_spread_pct
    if opp.net_spread_pct > limit:
        return "SPREAD_OUTLIER", f"net {opp.net_spread_pct:.3f}% > {limit}%"
    return None


def min_liquidity(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.min_liquidity_notional
    if opp.notional < limit:
        return "MIN_LIQUIDITY", f"notional {opp.notional:.0f} < {limit:.0f}"
    return None


def max_slippage(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_slippage_pct
    if opp.slippage_pct > limit:
        return "MAX_SLIPPAGE", f"slippage {opp.slippage_pct:.3f}% > {limit}%"
    return None


def one_per_asset(opp: Opportunity, t: TickLimits) -> Rejection | None:
    # Two entries on one asset in one tick would trade against each other's book walk.
    if opp.asset in t.approved_assets:
        return "ASSET_BUSY", f"{opp.asset} already approved this tick"
    return None


def max_open_positions(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_open_positions
    if t.open_positions + t.approved >= limit:
        return "MAX_OPEN_POSITIONS", f"{t.open_positions} open + {t.approved} approved >= {limit}"
    return None


def max_position_size(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_position_notional
    if opp.notional > limit:
        return "MAX_POSITION_SIZE", f"notional {opp.notional:.0f} > {limit:.0f}"
    return None


def max_exposure(opp: Opportunity, t: TickLimits) -> Rejection | None:
    limit = t.config.safety.max_exposure
    total = t.exposure + t.approved_notional + opp.notional
    if total > limit:
        return "MAX_EXPOSURE", f"exposure {total:.0f} would exceed {limit:.0f}"
    return None


def insufficient_balance(opp: Opportunity, t: TickLimits) -> Rejection | None:
    need = min(t.config.signal.min_notional, opp.notional)  # accounting currency
    quote = split_symbol(opp.buy_symbol)[1]
    fee = t.ctx.state.venues[opp.buy_venue].taker_fee_pct
    need_quote = need / opp.buy_fx * (1.0 + fee / 100.0)
    have_quote = t.free(opp.buy_venue, quote)
    if have_quote < need_quote:
        return "INSUFFICIENT_BALANCE", f"{opp.buy_venue} {quote} {have_quote:.8g} < {need_quote:.8g}"
    need_base = need / (opp.sell_vwap * opp.sell_fx)
    have_base = t.free(opp.sell_venue, opp.asset)
    if have_base < need_base:
        return "INSUFFICIENT_BALANCE", f"{opp.sell_venue} {opp.asset} {have_base:.8g} < {need_base:.8g}"
    return None


def order_rate(opp: Opportunity, t: TickLimits) -> Rejection | None:
    # +2 leaves room for this entry's leg and one repair order on the same venue.
    limit = t.config.safety.max_orders_per_minute
    for venue in (opp.buy_venue, opp.sell_venue):
        sent = t.ctx.state.venues[venue].orders_last_minute + t.orders.get(venue, 0)
        if sent + 2 > limit:
            return "ORDER_RATE", f"{venue} {sent} orders in the last minute, limit {limit}"
    return None


LIMIT_CHECKS: tuple[Check, ...] = (
    halted,
    daily_loss,
    redis_heartbeat,
    venue_degraded,
    stale_data,
    ws_lag,
    spread_outlier,
    min_liquidity,
    max_slippage,
    one_per_asset,
    max_open_positions,
    max_position_size,
    max_exposure,
    insufficient_balance,
    order_rate,
)


def daily_loss_tripped(ctx: TickContext, config: AppConfig) -> bool:
    return float(ctx.state.daily_realized_pnl) <= -config.safety.daily_loss_limit


def trading_day(ts: float, utc_offset_h: float) -> int:
    """Days since the epoch in the trading day's time zone (KST by default)."""
    return int((ts + utc_offset_h * 3600.0) // 86400)


def first_rejection(opp: Opportunity, limits: TickLimits) -> Rejection | None:
    for check in LIMIT_CHECKS:
        rejection = check(opp, limits)
        if rejection is not None:
            return rejection
    return None


class SafetyEngine:
    """One SafetyVerdict per opportunity from the `signal` engine, best net spread first.

    Remembers the trading day on which the daily-loss kill switch was last announced, so the
    ERROR note goes out once per day.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._config = config
        self._kill_switch_day: int | None = None

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        out = EngineOutput()
        self._announce_kill_switch(ctx, out)
        opportunities = [o for o in ctx.decided("signal") if isinstance(o, Opportunity)]
        if not opportunities:  # most ticks: nothing to judge, and no exposure to mark
            out.metrics.update(approvals=0.0, rejections=0.0)
            return out
        # Best first, so that shared limits (one per asset, exposure, balances) favour the best.
        opportunities.sort(key=lambda o: o.net_spread_pct, reverse=True)
        open_positions = [p for p in ctx.state.positions.values() if p.state is PositionState.OPEN]
        limits = TickLimits(
            ctx=ctx,
            config=self._config,
            exposure=total_exposure(open_positions, ctx.snapshot),
            open_positions=len(open_positions),
        )
        rejections: dict[str, int] = {}
        # Rejections with the same reason and detail (a shared limit refuses every asset at once)
        # share one line that names each of them: one log record, not twenty, on a busy tick.
        rejected: dict[tuple[str, str], list[str]] = {}
        for opp in opportunities:
            rejection = first_rejection(opp, limits)
            if rejection is None:
                limits.record(opp)
                out.decisions.append(SafetyVerdict(opp, None))
                continue
            reason, detail = rejection
            rejections[reason] = rejections.get(reason, 0) + 1
            out.decisions.append(SafetyVerdict(opp, reason, detail))
            rejected.setdefault(rejection, []).append(f"{opp.key} net={opp.net_spread_pct:.3f}%")
        for (reason, detail), which in rejected.items():
            out.notes.append(Note("INFO", f"rejected {', '.join(which)} reason={reason}: {detail}"))
        out.metrics["approvals"] = float(limits.approved)
        out.metrics["rejections"] = float(sum(rejections.values()))
        for reason, count in rejections.items():
            out.metrics[f"rejections.{reason}"] = float(count)
        return out

    def _announce_kill_switch(self, ctx: TickContext, out: EngineOutput) -> None:
        if not daily_loss_tripped(ctx, self._config):
            return
        day = trading_day(ctx.snapshot.ts, self._config.safety.trading_day_utc_offset_h)
        if day != self._kill_switch_day:
            self._kill_switch_day = day
            limit = self._config.safety.daily_loss_limit
            out.notes.append(
                Note(
                    "ERROR",
                    f"kill switch tripped: daily realized pnl {ctx.state.daily_realized_pnl} <= -{limit}; "
                    "no new entries until the next trading day",
                )
            )
