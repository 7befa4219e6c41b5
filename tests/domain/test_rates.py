from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.domain.rates import RateWindow


def test_counts_events_within_the_last_minute() -> None:
    w = RateWindow(60.0)
    w.add(100.0)
    w.add(100.5, 2)
    w.add(130.0, 3)
    assert w.count(130.0) == 6
    assert w.per_minute(130.0) == 6.0
    assert w.per_minute(159.9) == 6.0  # the events at 100.x are still inside (bucket 100 > 99.9)
    assert w.per_minute(160.0) == 3.0  # bucket 100 has left the window
    assert w.per_minute(190.0) == 0.0


def test_shorter_window_scales_to_per_minute() -> None:
    w = RateWindow(10.0)
    w.add(5.0, 4)
    assert w.per_minute(5.0) == 24.0
    assert w.per_minute(15.0) == 0.0


def test_memory_is_bounded_by_the_window() -> None:
    w = RateWindow(60.0)
    for i in range(10_000):
        w.add(i * 0.25)
    assert len(w._buckets) <= 61
    assert w.count(2_499.75) == 240  # 4 events a second over the 60 one-second buckets


def test_clock_stepping_back_lands_in_the_newest_bucket() -> None:
    w = RateWindow(60.0)
    w.add(50.0)
    w.add(49.2)
    assert w.count(50.0) == 2


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_rejects_a_meaningless_window(bad: float) -> None:
    with pytest.raises(ValueError):
        RateWindow(bad)


def test_rejects_negative_counts_and_ignores_zero() -> None:
    w = RateWindow()
    with pytest.raises(ValueError):
        w.add(1.0, -1)
    w.add(1.0, 0)
    assert w.count(1.0) == 0


@given(st.lists(st.tuples(st.floats(0, 500), st.integers(0, 5)), max_size=200))
def test_property_matches_a_brute_force_count_of_whole_seconds(events: list[tuple[float, int]]) -> None:
    events.sort()
    w = RateWindow(60.0)
    for t, n in events:
        w.add(t, n)
    now = events[-1][0] if events else 0.0
    expected = sum(n for t, n in events if int(t) > now - 60.0)
    assert w.count(now) == expected
