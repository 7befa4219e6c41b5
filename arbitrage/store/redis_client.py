"""The one way the bot connects to Redis from its loop: short timeouts, no retries of redis-py's own."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from arbitrage.errors import ConfigError


def loop_client(url: str, socket_timeout_s: float) -> redis.Redis:
    """A client that answers within `socket_timeout_s` or fails; the caller's backoff decides when
    to try again. No connection is made here. redis-py's own retries are off (it would otherwise
    retry up to 10 times per command); RESP2 and no CLIENT SETINFO keep a reconnect to a single
    round trip or two. A malformed URL is a ConfigError naming redis.url."""
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            protocol=2,
            driver_info=None,
            decode_responses=True,
        )
    except ValueError as exc:
        raise ConfigError(f"redis.url: {exc}") from exc


def reply_parser() -> str:
    """Which parser redis-py reads replies with: hiredis (C, a dependency) or its pure-Python one."""
    from redis.utils import HIREDIS_AVAILABLE

    return "hiredis" if HIREDIS_AVAILABLE else "python"
