"""BotState's trading day: the cached day span must move exactly when the calendar does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.runtime.state import BotState, trading_day

SECONDS = [0.0001, 0.5, 37.0, 3_599.9, 3_600.0, 86_399.99, 86_400.0, 200_000.0]
STEPS = st.lists(st.sampled_from(SECONDS), max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    offset_h=st.sampled_from([9.0, 0.0, -5.5, 5.75, 14.0, -12.0]),
    start=st.floats(min_value=1.6e9, max_value=1.9e9, allow_nan=False),
    steps=STEPS,
)
def test_roll_day_follows_the_calendar(offset_h: float, start: float, steps: list[float]) -> None:
    state = BotState("mock", "KRW", offset_h)
    assert state.roll_day(start)
    ts = start
    for step in steps:
        ts += step
        before = state.day
        changed = state.roll_day(ts)
        assert state.day == trading_day(ts, offset_h)
        assert changed == (state.day != before)


def test_the_kst_day_turns_at_midnight_seoul_time() -> None:
    state = BotState("mock", "KRW", 9.0)
    midnight_kst = 1_700_006_400.0 - 9 * 3600.0  # 2023-11-15 00:00 in Seoul
    assert state.roll_day(midnight_kst - 0.001)
    assert state.day == "2023-11-14"
    assert not state.roll_day(midnight_kst - 0.0005)
    assert state.roll_day(midnight_kst)
    assert state.day == "2023-11-15"
