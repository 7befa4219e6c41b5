"""StreamHealth's rules on a fake clock: when a stream has failed, when it is restored, when to alert."""

from __future__ import annotations

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import MarketDataConfig
from arbitrage.venues.stream_health import Fallback, StreamHealth

CONFIG = MarketDataConfig(stale_after_s=5.0, recover_every_s=30.0, ws_error_threshold=3)


def make(clock: FakeClock | None = None) -> tuple[StreamHealth, FakeClock]:
    clock = clock or FakeClock()
    health = StreamHealth(CONFIG, clock)
    health.session_started()
    return health, clock


@pytest.mark.parametrize(
    ("errors", "silent_s", "failed"),
    [
        (0, 0.0, False),
        (2, 0.0, False),
        (3, 0.0, True),  # ws_error_threshold in a row on one symbol
        (0, 5.0, False),
        (0, 5.1, True),  # stale_after_s without an update
    ],
)
def test_failure_after_errors_in_a_row_or_silence(errors: int, silent_s: float, failed: bool) -> None:
    health, clock = make()
    for _ in range(errors):
        health.on_error("BTC/KRW", ConnectionError("reset"))
    clock.advance(silent_s)
    assert (health.failure() is not None) is failed


def test_an_update_resets_the_error_run_and_the_silence() -> None:
    health, clock = make()
    health.on_error("BTC/KRW", ConnectionError("reset"))
    health.on_error("BTC/KRW", ConnectionError("reset"))
    clock.advance(4.0)
    health.on_update("BTC/KRW", 10.0)
    health.on_error("BTC/KRW", ConnectionError("reset"))
    clock.advance(4.0)
    assert health.failure() is None
    assert health.errors == 3


def test_one_alert_per_episode_and_a_proven_restore() -> None:
    health, clock = make()
    health.on_update("BTC/KRW", 12.0)
    assert health.lag_ms == 12.0

    assert health.fall_back("no book update for 5.1s") is Fallback.NEW_EPISODE
    assert (health.state, health.lag_ms, health.fallbacks) == ("poll", None, 1)

    health.session_started()  # a restore attempt that fails
    assert health.fall_back("3 consecutive errors") is Fallback.PROBE_FAILED
    assert health.fallbacks == 1

    health.session_started()
    assert health.on_update("BTC/KRW", 20.0) is False  # a subscribe snapshot proves nothing yet
    assert health.state == "poll"
    assert health.on_update("BTC/KRW", 20.0) is True
    assert (health.state, health.restores, health.reconnects) == ("stream", 1, 2)

    clock.advance(10.0)
    assert health.fall_back("no book update for 5.1s") is Fallback.RELAPSE  # too soon: same outage

    health.session_started()
    health.on_update("BTC/KRW", 5.0)
    health.on_update("BTC/KRW", 5.0)
    clock.advance(2 * CONFIG.recover_every_s + CONFIG.stale_after_s)
    assert health.fall_back("no book update for 5.1s") is Fallback.NEW_EPISODE


def test_lag_is_smoothed_and_rest_fallbacks_are_counted() -> None:
    health, _ = make()
    health.on_update("BTC/KRW", 100.0)
    health.on_update("BTC/KRW", 200.0)
    assert health.lag_ms == pytest.approx(120.0)
    health.on_update("BTC/KRW", None)  # a book without an exchange timestamp leaves the lag alone
    assert health.lag_ms == pytest.approx(120.0)
    health.note_rest_fallback()
    health.note_rest_fallback()
    info = health.describe({"BTC/KRW": 0.1})
    assert info["rest_fallbacks"] == 2 and info["ws_lag_ms"] == pytest.approx(120.0)


def test_disabled_means_poll_for_good() -> None:
    health, _ = make()
    health.disable("market_data.use_websocket is off")
    assert health.state == "poll" and health.lag_ms is None
    assert health.describe({})["last_fallback_reason"] == "market_data.use_websocket is off"
