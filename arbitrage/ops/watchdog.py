"""The watchdog: grades the loop's health metrics against warn/max thresholds and escalates.

Pure: it keeps its own small state machine and returns a report; the loop logs and alerts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from arbitrage.config import WatchdogConfig


class Level(IntEnum):
    OK = 0
    WARN = 1  # a warn threshold crossed
    ERROR = 2  # a max threshold crossed
    CRITICAL = 3  # ERROR on critical_after_errors consecutive evaluations: shut down


# The metrics the watchdog reads; each has warn_<name> and max_<name> in WatchdogConfig.
METRICS: tuple[str, ...] = (
    "ws_lag_ms",
    "redis_heartbeat_age_ms",
    "loop_latency_ms",
    "safety_rejections_per_minute",
    "live_errors_per_minute",
)


def _threshold(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def grade(name: str, value: float, warn: float, hi: float) -> tuple[Level, str | None]:
    """The level of one measurement and, when it crossed a threshold, a readable breach line."""
    if value >= hi:
        return Level.ERROR, f"{name}={value:.1f} >= max {_threshold(hi)}"
    if value >= warn:
        return Level.WARN, f"{name}={value:.1f} >= warn {_threshold(warn)}"
    return Level.OK, None


@dataclass(frozen=True)
class WatchdogReport:
    level: Level
    previous: Level
    changed: bool
    per_metric: dict[str, Level] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    consecutive_errors: int = 0

    def describe(self) -> str:
        """One log line: the level (and its change) followed by what was breached."""
        head = f"{self.previous.name} -> {self.level.name}" if self.changed else self.level.name
        detail = "; ".join(self.breaches) if self.breaches else "all metrics within limits"
        return f"{head}: {detail} (consecutive errors {self.consecutive_errors})"


class Watchdog:
    """Escalates OK -> WARN -> ERROR -> CRITICAL; CRITICAL is terminal.

    An evaluation whose worst metric is ERROR counts towards critical_after_errors; a WARN one
    resets that count. A clean one steps ERROR down to WARN, and WARN goes back to OK only once
    warn_reset_cycles clean evaluations have followed the last unclean one, so a flapping metric
    does not flap the level.
    """

    def __init__(self, config: WatchdogConfig) -> None:
        self._config = config
        self._level = Level.OK
        self._consecutive_errors = 0
        self._clean_streak = 0

    @property
    def level(self) -> Level:
        return self._level

    def evaluate(
        self,
        metrics: Mapping[str, float | None],
        external: Mapping[str, Level] | None = None,
    ) -> WatchdogReport:
        """Grade this cycle's metrics (None or NaN = not measured) plus external levels (SysMonitor's).

        Keys other than METRICS in `metrics` are ignored, so the loop may pass its whole metrics map.
        """
        per_metric: dict[str, Level] = {}
        breaches: list[str] = []
        for name in METRICS:
            value = metrics.get(name)
            if value is None or math.isnan(value):
                continue
            warn = getattr(self._config, f"warn_{name}")
            hi = getattr(self._config, f"max_{name}")
            level, breach = grade(name, float(value), warn, hi)
            per_metric[name] = level
            if breach:
                breaches.append(breach)
        for name, level in (external or {}).items():
            level = Level(level)
            per_metric[name] = level
            if level > Level.OK:
                breaches.append(f"{name}={level.name}")
        # An external CRITICAL counts as one ERROR evaluation: only the count escalates to CRITICAL.
        worst = min(max(per_metric.values(), default=Level.OK), Level.ERROR)

        previous = self._level
        if previous is not Level.CRITICAL:
            self._level = self._step(worst)
        return WatchdogReport(
            level=self._level,
            previous=previous,
            changed=self._level is not previous,
            per_metric=per_metric,
            breaches=breaches,
            consecutive_errors=self._consecutive_errors,
        )

    def _step(self, worst: Level) -> Level:
        if worst is Level.ERROR:
            self._consecutive_errors += 1
            self._clean_streak = 0
            if self._consecutive_errors >= self._config.critical_after_errors:
                return Level.CRITICAL
            return Level.ERROR
        self._consecutive_errors = 0
        if worst is Level.WARN:
            self._clean_streak = 0
            return Level.WARN
        self._clean_streak += 1
        if self._level is Level.ERROR:
            return Level.WARN
        if self._level is Level.WARN and self._clean_streak < self._config.warn_reset_cycles:
            return Level.WARN
        return Level.OK
