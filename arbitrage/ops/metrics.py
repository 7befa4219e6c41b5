"""The bot's Prometheus metrics (arb_*), in a registry of its own, rendered for GET /metrics."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# update() key -> help text. Gauges take the current value.
GAUGES: dict[str, str] = {
    "pnl": "Total PnL (realized + unrealized) in the accounting currency",
    "realized_pnl": "Realized PnL in the accounting currency",
    "open_positions": "Open pair positions",
    "exposure": "Open exposure in the accounting currency",
    "loop_latency_ms": "Duration of the last tick in milliseconds",
    "tick_count": "Ticks run since start",
    "watchdog_level": "Watchdog level: 0 OK, 1 WARN, 2 ERROR, 3 CRITICAL",
    "redis_heartbeat_age_ms": "Age of the Redis heartbeat read back, in milliseconds",
    "cpu_pct": "Process CPU percent",
    "rss_mb": "Process resident memory in MB",
}
# Counters take the loop's cumulative total; the registry advances by the difference.
COUNTERS: dict[str, str] = {
    "trades_total": "Trades (filled entries) since start",
    "signals_total": "Opportunities signalled since start",
    "sl_triggers_total": "Stop-loss triggers since start",
    "live_errors_total": "Errors raised inside the loop (engines, venues) since start",
    "recorder_books_total": "Books written to the market recording since start",
    "recorder_dropped_total": "Books the market recorder dropped (its queue full) since start",
}


class BotMetrics:
    """Owns its CollectorRegistry, so several bots (or tests) in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._gauges = {k: Gauge(f"arb_{k}", doc, registry=self.registry) for k, doc in GAUGES.items()}
        self._counters = {k: Counter(f"arb_{k}", doc, registry=self.registry) for k, doc in COUNTERS.items()}
        self._rejections = Counter(
            "arb_safety_rejections_total",
            "Opportunities rejected by safety, by reason code",
            ["reason"],
            registry=self.registry,
        )
        self._orders = Counter(
            "arb_orders_total",
            "Orders reaching a state, by venue and state",
            ["venue", "state"],
            registry=self.registry,
        )
        self._ws_lag = Gauge(
            "arb_ws_lag_ms",
            "Market-data stream lag per venue, in milliseconds",
            ["venue"],
            registry=self.registry,
        )
        self._seen: dict[tuple[str, ...], float] = {}  # last cumulative total per counter series

    def update(
        self,
        values: Mapping[str, float | None],
        rejections: Mapping[str, int] | None = None,
        ws_lag_ms: Mapping[str, float | None] | None = None,
        orders: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Set gauges and advance counters to the loop's cumulative totals; None values are skipped.

        rejections: reason -> total; ws_lag_ms: venue -> lag; orders: (venue, state) -> total.
        An unknown key in `values` is a wiring mistake and raises ValueError.
        """
        unknown = sorted(set(values) - set(GAUGES) - set(COUNTERS))
        if unknown:
            known = ", ".join([*GAUGES, *COUNTERS])
            raise ValueError(f"unknown metric(s) {', '.join(unknown)} (known: {known})")
        for name, value in values.items():
            if value is None:
                continue
            if name in GAUGES:
                self._gauges[name].set(value)
            else:
                self._advance(self._counters[name], (name,), value)
        for reason, total in (rejections or {}).items():
            self._advance(self._rejections.labels(reason=reason), ("rejections", reason), total)
        for (venue, state), total in (orders or {}).items():
            self._advance(self._orders.labels(venue=venue, state=state), ("orders", venue, state), total)
        for venue, lag in (ws_lag_ms or {}).items():
            if lag is not None:
                self._ws_lag.labels(venue=venue).set(lag)

    def _advance(self, counter: Counter, series: tuple[str, ...], total: float) -> None:
        # A total lower than before cannot happen within one process; ignoring it keeps the counter monotonic.
        delta = total - self._seen.get(series, 0.0)
        if delta > 0:
            counter.inc(delta)
            self._seen[series] = total

    def render(self) -> bytes:
        """The Prometheus text exposition of every arb_* metric."""
        return generate_latest(self.registry)
