from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.ops.metrics import COUNTERS, GAUGES, BotMetrics


def samples(metrics: BotMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_metric_is_exposed_with_the_arb_prefix() -> None:
    text = BotMetrics().render().decode()
    for name in [*GAUGES, *COUNTERS, "safety_rejections_total", "orders_total", "ws_lag_ms"]:
        assert f"# TYPE arb_{name.removesuffix('_total')}" in text, name


def test_gauges_take_the_current_value() -> None:
    m = BotMetrics()
    m.update(
        {"pnl": 12_500.0, "open_positions": 2, "loop_latency_ms": 3.5, "watchdog_level": 1, "cpu_pct": 7.0}
    )
    m.update({"pnl": -300.0, "rss_mb": None})
    s = samples(m)
    assert s[("arb_pnl", ())] == -300.0
    assert s[("arb_open_positions", ())] == 2.0
    assert s[("arb_loop_latency_ms", ())] == 3.5
    assert s[("arb_watchdog_level", ())] == 1.0
    assert s[("arb_rss_mb", ())] == 0.0  # None left it untouched


def test_counters_follow_the_loops_cumulative_totals() -> None:
    m = BotMetrics()
    m.update({"trades_total": 3, "signals_total": 10}, rejections={"STALE_DATA": 4})
    m.update({"trades_total": 5, "signals_total": 10}, rejections={"STALE_DATA": 6, "MAX_EXPOSURE": 1})
    m.update({"trades_total": 4})  # a lower total never makes a counter go back
    s = samples(m)
    assert s[("arb_trades_total", ())] == 5.0
    assert s[("arb_signals_total", ())] == 10.0
    assert s[("arb_safety_rejections_total", (("reason", "STALE_DATA"),))] == 6.0
    assert s[("arb_safety_rejections_total", (("reason", "MAX_EXPOSURE"),))] == 1.0


def test_labelled_series() -> None:
    m = BotMetrics()
    m.update({}, ws_lag_ms={"upbit": 120.0, "binance": None}, orders={("upbit", "FILLED"): 2})
    m.update({}, ws_lag_ms={"upbit": 80.0}, orders={("upbit", "FILLED"): 3, ("binance", "REJECTED"): 1})
    s = samples(m)
    assert s[("arb_ws_lag_ms", (("venue", "upbit"),))] == 80.0
    assert ("arb_ws_lag_ms", (("venue", "binance"),)) not in s
    assert s[("arb_orders_total", (("state", "FILLED"), ("venue", "upbit")))] == 3.0
    assert s[("arb_orders_total", (("state", "REJECTED"), ("venue", "binance")))] == 1.0


def test_unknown_keys_are_a_wiring_mistake() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        BotMetrics().update({"pnl_typo": 1.0})


def test_two_instances_do_not_share_a_registry() -> None:
    a, b = BotMetrics(), BotMetrics()
    a.update({"tick_count": 7})
    assert samples(a)[("arb_tick_count", ())] == 7.0
    assert samples(b)[("arb_tick_count", ())] == 0.0
