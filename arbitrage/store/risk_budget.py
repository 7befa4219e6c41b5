"""The fleet's one risk budget in Redis: workers reserve exposure, a position slot, balances and
order rate atomically (Lua) before an entry's orders go out, and give them back when it concludes.

Keys, under `{fleet.key_prefix}:`
  workers          set of the worker names that hold (or held) reservations
  pos:{instance}   hash, pair id -> exposure, for each of the worker's entries from the moment it is
                   reserved until its position closes (or the worker, restarted, rebuilds it from
                   the ledger); fields `~n`, `~x` are their count and sum. No TTL: a dead worker's
                   positions are still open, so they keep counting against the fleet's limits
  res:{instance}   hash, pair id -> {"venue|asset": amount}, the balances of the worker's entries in
                   flight; field `~` is their sum by venue and asset, present while the worker
                   lives. Its TTL is the worker's lease, renewed by a thread of its own, so what a
                   worker killed with SIGKILL had in flight is freed within `fleet.lease_s`
  orders:{venue}   sorted set, the fleet's orders on the venue in the last 60 s (by Redis TIME)
  daily:{day}      the fleet's realized PnL of the trading day, in the accounting currency

Why an entry's slot and exposure go to the unleased key as soon as it is reserved: its orders may
fill, and its position be booked in the ledger, an instant before the worker dies and can tell
Redis. Counted from the reservation on, the fleet's exposure as the ledger has it never passes the
limits, whenever a worker dies; what never filled is dropped when that worker restarts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import redis
from redis.exceptions import RedisError

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.errors import ConfigError
from arbitrage.store.redis_backoff import ReconnectBackoff
from arbitrage.store.redis_client import loop_client

log = logging.getLogger("arbitrage.fleet")

T = TypeVar("T")
_OUTAGE_ERRORS = (RedisError, OSError)
DAY_KEY_TTL_S = 3 * 86_400  # a trading day's counter outlives the day by enough for any report

# One script, one round trip per use. First this worker's own keys are brought up to date, when a
# keep list comes (the reservations it names stay, settled ones move their exposure to the position
# and lose their balances, the rest go; its figures are then summed again from its own keys, so
# they never drift), and its unreserved orders (exits, repairs) join the venues' rate windows.
# Then each entry in turn is checked against the shared limits, in order, the first that fails
# naming the refusal, and reserved if none does. Other workers are read through their sums alone
# (two fields each), so a check costs O(workers), not O(reservations), and decodes one small JSON
# per worker; a worker with neither key left is dropped from the set.
_BUDGET = """
local p, me = ARGV[1], ARGV[2]
local lease_ms, max_exposure, max_positions = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local day, loss_limit, max_rate = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local res, pos = p .. ':res:' .. me, p .. ':pos:' .. me
local SUM = 126  -- '~': the sums' fields; no reservation id starts with it
local function num(v) return string.format('%.17g', v) end
if ARGV[10] ~= '' then
  -- what this worker realized since it last said, into the fleet's day (before the loss check)
  local daily = p .. ':daily:' .. day
  redis.call('INCRBYFLOAT', daily, ARGV[10])
  redis.call('EXPIRE', daily, DAY_KEY_TTL_S)
end
local i = 11
local n, x, fly  -- this worker's slots and exposure (pos), and its balances in flight (res)
if ARGV[9] == '1' then
  local keep = {}
  for _ = 1, tonumber(ARGV[i]) do
    local pair, px = ARGV[i + 1], ARGV[i + 2]
    keep[pair] = true
    if px ~= '' then
      -- settled: the position's exposure, its balances freed; (re)written whole, so a Redis that
      -- restarted empty gets the worker's positions back
      redis.call('HSET', pos, pair, px)
      redis.call('HDEL', res, pair)
    end
    i = i + 2
  end
  i = i + 1
  n, x, fly = 0, 0, {}
  local flat = redis.call('HGETALL', pos)
  for k = 1, #flat, 2 do
    if string.byte(flat[k], 1) ~= SUM then
      if keep[flat[k]] then
        n, x = n + 1, x + tonumber(flat[k + 1])
      else
        redis.call('HDEL', pos, flat[k])
      end
    end
  end
  flat = redis.call('HGETALL', res)
  for k = 1, #flat, 2 do
    if string.byte(flat[k], 1) ~= SUM then
      if keep[flat[k]] then
        for b, amount in pairs(cjson.decode(flat[k + 1])) do fly[b] = (fly[b] or 0) + amount end
      else
        redis.call('HDEL', res, flat[k])
      end
    end
  end
else
  local sums = redis.call('HMGET', pos, '~n', '~x')
  n, x = tonumber(sums[1] or '0'), tonumber(sums[2] or '0')
  fly = cjson.decode(redis.call('HGET', res, '~') or '{}')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for k = 1, tonumber(ARGV[i]) do
  local z = p .. ':orders:' .. ARGV[i + k]
  redis.call('ZADD', z, now, me .. '|' .. string.format('%.6f', now) .. '|' .. k)
  redis.call('PEXPIRE', z, 61000)
end
i = i + tonumber(ARGV[i]) + 1
local results = {}
local entries = tonumber(ARGV[i])
i = i + 1
if entries > 0 then
  local realized = tonumber(redis.call('GET', p .. ':daily:' .. day) or '0')
  local slots, total, held = n, x, {}
  for b, amount in pairs(fly) do held[b] = amount end
  for _, w in ipairs(redis.call('SMEMBERS', p .. ':workers')) do
    if w ~= me then
      local sums = redis.call('HMGET', p .. ':pos:' .. w, '~n', '~x')
      local flying = redis.call('HGET', p .. ':res:' .. w, '~')
      if not sums[1] and not flying then
        redis.call('SREM', p .. ':workers', w)
      else
        slots, total = slots + tonumber(sums[1] or '0'), total + tonumber(sums[2] or '0')
        if flying then
          for b, amount in pairs(cjson.decode(flying)) do held[b] = (held[b] or 0) + amount end
        end
      end
    end
  end
  for _ = 1, entries do
    local pair, exposure_arg = ARGV[i], ARGV[i + 1]
    local exposure = tonumber(exposure_arg)
    i = i + 2
    local want, avail, buckets = {}, {}, {}
    for _ = 1, tonumber(ARGV[i]) do
      local b = ARGV[i + 1]
      want[b], avail[b] = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      buckets[#buckets + 1] = b
      i = i + 3
    end
    i = i + 1
    local venues = {}
    for _ = 1, tonumber(ARGV[i]) do
      i = i + 1
      venues[#venues + 1] = ARGV[i]
    end
    i = i + 1
    local limit, detail = '', ''
    if realized <= -loss_limit then
      limit, detail = 'daily loss', string.format('fleet realized pnl %.0f <= -%.0f', realized, loss_limit)
    elseif slots + 1 > max_positions then
      limit, detail = 'open positions', string.format('%d open or in flight, max %d', slots, max_positions)
    elseif total + exposure > max_exposure then
      limit = 'exposure'
      detail = string.format('fleet exposure %.0f + %.0f > %.0f', total, exposure, max_exposure)
    end
    if limit == '' then
      for _, b in ipairs(buckets) do
        if limit == '' and (held[b] or 0) + want[b] > avail[b] then
          limit = 'balance'
          detail = string.format('%s: %.8g in flight + %.8g > %.8g held', b, held[b] or 0, want[b], avail[b])
        end
      end
    end
    if limit == '' then
      for _, v in ipairs(venues) do
        local z = p .. ':orders:' .. v
        redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 60)
        local count = redis.call('ZCARD', z)
        if limit == '' and count + 1 > max_rate then
          limit = 'order rate'
          detail = string.format('%s: %d orders in the last minute, max %d', v, count, max_rate)
        end
      end
    end
    if limit == '' then
      for _, v in ipairs(venues) do
        local z = p .. ':orders:' .. v
        redis.call('ZADD', z, now, me .. '|' .. pair)
        redis.call('PEXPIRE', z, 61000)
      end
      local reserved = {}
      for _, b in ipairs(buckets) do
        reserved[b] = want[b]
        held[b] = (held[b] or 0) + want[b]
        fly[b] = (fly[b] or 0) + want[b]
      end
      redis.call('HSET', pos, pair, exposure_arg)
      redis.call('HSET', res, pair, cjson.encode(reserved))
      slots, total = slots + 1, total + exposure
      n, x = n + 1, x + exposure
    end
    results[#results + 1] = limit
    results[#results + 1] = detail
  end
end
if n > 0 then
  redis.call('HSET', pos, '~n', n, '~x', num(x))
else
  redis.call('DEL', pos)
end
-- the in-flight sums are always there while the worker lives: the lease's key never vanishes
-- under a living worker, so the lease thread finding it gone means Redis lost it
redis.call('HSET', res, '~', cjson.encode(fly))
redis.call('PEXPIRE', res, lease_ms)
redis.call('SADD', p .. ':workers', me)
return results
""".replace("DAY_KEY_TTL_S", str(DAY_KEY_TTL_S))


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
class EntryAsk:
    """One entry to reserve: its pair id, exposure (accounting currency), balances and the venues
    its two legs go to (one order each in their rate windows)."""

    pair: str
    exposure: float
    balances: Sequence[BalanceWant]
    venues: Sequence[str]


@dataclass(frozen=True, slots=True)
class WorkerReservations:
    """One worker's reservations as Redis holds them (for health and the fleet view)."""

    instance: str
    pairs: int  # entries reserved: open positions and entries in flight (a dead worker's too)
    exposure: float
    in_flight: int  # of those, entries whose balances are held (lapse with the lease)
    lease_ms: int  # what is left of the lease; -2 when the worker's lease is gone


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
        self._client: redis.Redis = loop_client(url, socket_timeout_s)
        self._script = self._client.register_script(_BUDGET)
        self._lock = threading.Lock()  # the backoff is shared by the loop and the lease thread
        self._lost = threading.Event()  # the lease thread found no reservations key to renew
        self._stop = threading.Event()
        self._lease_thread: threading.Thread | None = None

    @property
    def reservations_key(self) -> str:
        return f"{self.prefix}:res:{self.instance}"

    # -- the budget --------------------------------------------------------------------------

    def reserve(
        self, pair: str, exposure: float, balances: Sequence[BalanceWant], venues: Sequence[str], day: str
    ) -> tuple[str, str] | None:
        """Reserve one entry; None when reserved, else (which limit, detail). Leaves the worker's
        other reservations as they are."""
        return self.sync_and_reserve(None, (), [EntryAsk(pair, exposure, balances, venues)], day)[0]

    def sync_and_reserve(
        self,
        keep: Mapping[str, float | None] | None,
        unreserved_orders: Sequence[str],
        entries: Sequence[EntryAsk],
        day: str,
        realized: Decimal = Decimal(0),
    ) -> list[tuple[str, str] | None]:
        """In one atomic round trip: bring this worker's reservations to `keep` (reservation ->
        its position's exposure once settled, which frees its balances; None: unchanged; absent:
        released; `keep` None leaves them all), count `unreserved_orders` (one venue name per
        order) in the venues' rate windows, add `realized` to the fleet's PnL of `day`, then reserve
        `entries` in order against the fleet's limits. One result per entry: None when reserved,
        else (which limit, detail)."""
        lim = self.limits
        args: list[str | int | float] = [
            self.prefix, self.instance, self.lease_ms, lim.max_exposure, lim.max_open_positions, day,
            lim.daily_loss_limit, lim.max_orders_per_minute, 0 if keep is None else 1,
            repr(float(realized)) if realized else "",
        ]  # fmt: skip
        if keep is not None:
            args.append(len(keep))
            for pair, exposure in keep.items():
                args += [pair, "" if exposure is None else repr(float(exposure))]
        args += [len(unreserved_orders), *unreserved_orders, len(entries)]
        for e in entries:
            args += [e.pair, e.exposure, len(e.balances)]
            for want in e.balances:
                args += [f"{want.venue}|{want.asset}", want.amount, want.held]
            args += [len(e.venues), *e.venues]
        answer = self._call("reserve", lambda: self._script(args=args))
        flat = [str(v) for v in answer]
        return [None if not flat[k] else (flat[k], flat[k + 1]) for k in range(0, len(flat), 2)]

    def sync(
        self,
        keep: Mapping[str, float | None],
        unreserved_orders: Sequence[str] = (),
        day: str = "",
        realized: Decimal = Decimal(0),
    ) -> None:
        """Bring this worker's reservations to `keep` (see sync_and_reserve); renews the lease."""
        self.sync_and_reserve(keep, unreserved_orders, (), day, realized)

    def rebuild(self, positions: Mapping[str, float]) -> None:
        """Replace this worker's reservations by its open positions (pair id -> exposure), as
        the ledger has them at start; whatever a previous run of this worker left is dropped."""
        self.sync(dict(positions))

    def seed_day(self, day: str, realized: Decimal) -> bool:
        """Start the day's counter from the ledger (which every worker books into) unless a worker
        already did (False then): after a Redis restart the first worker back sets it."""
        key = f"{self.prefix}:daily:{day}"
        value = repr(float(realized))
        return bool(self._call("daily pnl", lambda: self._client.set(key, value, nx=True, ex=DAY_KEY_TTL_S)))

    def fleet_realized(self, day: str) -> float | None:
        raw = self._call("daily pnl", lambda: self._client.get(f"{self.prefix}:daily:{day}"))
        return None if raw is None else float(raw)

    def workers(self) -> list[WorkerReservations]:
        """Every worker's reservations, for the fleet view (health, report, dashboards)."""

        def run() -> list[WorkerReservations]:
            names: list[str] = sorted(self._client.smembers(f"{self.prefix}:workers"))  # type: ignore[arg-type]
            pipe = self._client.pipeline(transaction=True)  # one instant for the whole fleet
            for name in names:
                pipe.hmget(f"{self.prefix}:pos:{name}", "~n", "~x")
                pipe.hlen(f"{self.prefix}:res:{name}")
                pipe.pttl(f"{self.prefix}:res:{name}")
            answers = pipe.execute()
            found = []
            for k, name in enumerate(names):
                (n, x), fields, ttl = answers[3 * k : 3 * k + 3]
                in_flight = max(0, int(fields) - 1)  # less the sums' field
                found.append(WorkerReservations(name, int(n or 0), float(x or 0.0), in_flight, int(ttl)))
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

    def consoles(self, redis_prefix: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The console documents (runtime.console_state) the named workers last stored under
        redis.key_prefix, in one round trip; a worker with none (stopped, dead) is left out."""

        def run() -> dict[str, dict[str, Any]]:
            if not names:
                return {}
            raws = self._client.mget([f"{redis_prefix}:{name}:console" for name in names])
            found = {}
            for name, raw in zip(names, raws, strict=True):
                if raw is None:
                    continue  # no console state: the worker stopped, or never stored one
                with contextlib.suppress(ValueError):
                    document = json.loads(raw)
                    if isinstance(document, dict):
                        found[name] = document
            return found

        return self._call("read consoles", run)

    def forget_fleet(self) -> int:
        """Delete every key of this fleet (every worker's reservations, rate windows, day
        counters): for a benchmark or a test that is done with its prefix. How many went."""

        def run() -> int:
            keys = list(self._client.scan_iter(f"{self.prefix}:*", count=500))
            return int(self._client.delete(*keys)) if keys else 0

        return self._call("forget", run)

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
            # A failure is logged by _call: what is in flight expires, and entries stop until Redis is back.
            with contextlib.suppress(BudgetUnreachable):
                if not self._call("lease", self._renew_once):
                    self._lost.set()

    def _renew_once(self) -> bool:
        return bool(self._client.pexpire(self.reservations_key, self.lease_ms))

    def take_lost(self) -> bool:
        """True once after the lease thread found this worker's reservations gone (a Redis that
        restarted, or no reservation at all): the worker should write them again."""
        lost = self._lost.is_set()
        self._lost.clear()
        return lost

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
