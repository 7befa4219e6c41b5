"""`arb health`: checks what a run needs (config, log dir, ledger, Redis, venues) and says which fail.

Each check returns one row (name, OK / FAIL / SKIP, a one-line detail); a failing check never stops
the others, so one run of the command shows every problem at once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig
from arbitrage.domain.trading_day import trading_day
from arbitrage.ops.live_guards import check_live_guards
from arbitrage.ops.logs import RedactingFilter, secrets_from_env
from arbitrage.venues.base import Venue


class CheckStatus(Enum):
    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not applicable in this configuration or mode; does not fail the command


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    detail: str

    @property
    def failed(self) -> bool:
        return self.status is CheckStatus.FAIL


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckStatus.OK, detail)


def fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckStatus.FAIL, detail)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckStatus.SKIP, detail)


def _describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The table reports every outcome; the components' own warnings would repeat it on stderr."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def check_config(config: AppConfig, source: str) -> CheckResult:
    return ok(
        "config",
        f"{source}: valid ({config.mode.current} mode, {len(config.venues)} venues, "
        f"{len(config.symbols)} assets)",
    )


def check_log_dir(log_dir: Path) -> CheckResult:
    """Creates the directory if needed and writes (then removes) a scratch file in it."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=log_dir, prefix=".arb-health-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as err:
        return fail("log dir", f"{log_dir} is not writable: {err.strerror or _describe_error(err)}")
    return ok("log dir", f"{log_dir} writable")


def _ledger_target(url: str) -> str:
    """The ledger's location for display: never the password a PostgreSQL URL may carry."""
    if url.startswith("sqlite:///"):
        return f"sqlite {url.removeprefix('sqlite:///')}"
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme} {host}{port}{parts.path}"


def check_ledger(url: str, synchronous: str, instance: str) -> CheckResult:
    """Opens the ledger the bot would open (creating and migrating it, as a start would)."""
    from arbitrage.store.ledger import open_ledger

    target = _ledger_target(url)
    try:
        ledger = open_ledger(url, synchronous, instance)
    except Exception as err:
        return fail("ledger", f"{target}: {_describe_error(err)}")
    try:
        version = ledger.schema_version()
        positions = len(ledger.open_positions())
        orders = len(ledger.open_orders())
    except Exception as err:
        return fail("ledger", f"{target}: opened but unreadable: {_describe_error(err)}")
    finally:
        ledger.close()
    return ok(
        "ledger",
        f"{target}: schema version {version}, {positions} open position(s), {orders} open order(s)",
    )


def check_instance_lock(url: str, data_dir: Path, instance: str, clock: Clock) -> CheckResult:
    """Who runs on this ledger now, read without taking anything: a running bot is not a failure."""
    from arbitrage.store.instance_lock import describe_holders

    try:
        holders = describe_holders(url, data_dir, instance, clock.time())
    except Exception as err:  # an unreachable ledger already fails the ledger row
        return skip("instance lock", f"not read: {_describe_error(err)}")
    if holders:
        running = "; ".join(holders)
        return ok("instance lock", f"a bot is running here, a second one would be refused: {running}")
    return ok("instance lock", "free: no bot is running on this ledger and data dir")


def _redis_target(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379} db {db}"


def check_redis(config: AppConfig, clock: Clock) -> CheckResult:
    if not config.redis.enabled:
        return skip("redis", "redis.enabled is false: state lives in the ledger and memory")
    from arbitrage.store.redis_state import RedisState

    try:
        redis = RedisState.from_config(config.redis, config.instance, clock)
    except Exception as err:
        return fail("redis", _describe_error(err))
    try:
        reachable = redis.ping()
    finally:
        redis.close()
    target = _redis_target(config.redis.url)
    if reachable:
        return ok("redis", f"PING answered at {target}")
    return fail("redis", f"no answer at {target} within {config.redis.socket_timeout_s:g}s")


def check_fleet(config: AppConfig, clock: Clock) -> list[CheckResult]:
    """Every worker of the fleet: its heartbeat and what it holds of the shared budget."""
    if not config.fleet.enabled:
        return []  # a single bot: its limits are its own, and the rows above say all
    from arbitrage.store.fleet_state import read_fleet
    from arbitrage.store.risk_budget import Limits, RiskBudget

    fleet, limits = config.fleet, Limits.of(config)
    budget = RiskBudget(config.redis.url, fleet.key_prefix, config.instance, fleet.lease_s, limits, clock)
    day = trading_day(clock.time(), config.safety.trading_day_utc_offset_h)
    try:
        fleet_state = read_fleet(budget, config.redis.key_prefix, day)
    except Exception as err:
        return [fail("fleet", f"shared budget unreadable at {_redis_target(config.redis.url)}: {err}")]
    finally:
        budget.close()
    now, beats, held, realized = clock.time(), fleet_state.beats, fleet_state.held, fleet_state.realized
    slots = sum(w.pairs for w in held.values())
    exposure = sum(w.exposure for w in held.values())
    rows = [
        ok(
            "fleet",
            f"{len(beats)} worker(s) alive; {slots}/{limits.max_open_positions} positions reserved, "
            f"exposure {exposure:,.0f}/{limits.max_exposure:,.0f}; day {day} realized "
            f"{realized or 0:,.0f} (loss limit {limits.daily_loss_limit:,.0f})",
        )
    ]
    for name in fleet_state.names:
        w = held.get(name)
        holds = f"{w.pairs} reservation(s), exposure {w.exposure:,.0f}" if w else "no reservation"
        if name in beats:
            rows.append(ok(f"worker {name}", f"heartbeat {max(0.0, now - beats[name]):.1f}s ago; {holds}"))
            continue
        left = ""
        if w and w.pairs:
            left = "; they count against the fleet's limits until it restarts"
        if w and w.in_flight and w.lease_ms > 0:
            left += f"; balances of {w.in_flight} in flight freed in {w.lease_ms / 1000:.1f}s"
        rows.append(fail(f"worker {name}", f"no heartbeat (stopped or dead); {holds}{left}"))
    return rows


def check_venues(config: AppConfig, clock: Clock, env: Mapping[str, str]) -> list[CheckResult]:
    """One row per venue: every configured asset's book (and the FX book) read once."""
    from arbitrage.venues.build import build_venues

    try:
        venues = build_venues(config, clock, env)
    except Exception as err:
        return [fail("venues", f"could not be built: {_describe_error(err)}")]
    rows: list[CheckResult] = []
    try:
        for hook in venues.before_tick:
            hook()  # the mock market has books only once it has stepped
        for name, venue in venues.by_name.items():
            rows.append(_read_books(config, name, venue))
    finally:
        venues.close()
    return rows


def _read_books(config: AppConfig, name: str, venue: Venue) -> CheckResult:
    symbols = [config.venue_symbol(name, asset) for asset in config.symbols]
    if config.fx.source == "venue" and config.fx.venue == name:
        symbols.append(config.fx.symbol)
    read: list[str] = []
    for symbol in symbols:
        try:
            book = venue.order_book(symbol, 1)
        except Exception as err:
            return fail(f"venue {name}", f"{symbol}: {_describe_error(err)}")
        if book.best_bid is None or book.best_ask is None:
            return fail(f"venue {name}", f"{symbol}: the book has an empty side")
        read.append(f"{symbol} {book.best_bid:.10g}/{book.best_ask:.10g}")
    return ok(f"venue {name}", "books read: " + ", ".join(read))


def check_live_guards_row(config: AppConfig, env: Mapping[str, str], cwd: Path) -> CheckResult:
    failed = check_live_guards(config, env, cwd)
    if failed:
        return fail("live guards", "; ".join(failed))
    return ok("live guards", "every static guard holds (the dry run follows at start)")


def run_health_checks(
    config: AppConfig,
    *,
    source: str,
    log_dir: Path,
    data_dir: Path,
    env: Mapping[str, str],
    clock: Clock | None = None,
    cwd: Path | None = None,
) -> list[CheckResult]:
    """Every check, in the order a start needs them; details are redacted of secret values."""
    from arbitrage.store.ledger import ledger_url

    clock = clock or SystemClock()
    checks: list[Callable[[], list[CheckResult]]] = [
        lambda: [check_config(config, source)],
        lambda: [check_log_dir(log_dir)],
        lambda: [check_ledger(ledger_url(config, data_dir), config.storage.synchronous, config.instance)],
        lambda: [check_instance_lock(ledger_url(config, data_dir), data_dir, config.instance, clock)],
        lambda: [check_redis(config, clock)],
        lambda: check_fleet(config, clock),
        lambda: check_venues(config, clock, env),
    ]
    if config.mode.current == "live":
        checks.append(lambda: [check_live_guards_row(config, env, cwd or Path(os.getcwd()))])
    redactor = RedactingFilter(secrets_from_env(config, env))
    results: list[CheckResult] = []
    with _quiet_logs():
        for check in checks:
            try:
                rows = check()
            except Exception as err:  # a check that breaks is a failed check, not a crashed command
                rows = [fail("check", _describe_error(err))]
            results += [CheckResult(r.name, r.status, redactor.redact(r.detail)) for r in rows]
    return results
