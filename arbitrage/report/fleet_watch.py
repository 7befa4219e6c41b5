"""The fleet for `arb watch`: every worker of the fleet and the shared risk budget, read from Redis
(the budget's keys, the workers' heartbeats and console states) at each refresh, into one plain
document that report.dashboard draws. Never a ledger, never a worker's own state beyond what it
publishes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig
from arbitrage.domain.trading_day import trading_day
from arbitrage.store.fleet_state import FleetState, read_fleet
from arbitrage.store.risk_budget import BudgetUnreachable, Limits, RiskBudget


class FleetView:
    """Reads the fleet of one config (fleet.enabled): its budget's prefix, its Redis, its limits."""

    def __init__(self, config: AppConfig, clock: Clock | None = None) -> None:
        fleet = config.fleet
        self._clock = clock or SystemClock()
        self._config = config
        self._budget = RiskBudget(
            config.redis.url, fleet.key_prefix, config.instance, fleet.lease_s, Limits.of(config), self._clock
        )
        self.where = f"{config.redis.url} fleet {fleet.key_prefix}"

    def read(self) -> Mapping[str, Any]:
        """The fleet document; {"error": why} when Redis cannot answer (the dashboard says so)."""
        budget, config = self._budget, self._config
        day = trading_day(self._clock.time(), config.safety.trading_day_utc_offset_h)
        try:
            fleet = read_fleet(budget, config.redis.key_prefix, day, consoles=True)
        except BudgetUnreachable as err:
            return {"error": str(err)}
        return fleet_document(budget.limits, day, fleet, self._clock.time())

    def close(self) -> None:
        self._budget.close()


def fleet_document(limits: Limits, day: str, fleet: FleetState, now: float) -> dict[str, Any]:
    """What the dashboard's fleet panel shows, as plain data: a row per worker (alive by its
    heartbeat; its symbols and open positions from its console state; what it holds of the
    budget) and the budget used against the limits."""
    workers = []
    beats = fleet.beats
    for name in fleet.names:
        w, console = fleet.held.get(name), fleet.consoles.get(name)
        workers.append(
            {
                "instance": name,
                "alive": name in beats,
                "heartbeat_age_s": max(0.0, now - beats[name]) if name in beats else None,
                "lease_s": w.lease_ms / 1000.0 if w and w.lease_ms > 0 else None,
                "symbols": list(console["spreads"]) if console else [],
                "open_positions": len(console["positions"]) if console else None,
                "reserved": w.pairs if w else 0,
                "in_flight": w.in_flight if w else 0,
                "exposure": w.exposure if w else 0.0,
            }
        )
    return {
        "day": day,
        "realized": fleet.realized,
        "limits": {
            "max_open_positions": limits.max_open_positions,
            "max_exposure": limits.max_exposure,
            "daily_loss_limit": limits.daily_loss_limit,
        },
        "reserved": sum(w["reserved"] for w in workers),
        "exposure": sum(w["exposure"] for w in workers),
        "workers": workers,
    }
