"""The bot's Redis presence: heartbeat, state snapshot and event stream, never stalling the loop
(see docs/ARCHITECTURE.md, Operations)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

import redis
from redis.exceptions import RedisError

from arbitrage.clock import Clock
from arbitrage.config import RedisConfig
from arbitrage.errors import ConfigError
from arbitrage.store.redis_backoff import ReconnectBackoff
from arbitrage.store.redis_client import loop_client

logger = logging.getLogger("arbitrage.redis")

T = TypeVar("T")

# Any of these means "Redis cannot serve us right now"; redis-py wraps socket faults, but a few
# OSErrors (e.g. from DNS resolution) can still escape it.
_OUTAGE_ERRORS = (RedisError, OSError)


class _Unreachable:
    """Marker result of a call that did not reach Redis (down, backing off, or closed)."""


_UNREACHABLE = _Unreachable()


def _to_json(obj: Any) -> Any:
    """json.dumps fallback: Decimal as exact strings, domain dataclasses and enums as plain data."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in Redis as JSON")


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, default=_to_json, separators=(",", ":"))


def _parse_ts(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


class RedisState:
    """Heartbeat, state snapshot and event stream under `{key_prefix}:{instance}:`.

    Every method returns a plain result (False, None, [] or the last known value) instead of
    raising when Redis is away, and after a failure it stays off the network until the
    reconnect backoff has passed, so a dead or hung Redis costs a tick at most one socket
    timeout every few seconds. Meant to be called from the loop's thread.
    """

    def __init__(
        self,
        url: str,
        key_prefix: str,
        instance: str,
        heartbeat_ttl_s: float,
        stream_maxlen: int,
        socket_timeout_s: float,
        clock: Clock,
        reconnect_backoff_s: float = 1.0,
    ) -> None:
        if not key_prefix:
            raise ConfigError("redis.key_prefix must not be empty")
        if not instance or ":" in instance or any(ch.isspace() for ch in instance):
            raise ConfigError(f"redis instance name must be non-empty, without ':' or spaces: {instance!r}")
        if heartbeat_ttl_s <= 0 or stream_maxlen <= 0 or socket_timeout_s <= 0:
            raise ConfigError("redis heartbeat_ttl_s, stream_maxlen and socket_timeout_s must be > 0")
        namespace = f"{key_prefix}:{instance}:"
        self.heartbeat_key = namespace + "heartbeat"
        self.state_key = namespace + "state"
        self.events_key = namespace + "events"
        self.console_key = namespace + "console"
        # PX rather than EX: a TTL below one second must still expire on time, not be rounded.
        self._ttl_ms = max(1, round(heartbeat_ttl_s * 1000))
        self._stream_maxlen = stream_maxlen
        self._clock = clock
        self._backoff = ReconnectBackoff(clock, initial_s=reconnect_backoff_s)
        self._client: redis.Redis = loop_client(url, socket_timeout_s)  # the backoff above paces it
        self._target = self._describe_target()
        self._available = False
        self._ever_connected = False
        self._down_since: float | None = None  # monotonic time of the first failure in a row
        self._last_beat_at: float | None = None  # wall time of the newest heartbeat known written
        self._closed = False

    @classmethod
    def from_config(cls, config: RedisConfig, instance: str, clock: Clock) -> RedisState:
        return cls(
            url=config.url,
            key_prefix=config.key_prefix,
            instance=instance,
            heartbeat_ttl_s=config.heartbeat_ttl_s,
            stream_maxlen=config.stream_maxlen,
            socket_timeout_s=config.socket_timeout_s,
            clock=clock,
        )

    @property
    def available(self) -> bool:
        """True when the last attempt reached Redis; False before the first one and while it is away."""
        return self._available

    # -- heartbeat --------------------------------------------------------------------------

    def heartbeat(self) -> bool:
        """Write the heartbeat (wall time, expiring after the TTL); False when Redis is unreachable."""
        now = self._clock.time()
        done = self._call("heartbeat", lambda r: r.set(self.heartbeat_key, repr(now), px=self._ttl_ms))
        if isinstance(done, _Unreachable):
            return False
        self._last_beat_at = now if self._last_beat_at is None else max(self._last_beat_at, now)
        return True

    def heartbeat_age_ms(self) -> float | None:
        """Age of the heartbeat stored in Redis, in ms.

        When Redis is unreachable or the key has expired, the age of the newest heartbeat known
        to have been written, so the age keeps growing while Redis is away. None if no heartbeat
        was ever written or seen.
        """
        now = self._clock.time()
        stored = self._call("heartbeat read", lambda r: r.get(self.heartbeat_key))
        if isinstance(stored, str):
            beat_at = _parse_ts(stored)
            if beat_at is not None:
                if self._last_beat_at is None or beat_at > self._last_beat_at:
                    self._last_beat_at = beat_at
                # Clamped: another host's clock may run slightly ahead of ours.
                return max(0.0, (now - beat_at) * 1000.0)
        if self._last_beat_at is None:
            return None
        return max(0.0, (now - self._last_beat_at) * 1000.0)

    # -- state snapshot ---------------------------------------------------------------------

    def save_state(self, state: Mapping[str, Any]) -> bool:
        """Store the snapshot as JSON (Decimal as exact strings); False when Redis is unreachable.

        A value that JSON cannot carry raises TypeError: that is a bug in the caller, not an outage.
        """
        payload = _dumps(state)
        done = self._call("save state", lambda r: r.set(self.state_key, payload))
        return not isinstance(done, _Unreachable)

    def load_state(self) -> dict[str, Any] | None:
        """The last saved snapshot; None when there is none, it is unreadable, or Redis is unreachable."""
        return self._load_object("state", self.state_key)

    def _load_object(self, what: str, key: str) -> dict[str, Any] | None:
        """The JSON object stored at `key`; None when absent, unreadable (logged) or Redis is away."""
        raw = self._call(f"load {what}", lambda r: r.get(key))
        if not isinstance(raw, str):
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            logger.warning("redis %s at %s is not valid JSON; ignoring it", what, key)
            return None
        if not isinstance(value, dict):
            logger.warning("redis %s at %s is not a JSON object; ignoring it", what, key)
            return None
        return value

    # -- the operator's console -------------------------------------------------------------

    def save_console(self, document: Mapping[str, Any]) -> bool:
        """Store the console state (what `arb watch --redis` shows), expiring with the heartbeat's
        TTL so that a dead bot's last picture is not shown as live; False when unreachable."""
        payload = _dumps(document)
        done = self._call("save console", lambda r: r.set(self.console_key, payload, px=self._ttl_ms))
        return not isinstance(done, _Unreachable)

    def load_console(self) -> dict[str, Any] | None:
        """The console state; None when there is none (no bot, or it died a TTL ago) or Redis is away."""
        return self._load_object("console", self.console_key)

    # -- event stream -----------------------------------------------------------------------

    def publish(self, kind: str, payload: Mapping[str, Any]) -> bool:
        """Append an event (trade, alert, watchdog level change) to the dashboard stream.

        The stream is trimmed to about `stream_maxlen` entries. Events published while Redis is
        away are dropped (False): the ledger and the logs remain the record.
        """
        fields = {"kind": kind, "ts": repr(self._clock.time()), "data": _dumps(payload)}
        done = self._call(
            "publish",
            lambda r: r.xadd(self.events_key, fields, maxlen=self._stream_maxlen, approximate=True),  # type: ignore[arg-type]
        )
        return not isinstance(done, _Unreachable)

    def events(self, count: int = 100) -> list[dict[str, Any]]:
        """The latest `count` events, oldest first, as {id, kind, ts, payload}; [] when unreachable."""
        if count <= 0:
            return []
        entries = self._call("read events", lambda r: r.xrevrange(self.events_key, count=count))
        if isinstance(entries, _Unreachable):
            return []
        events: list[dict[str, Any]] = []
        for entry_id, fields in reversed(entries or []):
            event = self._event_from_fields(entry_id, fields)
            if event is not None:
                events.append(event)
        return events

    # -- connection -------------------------------------------------------------------------

    def ping(self) -> bool:
        """One PING round trip (respecting the backoff); True when Redis answered."""
        answer = self._call("ping", lambda r: r.ping())
        return not isinstance(answer, _Unreachable) and bool(answer)

    def close(self) -> None:
        """Drop the connections; every later call answers as if Redis were unreachable."""
        if self._closed:
            return
        self._closed = True
        self._available = False
        try:
            self._client.close()
        except _OUTAGE_ERRORS as exc:
            logger.debug("closing redis connections to %s: %s", self._target, exc)

    # -- internals --------------------------------------------------------------------------

    def _call(self, what: str, op: Callable[[redis.Redis], T]) -> T | _Unreachable:
        """Run one Redis command unless closed or backing off; record and log the up/down transitions."""
        if self._closed or self._backoff.waiting:
            return _UNREACHABLE
        try:
            result = op(self._client)
        except _OUTAGE_ERRORS as exc:
            self._went_down(what, exc)
            return _UNREACHABLE
        self._came_up()
        return result

    def _went_down(self, what: str, exc: BaseException) -> None:
        delay = self._backoff.failed()
        self._available = False
        if self._down_since is None:
            self._down_since = self._clock.monotonic()
            logger.warning(
                "redis unreachable at %s (%s: %s: %s); running on without it, heartbeat age will grow; "
                "next attempt in %.1f s",
                self._target,
                what,
                type(exc).__name__,
                exc,
                delay,
            )
        else:
            logger.debug(
                "redis still unreachable at %s (%s: %s); next attempt in %.1f s",
                self._target,
                what,
                exc,
                delay,
            )

    def _came_up(self) -> None:
        self._available = True
        if self._down_since is not None:
            down_for = self._clock.monotonic() - self._down_since
            self._down_since = None
            self._backoff.succeeded()
            logger.info("redis reachable again at %s after %.1f s", self._target, down_for)
        elif not self._ever_connected:
            logger.info("redis connected at %s", self._target)
        self._ever_connected = True

    def _describe_target(self) -> str:
        """Where Redis is, for logs, without the credentials the URL may carry."""
        kwargs = self._client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']} db {kwargs.get('db', 0)}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)} db {kwargs.get('db', 0)}"

    @staticmethod
    def _event_from_fields(entry_id: object, fields: Mapping[Any, Any] | None) -> dict[str, Any] | None:
        """Decode one stream entry; None for entries some other writer left in the stream."""
        if not fields:
            return None
        try:
            return {
                "id": str(entry_id),
                "kind": fields["kind"],
                "ts": float(fields["ts"]),
                "payload": json.loads(fields["data"]),
            }
        except (KeyError, ValueError):
            return None
