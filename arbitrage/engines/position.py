"""The position keeper and rebalancer: exposure and PnL of open pair positions, inventory drift.

Proposes closing the oldest positions when exposure passes rebalancer.max_exposure, and warns
when a venue's inventory drifts from where it started. It never moves funds between venues.
"""

from __future__ import annotations

from decimal import Decimal

from arbitrage.config import AppConfig
from arbitrage.domain.decisions import ExitIntent, InventoryWarning
from arbitrage.domain.money import ZERO
from arbitrage.domain.pnl import exposure
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.engines.base import EngineOutput, Note, TickContext
from arbitrage.engines.execution import plan_exit
from arbitrage.engines.stoploss import exit_held_back


class PositionEngine:
    """Metrics open_positions, exposure, unrealized_pnl, inventory_drifting; REDUCE_EXPOSURE exits.

    Keeps the set of (venue, asset) currently drifting, so an InventoryWarning is emitted when a
    drift starts, not on every tick it lasts; one that comes back within the ratio may warn again.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._config = config
        self._drifting: set[tuple[str, str]] = set()
        self._over_limit = False
        # venue -> (initial, current) balances as last checked for drift
        self._seen_balances: dict[str, tuple[dict[str, Decimal], dict[str, Decimal]]] = {}

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        out = EngineOutput()
        snapshot = ctx.snapshot
        positions = sorted(
            (p for p in ctx.state.positions.values() if p.state is PositionState.OPEN and p.qty > 0),
            key=lambda p: p.opened_at,
        )
        marks = {p.position_id: exposure(p, snapshot) for p in positions}
        total = sum(marks.values())
        unrealized = 0.0
        for p in positions:
            pnl = ctx.unrealized_pnl(p)
            unrealized += pnl if pnl is not None else 0.0
        self._reduce(ctx, positions, marks, total, out)
        self._watch_inventory(ctx, out)
        out.metrics.update(
            open_positions=float(len(positions)),
            exposure=total,
            unrealized_pnl=unrealized,
            inventory_drifting=float(len(self._drifting)),
        )
        return out

    def _reduce(
        self,
        ctx: TickContext,
        positions: list[PairPosition],
        marks: dict[str, float],
        total: float,
        out: EngineOutput,
    ) -> None:
        limit = self._config.rebalancer.max_exposure
        over = total > limit
        if over and not self._over_limit:
            out.notes.append(
                Note("WARNING", f"exposure {total:.0f} above rebalancer.max_exposure {limit:.0f}")
            )
        self._over_limit = over
        if not over or not self._config.rebalancer.auto_reduce or self._config.exit.mode == "none":
            return
        # Exits the stop-loss engine already decided this tick reduce exposure too.
        exiting = {i.position_id for i in ctx.decided("stoploss") if isinstance(i, ExitIntent)}
        remaining = total - sum(marks[pid] for pid in exiting if pid in marks)
        slippage = self._config.execution.max_slippage_pct
        ex = self._config.exit
        for position in positions:
            if remaining <= limit:
                break
            if position.position_id in exiting:
                continue
            retry = ctx.state.exit_retries.get(position.position_id)
            wait = exit_held_back(retry, ctx.snapshot.ts, ex.retry_backoff_s, ex.retry_backoff_max_s)
            if wait is not None:
                out.notes.append(Note("DEBUG", f"REDUCE_EXPOSURE {position.position_id} waits: {wait}"))
                continue
            trade = ctx.reverse_trade(position)
            sell_rules = ctx.state.rules.get((position.buy_venue, position.buy_symbol))
            buy_rules = ctx.state.rules.get((position.sell_venue, position.sell_symbol))
            if trade is None or sell_rules is None or buy_rules is None:
                out.notes.append(
                    Note("WARNING", f"cannot reduce {position.position_id}: no books or market rules")
                )
                continue
            out.decisions.append(
                plan_exit(position, trade, "REDUCE_EXPOSURE", slippage, sell_rules, buy_rules)
            )
            remaining -= marks[position.position_id]
            out.notes.append(
                Note("INFO", f"REDUCE_EXPOSURE {position.position_id}: exposure {total:.0f} > {limit:.0f}")
            )

    def _watch_inventory(self, ctx: TickContext, out: EngineOutput) -> None:
        ratio_limit = self._config.rebalancer.inventory_drift_ratio
        seen = self._seen_balances
        for venue, start in ctx.state.initial_balances.items():
            now = ctx.state.balances.get(venue, {})
            # Balances change only when a trade refreshes them; the same balances as last tick
            # leave every drift where it was and warn of nothing new, so skip the Decimal work.
            if seen.get(venue) == (start, now):
                continue
            seen[venue] = (dict(start), dict(now))
            for asset, initial in start.items():
                if initial <= 0:
                    continue  # nothing to drift from: a relative drift is undefined
                key = (venue, asset)
                current = now.get(asset, ZERO)
                ratio = float(abs(current - initial) / initial)
                if ratio <= ratio_limit:
                    self._drifting.discard(key)
                    continue
                if key in self._drifting:
                    continue
                self._drifting.add(key)
                detail = (
                    f"{venue} {asset} balance {current} vs {initial} at start "
                    f"({ratio:.1%} > {ratio_limit:.0%})"
                )
                out.decisions.append(InventoryWarning(venue, asset, ratio, detail))
                out.notes.append(Note("WARNING", f"inventory drift: {detail}"))
