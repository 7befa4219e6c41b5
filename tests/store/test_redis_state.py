"""RedisState against the real Redis (db 13) and a private redis-server that is killed and restarted."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from arbitrage.clock import FakeClock
from arbitrage.config import RedisConfig
from arbitrage.errors import ConfigError
from arbitrage.store.redis_backoff import ReconnectBackoff
from arbitrage.store.redis_state import RedisState
from tests.store.redis_server import PrivateRedisServer, free_port

REAL_URL = "redis://127.0.0.1:6379/13"  # db 13 belongs to these tests
START_HINT = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
LOGGER = "arbitrage.redis"
# "Never stalls the loop": a refused or timed-out call costs at most one 0.2 s socket timeout;
# the bound is generous so a loaded 2-core machine cannot flake it.
QUICK_S = 1.0

T = TypeVar("T")
StateFactory = Callable[..., RedisState]


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def stored(client: redis.Redis, key: str) -> str:
    value = client.get(key)
    assert isinstance(value, str), f"{key} holds {value!r}"
    return value


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def infos_from(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.INFO and text in r.getMessage()
    ]


@pytest.fixture
def real_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(
        REAL_URL,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(f"Redis at 127.0.0.1:6379 is unreachable ({exc}); start it with: {START_HINT}")
    yield client
    client.close()


@pytest.fixture
def prefix(real_redis: redis.Redis) -> Iterator[str]:
    key_prefix = f"test-redis-state-{uuid.uuid4().hex[:12]}"
    yield key_prefix
    keys = list(real_redis.scan_iter(match=f"{key_prefix}:*"))
    if keys:
        real_redis.delete(*keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.25)


@pytest.fixture
def make_state(clock: FakeClock) -> Iterator[StateFactory]:
    """Builds RedisStates with test defaults (any argument overridable) and closes them afterwards."""
    made: list[RedisState] = []

    def build(url: str, key_prefix: str = "arb-test", **overrides: Any) -> RedisState:
        arguments: dict[str, Any] = {
            "instance": "bot-1",
            "heartbeat_ttl_s": 10.0,
            "stream_maxlen": 1000,
            "socket_timeout_s": 0.2,
            "clock": clock,
            "reconnect_backoff_s": 1.0,
        }
        arguments.update(overrides)
        state = RedisState(url=url, key_prefix=key_prefix, **arguments)
        made.append(state)
        return state

    yield build
    for state in made:
        state.close()


# -- heartbeat against the real Redis ---------------------------------------------------------


def test_heartbeat_writes_wall_time_with_ttl(
    real_redis: redis.Redis, prefix: str, clock: FakeClock, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix, heartbeat_ttl_s=10.0)

    assert state.heartbeat() is True

    key = f"{prefix}:bot-1:heartbeat"
    assert float(stored(real_redis, key)) == clock.time()
    assert 5_000 < real_redis.pttl(key) <= 10_000
    assert state.available is True


def test_sub_second_ttl_is_not_rounded_away(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix, heartbeat_ttl_s=0.5)

    assert state.heartbeat() is True

    assert 0 < real_redis.pttl(f"{prefix}:bot-1:heartbeat") <= 500


def test_heartbeat_age_is_read_back_and_grows(
    real_redis: redis.Redis, prefix: str, clock: FakeClock, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix)
    assert state.heartbeat_age_ms() is None

    state.heartbeat()
    assert state.heartbeat_age_ms() == pytest.approx(0.0)

    clock.advance(2.5)
    assert state.heartbeat_age_ms() == pytest.approx(2_500.0)

    # The age comes from what Redis holds, not from memory: an older stored beat shows as older.
    real_redis.set(state.heartbeat_key, repr(clock.time() - 7.0))
    assert state.heartbeat_age_ms() == pytest.approx(7_000.0)


def test_expired_heartbeat_falls_back_to_last_beat_written(
    real_redis: redis.Redis, prefix: str, clock: FakeClock, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix)
    state.heartbeat()
    clock.advance(3.0)
    real_redis.delete(state.heartbeat_key)  # what the TTL does when the loop stops beating

    assert state.heartbeat_age_ms() == pytest.approx(3_000.0)
    clock.advance(2.0)
    assert state.heartbeat_age_ms() == pytest.approx(5_000.0)


def test_heartbeat_left_by_a_previous_run_is_seen(
    prefix: str, clock: FakeClock, make_state: StateFactory
) -> None:
    make_state(REAL_URL, prefix).heartbeat()
    clock.advance(4.0)

    restarted = make_state(REAL_URL, prefix)

    assert restarted.heartbeat_age_ms() == pytest.approx(4_000.0)


# -- state snapshot ---------------------------------------------------------------------------


class Side(Enum):
    BUY = "buy"


@dataclass(frozen=True, slots=True)
class Leg:
    venue: str
    side: Side
    qty: Decimal


def test_state_round_trip_keeps_decimals_exact(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix)
    assert state.load_state() is None

    saved = state.save_state(
        {
            "halted": False,
            "daily_pnl": Decimal("-1234.5678"),
            "positions": [
                {"id": "p1", "qty": Decimal("0.12345678"), "legs": [Leg("upbit", Side.BUY, Decimal("0.1"))]}
            ],
        }
    )

    assert saved is True
    assert json.loads(stored(real_redis, f"{prefix}:bot-1:state"))["daily_pnl"] == "-1234.5678"
    assert state.load_state() == {
        "halted": False,
        "daily_pnl": "-1234.5678",
        "positions": [
            {"id": "p1", "qty": "0.12345678", "legs": [{"venue": "upbit", "side": "buy", "qty": "0.1"}]}
        ],
    }
    assert Decimal(state.load_state()["positions"][0]["qty"]) == Decimal("0.12345678")  # type: ignore[index]


@pytest.mark.parametrize("stored", ["{not json", "[1, 2]", '"text"'])
def test_unreadable_state_loads_as_none(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory, stored: str
) -> None:
    state = make_state(REAL_URL, prefix)
    real_redis.set(state.state_key, stored)

    assert state.load_state() is None


def test_state_that_json_cannot_carry_is_a_caller_bug(prefix: str, make_state: StateFactory) -> None:
    state = make_state(REAL_URL, prefix)

    with pytest.raises(TypeError, match="object"):
        state.save_state({"thing": object()})


# -- event stream -----------------------------------------------------------------------------


def test_events_come_back_latest_oldest_first(
    prefix: str, clock: FakeClock, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix)
    for n in range(5):
        assert state.publish("trade", {"n": n, "pnl": Decimal("1.10")}) is True
        clock.advance(1.0)

    latest = state.events(count=2)

    assert [e["payload"] for e in latest] == [{"n": 3, "pnl": "1.10"}, {"n": 4, "pnl": "1.10"}]
    assert [e["kind"] for e in latest] == ["trade", "trade"]
    assert [e["ts"] for e in latest] == [clock.time() - 2.0, clock.time() - 1.0]
    assert all(isinstance(e["id"], str) and "-" in e["id"] for e in latest)
    assert len(state.events()) == 5
    assert state.events(count=0) == []


def test_foreign_stream_entries_are_skipped(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory
) -> None:
    state = make_state(REAL_URL, prefix)
    state.publish("alert", {"text": "first"})
    real_redis.xadd(state.events_key, {"something": "else"})
    state.publish("alert", {"text": "second"})

    assert [e["payload"]["text"] for e in state.events()] == ["first", "second"]


def test_event_stream_is_capped_near_maxlen(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory
) -> None:
    maxlen = 20
    state = make_state(REAL_URL, prefix, stream_maxlen=maxlen)
    for n in range(400):
        state.publish("tick", {"n": n})

    # MAXLEN ~ trims whole stream nodes only, so up to one node's worth may remain above maxlen.
    node_entries = int(str(real_redis.config_get("stream-node-max-entries")["stream-node-max-entries"]))
    length = real_redis.xlen(state.events_key)
    assert maxlen <= length < maxlen + node_entries
    assert state.events(count=1)[0]["payload"] == {"n": 399}


# -- namespacing and construction ---------------------------------------------------------------


def test_keys_live_under_prefix_and_instance(
    real_redis: redis.Redis, prefix: str, make_state: StateFactory
) -> None:
    a = make_state(REAL_URL, prefix, instance="bot-a")
    b = make_state(REAL_URL, prefix, instance="bot-b")
    for state, name in ((a, "a"), (b, "b")):
        state.heartbeat()
        state.save_state({"who": name})
        state.publish("hello", {"who": name})

    assert set(real_redis.scan_iter(match=f"{prefix}:*")) == {
        f"{prefix}:{instance}:{part}"
        for instance in ("bot-a", "bot-b")
        for part in ("heartbeat", "state", "events")
    }
    assert a.load_state() == {"who": "a"}
    assert b.load_state() == {"who": "b"}
    assert [e["payload"] for e in b.events()] == [{"who": "b"}]


@pytest.mark.parametrize(
    ("key_prefix", "instance"),
    [("", "bot-1"), ("arb", ""), ("arb", "bot:1"), ("arb", "bot 1")],
)
def test_bad_names_are_config_errors(make_state: StateFactory, key_prefix: str, instance: str) -> None:
    with pytest.raises(ConfigError):
        make_state(REAL_URL, key_prefix, instance=instance)


def test_bad_url_is_a_config_error(make_state: StateFactory) -> None:
    with pytest.raises(ConfigError, match=r"redis\.url"):
        make_state("http://127.0.0.1:6379/0")


def test_from_config_uses_the_section(real_redis: redis.Redis, prefix: str, clock: FakeClock) -> None:
    config = RedisConfig(enabled=True, url=REAL_URL, key_prefix=prefix, heartbeat_ttl_s=3.0)
    state = RedisState.from_config(config, instance="main", clock=clock)
    try:
        assert state.heartbeat() is True
        assert 0 < real_redis.pttl(f"{prefix}:main:heartbeat") <= 3_000
        assert state.ping() is True
    finally:
        state.close()


def test_closed_state_stays_off_the_network(prefix: str, make_state: StateFactory) -> None:
    state = make_state(REAL_URL, prefix)
    assert state.ping() is True

    state.close()
    state.close()

    assert state.heartbeat() is False
    assert state.ping() is False
    assert state.available is False
    assert state.events() == []


# -- Redis away -------------------------------------------------------------------------------


def test_unreachable_redis_answers_quickly_without_raising(
    make_state: StateFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    state = make_state(f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0")
    calls: list[Callable[[], object]] = [
        state.heartbeat,
        state.heartbeat_age_ms,
        lambda: state.save_state({"a": 1}),
        state.load_state,
        lambda: state.publish("alert", {}),
        state.events,
        state.ping,
    ]

    answers = []
    for call in calls:
        answer, elapsed = timed(call)
        answers.append(answer)
        assert elapsed < QUICK_S

    assert answers == [False, None, False, None, False, [], False]
    assert state.available is False
    assert len(warnings_from(caplog)) == 1
    assert "127.0.0.1" in caplog.text
    assert "s3cret-pw" not in caplog.text


def test_hung_redis_costs_one_socket_timeout_then_nothing(make_state: StateFactory) -> None:
    # A listener that never accepts: the kernel completes the handshake, then nothing answers.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        state = make_state(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.2)

        beat, first = timed(state.heartbeat)
        again, second = timed(state.heartbeat)

    assert beat is False and again is False
    assert first < QUICK_S
    assert second < 0.05  # inside the backoff: no socket touched at all


def test_killed_redis_degrades_then_recovers_by_itself(
    private_server: PrivateRedisServer,
    clock: FakeClock,
    make_state: StateFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    state = make_state(private_server.url)
    assert state.heartbeat() is True
    assert state.save_state({"halted": False}) is True
    assert state.heartbeat_age_ms() == pytest.approx(0.0)

    private_server.kill()
    ages: list[float] = []
    for _ in range(30):  # 15 s of ticks: several backoff rounds, all failing
        clock.advance(0.5)
        beat, elapsed = timed(state.heartbeat)
        assert beat is False
        assert elapsed < QUICK_S
        age, elapsed = timed(state.heartbeat_age_ms)
        assert elapsed < QUICK_S
        assert age is not None
        ages.append(age)
        assert state.publish("tick", {}) is False

    assert ages == sorted(ages) and ages[-1] == pytest.approx(15_000.0)
    assert state.available is False
    assert len(warnings_from(caplog)) == 1

    private_server.start()  # same port, empty (no persistence)
    clock.advance(10.0)  # past the longest backoff
    assert state.heartbeat() is True
    assert state.heartbeat_age_ms() == pytest.approx(0.0)
    assert state.available is True
    assert state.save_state({"halted": True}) is True
    assert state.load_state() == {"halted": True}
    assert state.publish("alert", {"text": "redis back"}) is True
    assert len(infos_from(caplog, "reachable again")) == 1
    assert len(warnings_from(caplog)) == 1


def test_backoff_keeps_off_the_network_and_doubles(
    private_server: PrivateRedisServer, clock: FakeClock, make_state: StateFactory
) -> None:
    state = make_state(private_server.url, reconnect_backoff_s=1.0)
    assert state.heartbeat() is True

    private_server.kill()
    assert state.heartbeat() is False  # failure 1: wait 1 s
    private_server.start()
    # Redis is up again, yet inside the backoff nothing is sent: the answers stay "down".
    assert state.heartbeat() is False
    assert state.ping() is False
    clock.advance(1.0)
    assert state.heartbeat() is True

    private_server.kill()
    assert state.heartbeat() is False  # failure 1 again: the success reset the delay to 1 s
    clock.advance(1.0)
    assert state.heartbeat() is False  # failure 2: wait 2 s
    private_server.start()
    clock.advance(1.0)
    assert state.heartbeat() is False
    clock.advance(1.0)
    assert state.heartbeat() is True


# -- the backoff schedule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial_s", "delays"),
    [
        (1.0, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        (0.5, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]),
        (12.0, [12.0, 12.0]),  # a configured delay above the cap is honoured, never shortened
    ],
)
def test_backoff_doubles_up_to_the_cap(initial_s: float, delays: list[float]) -> None:
    backoff = ReconnectBackoff(FakeClock(), initial_s=initial_s)

    assert [backoff.failed() for _ in delays] == delays


def test_backoff_waits_then_allows_and_resets_on_success() -> None:
    clock = FakeClock()
    backoff = ReconnectBackoff(clock, initial_s=1.0)
    assert backoff.waiting is False

    backoff.failed()
    assert backoff.waiting is True
    clock.advance(0.99)
    assert backoff.waiting is True
    clock.advance(0.01)
    assert backoff.waiting is False

    backoff.failed()
    backoff.succeeded()
    assert (backoff.waiting, backoff.failures) == (False, 0)
    assert backoff.failed() == 1.0


def test_backoff_survives_days_of_failures() -> None:
    backoff = ReconnectBackoff(FakeClock())
    for _ in range(10_000):
        delay = backoff.failed()

    assert delay == 10.0


def test_backoff_rejects_a_non_positive_delay() -> None:
    with pytest.raises(ValueError):
        ReconnectBackoff(FakeClock(), initial_s=0.0)


def test_console_state_round_trips_and_expires_with_the_heartbeat_ttl(
    make_state: StateFactory, prefix: str, real_redis: redis.Redis
) -> None:
    state = make_state(REAL_URL, key_prefix=prefix, heartbeat_ttl_s=5.0)
    assert state.load_console() is None
    document = {"tick": 3, "halted": False, "today": {"realized": Decimal("1.50")}}
    assert state.save_console(document) is True
    assert state.load_console() == {"tick": 3, "halted": False, "today": {"realized": "1.50"}}
    assert 0 < real_redis.pttl(state.console_key) <= 5000
    assert state.console_key == f"{prefix}:bot-1:console"


def test_console_state_when_redis_is_away(make_state: StateFactory) -> None:
    state = make_state(f"redis://127.0.0.1:{free_port()}/0")
    assert state.save_console({"tick": 1}) is False
    assert state.load_console() is None
