"""The fleet's one risk budget in Redis: workers reserve exposure, a position slot, balances and
order rate atomically (Lua) before an entry's orders go out, and give them back when it concludes.

Keys, under `{fleet.key_prefix}:`
  workers          set of the worker names that hold (or held) reservations
  res:{instance}   hash, pair id -> {"x": exposure, "b": {"venue|asset": amount}}; its TTL is the
                   worker's lease, refreshed by a thread of its own, so the reservations of a worker
                   killed with SIGKILL vanish within `fleet.lease_s`
  orders:{venue}   sorted set, the fleet's orders on the venue in the last 60 s (by Redis TIME)
  daily:{day}      the fleet's realized PnL of the trading day, in the accounting currency

A reservation's exposure and slot last while its position is open; its balances only while its
orders are in flight (`settle`). Sums are taken over every live worker's hash at each reserve, so
nothing has to be given back by a worker that died: its hash expiring is the release.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.errors import ConfigError
from arbitrage.store.redis_backoff import ReconnectBackoff

log = logging.getLogger("arbitrage.fleet")

T = TypeVar("T")
_OUTAGE_ERRORS = (RedisError, OSError)
DAY_KEY_TTL_S = 3 * 86_400  # a trading day's counter outlives the day by enough for any report
ORDER_WINDOW_S = 60.0

# The shared limits in order; the first that fails names the refusal. Every worker's reservations
# are summed, and a worker whose hash has expired (its lease ran out) is dropped from the set.
_RESERVE = """
local p, me, pair = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, exposure = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_exposure, max_positions = tonumber(ARGV[6]), tonumber(ARGV[7])
local day, loss_limit, max_rate = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local i = 12
local want, avail, buckets = {}, {}, {}
for _ = 1, tonumber(ARGV[11]) do
  local b = ARGV[i]
  want[b], avail[b] = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  buckets[#buckets + 1] = b
  i = i + 3
end
local venues = {}
for _ = 1, tonumber(ARGV[i]) do
  i = i + 1
  venues[#venues + 1] = ARGV[i]
end
local realized = tonumber(redis.call('GET', p .. ':daily:' .. day) or '0')
if realized <= -loss_limit then
  return {'daily loss', string.format('fleet realized pnl %.0f <= -%.0f', realized, loss_limit)}
end
local slots, total, held = 0, 0, {}
for _, w in ipairs(redis.call('SMEMBERS', p .. ':workers')) do
  local entries = redis.call('HVALS', p .. ':res:' .. w)
  if #entries == 0 and w ~= me then redis.call('SREM', p .. ':workers', w) end
  for _, raw in ipairs(entries) do
    local r = cjson.decode(raw)
    slots = slots + 1
    total = total + r.x
    for b, amount in pairs(r.b) do held[b] = (held[b] or 0) + amount end
  end
end
if slots + 1 > max_positions then
  return {'open positions', string.format('%d open or in flight, max %d', slots, max_positions)}
end
if total + exposure > max_exposure then
  return {'exposure', string.format('fleet exposure %.0f + %.0f > %.0f', total, exposure, max_exposure)}
end
for _, b in ipairs(buckets) do
  if (held[b] or 0) + want[b] > avail[b] then
    local detail = string.format('%s: %.8g in flight + %.8g > %.8g held', b, held[b] or 0, want[b], avail[b])
    return {'balance', detail}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for _, v in ipairs(venues) do
  local z = p .. ':orders:' .. v
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 60)
  local n = redis.call('ZCARD', z)
  if n + 1 > max_rate then
    return {'order rate', string.format('%s: %d orders in the last minute, max %d', v, n, max_rate)}
  end
end
for _, v in ipairs(venues) do
  local z = p .. ':orders:' .. v
  redis.call('ZADD', z, now, me .. '|' .. pair)
  redis.call('PEXPIRE', z, 61000)
end
local mine = p .. ':res:' .. me
local reserved = {}
for _, b in ipairs(buckets) do reserved[b] = want[b] end
redis.call('HSET', mine, pair, cjson.encode({x = exposure, b = reserved}))
redis.call('PEXPIRE', mine, lease_ms)
redis.call('SADD', p .. ':workers', me)
return {'', ''}
"""

# An entry concluded with a position: its orders are done, so its balances are free; its exposure
# becomes the position's.
_SETTLE = """
local mine = ARGV[1] .. ':res:' .. ARGV[2]
local raw = redis.call('HGET', mine, ARGV[3])
if not raw then return 0 end
redis.call('HSET', mine, ARGV[3], cjson.encode({x = tonumber(ARGV[4]), b = {}}))
return 1
"""

# Keep only the reservations of the positions still open (and the lease).
_KEEP = """
local mine = ARGV[1] .. ':res:' .. ARGV[2]
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local dropped = 0
for _, pair in ipairs(redis.call('HKEYS', mine)) do
  if not keep[pair] then
    redis.call('HDEL', mine, pair)
    dropped = dropped + 1
  end
end
redis.call('PEXPIRE', mine, tonumber(ARGV[3]))
redis.call('SADD', ARGV[1] .. ':workers', ARGV[2])
return dropped
"""

# Orders that need no reservation (exits, repairs) still count against the venues' shared rate.
_COUNT_ORDERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 3, #ARGV do
  local z = ARGV[1] .. ':orders:' .. ARGV[i]
  redis.call('ZADD', z, now, ARGV[2] .. '|' .. string.format('%.6f', now) .. '|' .. i)
  redis.call('PEXPIRE', z, 61000)
end
return 1
"""


class BudgetUnreachable(Exception):
    """Redis did not answer (or is being left alone after a failure): no reservation was made."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The fleet-wide limits a reservation is checked against (from the safety section)."""

    max_exposure: float
    max_open_positions: int
    daily_loss_limit: float
    max_orders_per_minute: int

    @classmethod
    def of(cls, config: AppConfig) -> Limits:
        s = config.safety
        return cls(s.max_exposure, s.max_open_positions, s.daily_loss_limit, s.max_orders_per_minute)


@dataclass(frozen=True, slots=True)
class BalanceWant:
    """What an entry will spend of one venue's balance, and what the worker last saw it hold."""

    venue: str
    asset: str
    amount: float
    held: float


@dataclass(frozen=True, slots=True)
class WorkerReservations:
    """One worker's reservations as Redis holds them (for health and the fleet view)."""

    instance: str
    pairs: int
    exposure: float
    lease_ms: int  # what is left of the lease; -2 when the hash is gone


class RiskBudget:
    """The shared budget for one worker. Calls raise BudgetUnreachable when Redis cannot answer;
    after a failure they stay off the network for the reconnect backoff, so a dead Redis costs
    the loop one socket timeout every few seconds, not one per entry."""

    def __init__(
        self,
        url: str,
        key_prefix: str,
        instance: str,
        lease_s: float,
        limits: Limits,
        clock: Clock,
        socket_timeout_s: float = 0.2,
    ) -> None:
        if not key_prefix or ":" in key_prefix:
            raise ConfigError(f"fleet.key_prefix: expected a name without ':', found {key_prefix!r}")
        self.prefix = key_prefix
        self.instance = instance
        self.lease_ms = max(1, round(lease_s * 1000))
        self.limits = limits
        self._clock = clock
        self._backoff = ReconnectBackoff(clock, initial_s=min(1.0, lease_s / 4))
        try:
            self._client: redis.Redis = redis.Redis.from_url(
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
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._keep = self._client.register_script(_KEEP)
        self._count = self._client.register_script(_COUNT_ORDERS)
        self._lock = threading.Lock()  # the backoff is shared by the loop and the lease thread
        self._stop = threading.Event()
        self._lease_thread: threading.Thread | None = None

    @property
    def reservations_key(self) -> str:
        return f"{self.prefix}:res:{self.instance}"

    # -- the budget --------------------------------------------------------------------------

    def reserve(
        self, pair: str, exposure: float, balances: Sequence[BalanceWant], venues: Sequence[str], day: str
    ) -> tuple[str, str] | None:
        """Reserve an entry atomically against the fleet's limits: None when reserved, else
        (which limit, detail). The entry's legs count one order on each venue."""
        lim = self.limits
        args: list[str | int | float] = [
            self.prefix, self.instance, pair, self.lease_ms, exposure, lim.max_exposure,
            lim.max_open_positions, day, lim.daily_loss_limit, lim.max_orders_per_minute, len(balances),
        ]  # fmt: skip
        for want in balances:
            args += [f"{want.venue}|{want.asset}", want.amount, want.held]
        args += [len(venues), *venues]
        limit, detail = self._call("reserve", lambda: self._reserve(args=args))
        return None if not limit else (str(limit), str(detail))

    def settle(self, pair: str, exposure: float) -> None:
        """The pair's orders are done and it holds a position: free its balances, keep its exposure."""
        self._call("settle", lambda: self._settle(args=[self.prefix, self.instance, pair, exposure]))

    def keep_only(self, pairs: Iterable[str]) -> int:
        """Release every reservation of this worker but `pairs`; renews the lease. How many went."""
        args: list[str | int] = [self.prefix, self.instance, self.lease_ms, *pairs]
        return int(self._call("release", lambda: self._keep(args=args)))

    def rebuild(self, positions: Mapping[str, float]) -> None:
        """Replace this worker's reservations by its open positions (pair id -> exposure), as
        the ledger has them at start; whatever a previous run of this worker left is dropped."""
        key = self.reservations_key

        def run() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key)
            if positions:
                pipe.hset(key, mapping={p: json.dumps({"x": x, "b": {}}) for p, x in positions.items()})
                pipe.pexpire(key, self.lease_ms)
            pipe.sadd(f"{self.prefix}:workers", self.instance)
            pipe.execute()

        self._call("rebuild", run)

    def count_orders(self, venues: Sequence[str]) -> None:
        """Orders sent without a reservation (exits, repairs) in the venues' shared rate window."""
        if venues:
            self._call("count orders", lambda: self._count(args=[self.prefix, self.instance, *venues]))

    def add_realized(self, day: str, amount: Decimal) -> None:
        """Add to the fleet's realized PnL of `day` (at each booking, in the worker's loop)."""
        key = f"{self.prefix}:daily:{day}"

        def run() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.incrbyfloat(key, float(amount))
            pipe.expire(key, DAY_KEY_TTL_S)
            pipe.execute()

        self._call("daily pnl", run)

    def seed_day(self, day: str, realized: Decimal) -> None:
        """Start the day's counter from the ledger (which every worker books into) unless a worker
        already did: after a Redis restart the first worker to roll the day sets it."""
        key = f"{self.prefix}:daily:{day}"
        value = repr(float(realized))
        self._call("daily pnl", lambda: self._client.set(key, value, nx=True, ex=DAY_KEY_TTL_S))

    def fleet_realized(self, day: str) -> float | None:
        raw = self._call("daily pnl", lambda: self._client.get(f"{self.prefix}:daily:{day}"))
        return None if raw is None else float(raw)

    def workers(self) -> list[WorkerReservations]:
        """Every worker's reservations, for the fleet view (health, report, dashboards)."""

        def run() -> list[WorkerReservations]:
            names: list[str] = sorted(self._client.smembers(f"{self.prefix}:workers"))  # type: ignore[arg-type]
            found = []
            for name in names:
                key = f"{self.prefix}:res:{name}"
                values = [str(v) for v in self._client.hvals(key)]
                exposure = sum(float(json.loads(v)["x"]) for v in values)
                ttl = int(self._client.pttl(key))
                found.append(WorkerReservations(name, len(values), exposure, ttl))
            return found

        return self._call("read workers", run)

    def heartbeats(self, redis_prefix: str) -> dict[str, float]:
        """Every worker's last heartbeat (wall time) under redis.key_prefix: who is alive."""

        def run() -> dict[str, float]:
            found = {}
            for key in self._client.scan_iter(f"{redis_prefix}:*:heartbeat", count=200):
                raw = self._client.get(key)
                if raw is not None:
                    found[str(key).split(":")[-2]] = float(str(raw))
            return found

        return self._call("read heartbeats", run)

    # -- the lease ---------------------------------------------------------------------------

    def start_lease(self) -> None:
        """Renew the lease every third of it from a thread of its own: a tick that hangs on a venue
        must not let the reservations of a living worker expire; a dead process renews nothing."""
        if self._lease_thread is not None:
            return
        self._lease_thread = threading.Thread(target=self._renew, name="fleet-lease", daemon=True)
        self._lease_thread.start()

    def _renew(self) -> None:
        every_s = self.lease_ms / 3000.0
        while not self._stop.wait(every_s):
            # A failure is logged by _call: the reservations expire, and entries stop until Redis is back.
            with contextlib.suppress(BudgetUnreachable):
                self._call("lease", lambda: self._client.pexpire(self.reservations_key, self.lease_ms))

    def close(self) -> None:
        self._stop.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=2.0)
        try:
            self._client.close()
        except _OUTAGE_ERRORS as exc:
            log.debug("closing the fleet budget's redis connections: %s", exc)

    # -- internals ---------------------------------------------------------------------------

    def _call(self, what: str, op: Callable[[], T]) -> T:
        with self._lock:
            if self._stop.is_set() or self._backoff.waiting:
                raise BudgetUnreachable(f"shared risk budget unreachable ({what}: backing off)")
        try:
            result = op()
        except _OUTAGE_ERRORS as exc:
            with self._lock:
                first = self._backoff.failures == 0
                delay = self._backoff.failed()
            if first:
                log.warning(
                    "shared risk budget unreachable (%s: %s); no new entries; retry in %.1fs",
                    what,
                    exc,
                    delay,
                )
            raise BudgetUnreachable(f"shared risk budget unreachable ({what}: {type(exc).__name__})") from exc
        with self._lock:
            if self._backoff.failures:
                log.info("shared risk budget reachable again")
                self._backoff.succeeded()
        return result
