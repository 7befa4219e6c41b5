from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.config import WatchdogConfig
from arbitrage.ops.watchdog import METRICS, Level, Watchdog, grade

OK = {"loop_latency_ms": 10.0}
WARN = {"loop_latency_ms": 600.0}  # warn 500
ERROR = {"loop_latency_ms": 2520.3}  # max 2500
SAMPLES = {"ok": OK, "warn": WARN, "error": ERROR}


def make(critical_after: int = 3, reset_cycles: int = 5) -> Watchdog:
    return Watchdog(WatchdogConfig(critical_after_errors=critical_after, warn_reset_cycles=reset_cycles))


def run(dog: Watchdog, *steps: str) -> list[Level]:
    return [dog.evaluate(SAMPLES[s]).level for s in steps]


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("ws_lag_ms", 499.9, Level.OK),
        ("ws_lag_ms", 500.0, Level.WARN),
        ("ws_lag_ms", 2000.0, Level.ERROR),
        ("redis_heartbeat_age_ms", 2999.0, Level.OK),
        ("redis_heartbeat_age_ms", 3000.0, Level.WARN),
        ("redis_heartbeat_age_ms", 10_000.0, Level.ERROR),
        ("loop_latency_ms", 249.0, Level.OK),
        ("loop_latency_ms", 500.0, Level.WARN),
        ("loop_latency_ms", 2500.0, Level.ERROR),
        ("safety_rejections_per_minute", 299.0, Level.OK),
        ("safety_rejections_per_minute", 300.0, Level.WARN),
        ("safety_rejections_per_minute", 3000.0, Level.ERROR),
        ("live_errors_per_minute", 4.0, Level.OK),
        ("live_errors_per_minute", 5.0, Level.WARN),
        ("live_errors_per_minute", 30.0, Level.ERROR),
    ],
)
def test_each_metric_is_graded_against_its_own_thresholds(metric: str, value: float, expected: Level) -> None:
    report = make().evaluate({metric: value})
    assert report.per_metric == {metric: expected}
    assert report.level == expected


def test_breach_lines_are_readable() -> None:
    report = make().evaluate({"loop_latency_ms": 2520.3, "ws_lag_ms": 600.0, "live_errors_per_minute": 0.0})
    assert report.breaches == ["ws_lag_ms=600.0 >= warn 500", "loop_latency_ms=2520.3 >= max 2500"]
    assert "OK -> ERROR" in report.describe()
    assert "loop_latency_ms=2520.3 >= max 2500" in report.describe()


def test_unmeasured_and_foreign_metrics_are_ignored() -> None:
    report = make().evaluate({"ws_lag_ms": None, "loop_latency_ms": float("nan"), "exec_rate": 99.0})
    assert report.per_metric == {}
    assert report.level == Level.OK
    assert report.breaches == []


def test_grade_helper_matches_the_rule() -> None:
    assert grade("x", 5.0, 5.0, 10.0) == (Level.WARN, "x=5.0 >= warn 5")
    assert grade("x", 10.0, 5.0, 10.0) == (Level.ERROR, "x=10.0 >= max 10")
    assert grade("x", 4.99, 5.0, 10.0) == (Level.OK, None)


# Every transition of the state machine, as a table of step sequences and the levels they yield.
@pytest.mark.parametrize(
    ("steps", "levels"),
    [
        (["ok"], [Level.OK]),
        (["warn"], [Level.WARN]),
        (["error"], [Level.ERROR]),
        (["warn", "error"], [Level.WARN, Level.ERROR]),
        (["error", "warn"], [Level.ERROR, Level.WARN]),
        (["error", "ok"], [Level.ERROR, Level.WARN]),  # ERROR steps down through WARN
        (["error", "error", "error"], [Level.ERROR, Level.ERROR, Level.CRITICAL]),
        (["error", "error", "warn", "error", "error"], [Level.ERROR] * 2 + [Level.WARN] + [Level.ERROR] * 2),
        (["error", "error", "ok", "error", "error"], [Level.ERROR] * 2 + [Level.WARN] + [Level.ERROR] * 2),
        # WARN auto-resets after 5 consecutive clean evaluations, not before
        (["warn", "ok", "ok", "ok", "ok", "ok"], [Level.WARN] * 5 + [Level.OK]),
        (["warn", "ok", "ok", "ok", "ok", "warn", "ok"], [Level.WARN] * 7),
        # from ERROR the 5 clean evaluations include the one that stepped down to WARN
        (["error", "ok", "ok", "ok", "ok", "ok"], [Level.ERROR] + [Level.WARN] * 4 + [Level.OK]),
        (
            ["error", "error", "error", "ok", "ok", "ok", "ok", "ok", "ok"],
            [Level.ERROR] * 2 + [Level.CRITICAL] * 7,
        ),
    ],
)
def test_transitions(steps: list[str], levels: list[Level]) -> None:
    assert run(make(critical_after=3, reset_cycles=5), *steps) == levels


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_critical_after_exactly_n_consecutive_errors(n: int) -> None:
    dog = make(critical_after=n)
    levels = run(dog, *["error"] * n)
    assert levels[-1] == Level.CRITICAL
    assert all(level == Level.ERROR for level in levels[:-1])


def test_warn_reset_cycles_one_needs_a_single_clean_evaluation() -> None:
    assert run(make(reset_cycles=1), "warn", "ok") == [Level.WARN, Level.OK]
    assert run(make(reset_cycles=1), "error", "ok", "ok") == [Level.ERROR, Level.WARN, Level.OK]


def test_report_tracks_change_and_consecutive_errors() -> None:
    dog = make()
    first = dog.evaluate(ERROR)
    assert (first.previous, first.level, first.changed, first.consecutive_errors) == (
        Level.OK,
        Level.ERROR,
        True,
        1,
    )
    second = dog.evaluate(ERROR)
    assert (second.changed, second.consecutive_errors) == (False, 2)
    third = dog.evaluate(ERROR)
    assert (third.previous, third.level, third.changed, third.consecutive_errors) == (
        Level.ERROR,
        Level.CRITICAL,
        True,
        3,
    )
    after = dog.evaluate(OK)
    assert (after.level, after.changed) == (Level.CRITICAL, False)
    assert dog.level == Level.CRITICAL


def test_external_levels_join_the_evaluation() -> None:
    dog = make(critical_after=2)
    report = dog.evaluate(OK, {"rss_mb": Level.WARN})
    assert report.level == Level.WARN
    assert report.per_metric["rss_mb"] == Level.WARN
    assert "rss_mb=WARN" in report.breaches
    assert dog.evaluate(OK, {"cpu_pct": Level.ERROR}).level == Level.ERROR
    # an external CRITICAL counts as one more ERROR evaluation, the count decides
    assert dog.evaluate(OK, {"cpu_pct": Level.CRITICAL}).level == Level.CRITICAL


def test_external_critical_alone_is_only_an_error() -> None:
    assert make(critical_after=3).evaluate(OK, {"cpu_pct": Level.CRITICAL}).level == Level.ERROR


steps_strategy = st.lists(st.sampled_from(["ok", "warn", "error"]), max_size=60)


@given(steps=steps_strategy, n=st.integers(min_value=1, max_value=5), reset=st.integers(1, 6))
def test_property_critical_is_terminal_and_needs_n_consecutive_errors(
    steps: list[str], n: int, reset: int
) -> None:
    dog = make(critical_after=n, reset_cycles=reset)
    levels = run(dog, *steps)
    if Level.CRITICAL in levels:
        first = levels.index(Level.CRITICAL)
        assert all(level == Level.CRITICAL for level in levels[first:])
        assert first + 1 >= n
        assert steps[first + 1 - n : first + 1] == ["error"] * n
    # never CRITICAL without a run of n errors somewhere
    runs, best = 0, 0
    for s in steps:
        runs = runs + 1 if s == "error" else 0
        best = max(best, runs)
    assert (Level.CRITICAL in levels) == (best >= n)


@given(steps=steps_strategy)
def test_property_level_is_never_above_worst_allowed(steps: list[str]) -> None:
    levels = run(make(), *steps)
    for step, level in zip(steps, levels, strict=True):
        if level == Level.CRITICAL:
            continue
        if step == "error":
            assert level == Level.ERROR
        elif step == "warn":
            assert level == Level.WARN
        else:
            assert level in (Level.OK, Level.WARN)


def test_every_configured_metric_is_known() -> None:
    cfg = WatchdogConfig()
    for name in METRICS:
        assert getattr(cfg, f"warn_{name}") <= getattr(cfg, f"max_{name}")
