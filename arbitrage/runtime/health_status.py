"""What `/health/detailed` says about a running bot: its loop, state, watchdog and venues."""

from __future__ import annotations

import time
from typing import Any

from arbitrage.ops.health_server import HealthStatus
from arbitrage.ops.watchdog import Level
from arbitrage.runtime.state import position_summary
from arbitrage.runtime.supervisor import Supervisor
from arbitrage.runtime.wiring import Bot


def health_status(bot: Bot, supervisor: Supervisor, started: float) -> HealthStatus:
    """`started` is the run's start on the monotonic clock, for its uptime."""
    wd = supervisor.last_report
    level = wd.level if wd else Level.OK
    last = bot.loop.last_tick_wall
    state = bot.state
    # This runs on the HTTP thread while the loop mutates the state: copy the containers in one
    # C-level call each, so iterating them here cannot meet a dict changing size.
    positions = list(state.positions.values())
    unhedged = dict(state.unhedged)
    venues = dict(bot.venues.by_name)
    detail: dict[str, Any] = {
        "instance": bot.config.instance,
        "mode": state.mode,
        "uptime_s": round(time.monotonic() - started, 3),
        "last_tick_age_s": None if last is None else round(bot.clock.time() - last, 3),
        "ticks": state.counters.ticks,
        "stopping": bot.loop.stopping,
        "entries_blocked": state.entries_blocked,
        "halted": state.halted,
        **supervisor.detail(),
        "venues": {name: venue.describe() for name, venue in venues.items()},
        "positions": [position_summary(p) for p in positions],
        "daily_pnl": {"day": state.day, "realized": str(state.daily_realized)},
        "unhedged": {f"{v}:{a}": str(q) for (v, a), q in unhedged.items()},
    }
    return HealthStatus(level, detail)
