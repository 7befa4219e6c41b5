"""The configuration: one frozen pydantic model per section, unknown keys rejected.

`load_config(path)` reads YAML, validates it, and raises ConfigError with one readable line per
problem (key path, what was expected, what was found). Secrets never live in the file: venues
and alerts name the environment variables that hold them.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from arbitrage.errors import ConfigError
from arbitrage.url_credentials import mask_url_credentials

DEFAULT_INSTANCE = "arb-1"  # the worker's name when the config gives none (a single bot)
SEED_MAX = 2**63 - 1  # the mock market's seed: any non-negative 64-bit integer
# A tick a day at the slowest: slower is a stopped bot that still holds positions (and 1e10 s
# overflows the platform's timers).
MAX_INTERVAL_S = 86_400.0
# Every number in the config is one of these. A config that parses is one the bot can trade on:
# YAML's .inf and .nan are not numbers here (an infinite loss limit turns the kill switch off, a NaN
# threshold compares false to everything), nor is `true` (a bool is an int to Python). Strict
# floats still take a YAML int (`max_notional: 5000000`); strict ints refuse 2.5 and "3".
Num = Annotated[float, Strict(), AllowInfNan(False)]
Int = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
NonNeg = Annotated[Num, Field(ge=0)]
Pos = Annotated[Num, Field(gt=0)]
Pct = Annotated[Num, Field(ge=0, le=100)]
Rate = Annotated[Num, Field(ge=0, le=1)]  # a probability per order or per book
PosInt = Annotated[Int, Field(gt=0)]
Seed = Annotated[Int, Field(ge=0, le=SEED_MAX)]
IntervalS = Annotated[Num, Field(ge=0, le=MAX_INTERVAL_S)]

BUILTIN_ENGINES = ("signal", "safety", "execution", "stoploss", "position")
# Of watchdog.max_loop_latency_ms, what a tick's reads may take when market_data.tick_read_budget_ms
# is unset: 2500 ms -> 1000 ms, the rest left for the engines and a trading tick's orders.
READ_BUDGET_SHARE = 0.4
# Exchanges that take a spot buy's fee from the coin bought (unless paid in BNB).
COIN_FEE_EXCHANGES = frozenset({"binance", "binanceus"})


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyProblem(ValueError):
    """A problem a validator finds in a key below its own level: `where` is relative to the validator.

    Cross-checks run where both keys are visible (a section or the whole config), yet the
    operator needs the exact key, e.g. `fx.venue` rather than the top level.
    """

    def __init__(self, where: str, expected: str, found: Any) -> None:
        super().__init__(f"{where}: expected {expected}, found {_describe(found)}")
        self.where = where
        self.expected = expected
        self.found = found


def in_order(model: BaseModel, *pairs: tuple[str, str]) -> None:
    """The lower key of each pair (min/max, warn/max) must not exceed the upper one.

    A pair the wrong way round does not fail loudly at run time: the engine quietly never trades,
    or never warns before it stops. Keys are dotted paths relative to `model`.
    """
    for low_key, high_key in pairs:
        low, high = _value(model, low_key), _value(model, high_key)
        if low > high:
            raise KeyProblem(low_key, f"at most {high_key} ({_describe(high)})", low)


def _value(model: BaseModel, key: str) -> Any:
    return functools.reduce(getattr, key.split("."), model)


V = TypeVar("V")


def asset_codes(mapping: dict[str, V]) -> dict[str, V]:
    """Keys that are asset or currency codes, as the venues spell them: upper case, each once.

    A `btc:` balance next to `BTC:` would silently replace it; a lone `btc:` would never be found.
    """
    codes: dict[str, V] = {}
    written: dict[str, str] = {}
    for key, value in mapping.items():
        if not key or not key.isalnum():
            raise KeyProblem(key, "an asset or currency code such as BTC or KRW", key)
        code = key.upper()
        if code in codes:
            raise KeyProblem(key, f"each asset once ({written[code]!r} is already listed)", key)
        codes[code], written[code] = value, key
    return codes


class ModeConfig(Section):
    current: Literal["mock", "paper", "live"] = "mock"


class LoopConfig(Section):
    interval_s: IntervalS = 1.0
    book_depth: Annotated[Int, Field(ge=1, le=200)] = 10
    # What starts a tick: "book" (a streamed book changed; interval_s is then the longest wait and
    # how often a full pass runs) or "interval" (the fixed grid). Unset: book in paper and live,
    # and in mock with mock.updates_per_s; interval otherwise.
    trigger: Literal["interval", "book"] | None = None
    # Book trigger: the least idle time between the end of one tick and the start of the next, so
    # a hot market cannot starve the rest of the process (health server, alerts, streams).
    min_gap_ms: Annotated[Num, Field(ge=0, le=1000)] = 1.0


class MockVenueConfig(Section):
    """How the simulated market quotes this venue."""

    half_spread_bps: NonNeg = 2.0
    depth_levels: Annotated[Int, Field(ge=1, le=200)] = 10
    level_notional: Pos = 20_000_000.0  # accounting currency per level
    level_step_bps: Pos = 1.5
    premium_pct: Num = 0.0  # this venue's long-run premium over the reference price


class VenueConfig(Section):
    exchange: str  # a ccxt exchange id, or "mock"
    quote: str
    taker_fee_pct: Annotated[Num, Field(ge=0, le=5)] = 0.1
    api_key_env: str | None = None
    api_secret_env: str | None = None
    sandbox: Flag = False
    urls: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    # simulated balances (mock, paper)
    balances: Annotated[dict[str, NonNeg], AfterValidator(asset_codes)] = Field(default_factory=dict)
    max_orders_per_s: Pos = 8.0
    timeout_ms: Annotated[Int, Field(ge=100, le=120_000)] = 10_000
    # The least time ccxt's own limiter leaves between two REST calls (its `rateLimit`, times the
    # call's cost); unset, the exchange's ccxt default (50 ms for Binance and Upbit). Lower it only
    # with an API tier that allows more; the bot's order pacing is max_orders_per_s either way.
    rate_limit_ms: Annotated[Int, Field(ge=0, le=60_000)] | None = None
    # The venue's circuit breaker: open after this many consecutive temporary failures, probe
    # again after the cooldown (real venues only).
    circuit_failures: PosInt = 5
    circuit_cooldown_s: Pos = 30.0
    # Where the venue takes a buy's fee: "base" from the coin bought (Binance), "quote" on top of
    # the price (Upbit), "other" in a third currency (Binance with BNB fees on). "auto" follows
    # the exchange: base on binance, quote elsewhere; a mock venue models Binance unless it
    # quotes KRW (Upbit). A fee taken from the coin is made up for by buying that much more.
    buy_fee_in: Literal["auto", "base", "quote", "other"] = "auto"
    mock: MockVenueConfig = MockVenueConfig()

    @property
    def buy_fee_in_base(self) -> bool:
        """Whether a buy's fee comes out of the coin bought (buy_fee_in, "auto" resolved)."""
        if self.buy_fee_in != "auto":
            return self.buy_fee_in == "base"
        if self.exchange == "mock":
            return self.quote != "KRW"
        return self.exchange in COIN_FEE_EXCHANGES

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, v: str) -> str:
        if v != "mock" and v not in known_exchange_ids():
            raise ValueError("a ccxt exchange id (such as upbit or binance) or mock")
        return v

    @field_validator("quote")
    @classmethod
    def _upper(cls, v: str) -> str:
        if not v or not v.isalnum():
            raise ValueError("a currency code such as KRW or USDT")
        return v.upper()


class FxConfig(Section):
    source: Literal["venue", "fixed"] = "venue"
    venue: str = "upbit"  # the venue whose market gives the rate
    symbol: str = "USDT/KRW"
    fixed: Annotated[dict[str, Pos], AfterValidator(asset_codes)] = Field(
        default_factory=lambda: {"USDT": 1380.0}
    )
    max_age_ms: Pos = 5000.0


class SignalConfig(Section):
    # Net of fees and slippage: at or below zero every entry pays to trade.
    min_spread_pct: Pos = 0.3
    max_notional: Pos = 5_000_000.0  # accounting currency per opportunity
    min_notional: NonNeg = 50_000.0
    slippage_buffer_pct: NonNeg = 0.0  # extra slippage assumed on top of the book walk

    @model_validator(mode="after")
    def _min_below_max(self) -> SignalConfig:
        in_order(self, ("min_notional", "max_notional"))
        return self


class SafetyConfig(Section):
    max_book_age_ms: Pos = 2000.0
    max_ws_lag_ms: Pos = 1000.0
    max_spread_pct: Pos = 5.0
    max_position_notional: Pos = 10_000_000.0
    max_open_positions: PosInt = 5
    max_exposure: Pos = 20_000_000.0  # below rebalancer.max_exposure, or entries and reductions churn
    daily_loss_limit: Pos = 1_000_000.0
    min_liquidity_notional: NonNeg = 100_000.0
    max_slippage_pct: Pct = 0.3
    require_redis_heartbeat: Flag = False
    max_heartbeat_age_ms: Pos = 5000.0
    max_orders_per_minute: PosInt = 120
    halt_file: str = ".halt"
    trading_day_utc_offset_h: Annotated[Num, Field(ge=-12, le=14)] = 9.0  # KST


class ExecutionConfig(Section):
    max_slippage_pct: Pct = 0.2
    max_unhedged_qty: NonNeg = 0.0001
    max_unhedged_qty_by_asset: Annotated[dict[str, NonNeg], AfterValidator(asset_codes)] = Field(
        default_factory=dict
    )
    hedge_retries: Annotated[Int, Field(ge=0, le=10)] = 2
    unwind_slippage_pct: Pct = 1.0
    unwind_attempts: Annotated[Int, Field(ge=1, le=20)] = 5
    client_id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,8}$")] = "arb"
    leg_timeout_s: Pos = 10.0

    def unhedged_limit(self, asset: str) -> float:
        return self.max_unhedged_qty_by_asset.get(asset, self.max_unhedged_qty)


class ExitConfig(Section):
    mode: Literal["reverse", "none"] = "reverse"
    # The reverse trade's net spread that takes profit; negative is a loss budget on the way out.
    min_spread_pct: Num = -0.1
    max_hold_s: Pos = 3600.0
    # A failed exit (a leg refused, the other unwound) waits before its next attempt: base, 2x,
    # 4x ... up to the cap; a stop loss up to its own, shorter cap (see engines.stoploss).
    retry_backoff_s: Pos = 1.0
    retry_backoff_max_s: Pos = 300.0
    stoploss_retry_backoff_max_s: Pos = 60.0

    @model_validator(mode="after")
    def _backoff_caps(self) -> ExitConfig:
        for cap in ("retry_backoff_max_s", "stoploss_retry_backoff_max_s"):
            if getattr(self, cap) < self.retry_backoff_s:
                raise KeyProblem(
                    cap, f"at least retry_backoff_s ({self.retry_backoff_s})", getattr(self, cap)
                )
        return self


class StoplossConfig(Section):
    mode: Literal["static", "dynamic"] = "static"
    static_pct: Pos = 1.0
    dynamic_k: Pos = 4.0
    dynamic_window: Annotated[Int, Field(ge=5, le=100_000)] = 120
    dynamic_min_pct: Pos = 0.3
    dynamic_max_pct: Pos = 3.0

    @model_validator(mode="after")
    def _min_below_max(self) -> StoplossConfig:
        in_order(self, ("dynamic_min_pct", "dynamic_max_pct"))
        return self


class RebalancerConfig(Section):
    max_exposure: Pos = 25_000_000.0
    inventory_drift_ratio: Annotated[Num, Field(gt=0, le=1)] = 0.5
    auto_reduce: Flag = True


class MockFaultsConfig(Section):
    reject_rate: Rate = 0.0
    partial_fill_rate: Rate = 0.0
    one_leg_failure_rate: Rate = 0.0
    stale_book_rate: Rate = 0.0
    stale_book_age_ms: Pos = 10_000.0
    latency_rate: Rate = 0.0
    latency_ms: NonNeg = 50.0


class MockAssetConfig(Section):
    price: Pos  # reference price in the accounting currency
    volatility_pct: NonNeg = 0.05  # per tick, of the reference price's random walk


class MockConfig(Section):
    seed: Seed = 42
    assets: Annotated[dict[str, MockAssetConfig], AfterValidator(asset_codes)] = Field(
        default_factory=lambda: {
            "BTC": MockAssetConfig(price=140_000_000.0),
            "ETH": MockAssetConfig(price=5_000_000.0),
        }
    )
    premium_mean_pct: Num = 0.2
    premium_vol_pct: NonNeg = 0.25
    premium_reversion: Annotated[Num, Field(gt=0, le=1)] = 0.15
    fx_rate: Pos = 1380.0
    fx_noise_pct: NonNeg = 0.01
    faults: MockFaultsConfig = MockFaultsConfig()
    # 0: the market moves one step before each tick. Above 0: it moves on a thread of its own this
    # many times a second and signals every changed book, as a venue's stream would.
    updates_per_s: Annotated[Num, Field(ge=0, le=1000)] = 0.0


class StorageConfig(Section):
    url: str | None = None  # default: sqlite:///<data dir>/ledger.sqlite3
    synchronous: Literal["FULL", "NORMAL"] = "FULL"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("a URL starting with sqlite:/// or postgresql://")
        return v


class RedisConfig(Section):
    enabled: Flag = False
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "arb"
    heartbeat_interval_s: Pos = 1.0
    heartbeat_ttl_s: Pos = 10.0
    stream_maxlen: PosInt = 10_000
    socket_timeout_s: Pos = 0.2

    @model_validator(mode="after")
    def _beat_before_expiry(self) -> RedisConfig:
        # A heartbeat that expires before the next one is written reads as a dead bot in between.
        if self.heartbeat_interval_s >= self.heartbeat_ttl_s:
            raise KeyProblem(
                "heartbeat_interval_s",
                f"below heartbeat_ttl_s ({_describe(self.heartbeat_ttl_s)})",
                self.heartbeat_interval_s,
            )
        return self


class FleetConfig(Section):
    """Several workers, one risk budget: the safety section's max_exposure, max_open_positions,
    daily_loss_limit, max_orders_per_minute (per venue) and the venues' balances are shared by every
    worker on the same Redis and key_prefix (see README, Running several workers)."""

    enabled: Flag = False
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "arb-fleet"
    # A killed worker's balances in flight are freed within this (its positions count until it
    # restarts); a living one renews it every third.
    lease_s: Annotated[Num, Field(ge=1, le=3600)] = 15.0
    socket_timeout_s: Pos = 0.2


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    console: Flag = True
    backup_count: Annotated[Int, Field(ge=1, le=365)] = 7


class WatchdogConfig(Section):
    warn_ws_lag_ms: Pos = 500.0
    max_ws_lag_ms: Pos = 2000.0
    warn_redis_heartbeat_age_ms: Pos = 3000.0
    max_redis_heartbeat_age_ms: Pos = 10_000.0
    warn_loop_latency_ms: Pos = 500.0
    max_loop_latency_ms: Pos = 2500.0  # a REST fallback tick on rate-limited venues takes ~1 s
    warn_safety_rejections_per_minute: Pos = 300.0
    max_safety_rejections_per_minute: Pos = 3000.0
    warn_live_errors_per_minute: Pos = 5.0
    max_live_errors_per_minute: Pos = 30.0
    critical_after_errors: PosInt = 3
    warn_reset_cycles: PosInt = 5
    # Evaluate over the worst values seen since the last evaluation, at most this often, so that
    # "N consecutive ERROR evaluations" means N seconds at any tick rate; 0 evaluates every tick.
    evaluate_every_s: NonNeg = 1.0

    @model_validator(mode="after")
    def _warn_below_max(self) -> WatchdogConfig:
        metrics = (
            "ws_lag_ms",
            "redis_heartbeat_age_ms",
            "loop_latency_ms",
            "safety_rejections_per_minute",
            "live_errors_per_minute",
        )
        in_order(self, *((f"warn_{m}", f"max_{m}") for m in metrics))
        return self


class SysMonitorConfig(Section):
    enabled: Flag = True
    sample_interval_sec: Pos = 5.0
    warn_cpu_pct: Pos = 80.0
    max_cpu_pct: Pos = 98.0
    warn_rss_mb: Pos = 512.0
    max_rss_mb: Pos = 1024.0
    warn_open_fds: PosInt = 512
    max_open_fds: PosInt = 900
    warn_threads: PosInt = 64
    max_threads: PosInt = 200

    @model_validator(mode="after")
    def _warn_below_max(self) -> SysMonitorConfig:
        in_order(self, *((f"warn_{m}", f"max_{m}") for m in ("cpu_pct", "rss_mb", "open_fds", "threads")))
        return self


class HealthServerConfig(Section):
    enabled: Flag = False
    host: str = "127.0.0.1"
    port: Annotated[Int, Field(ge=0, le=65535)] = 8080
    # One thread serves every connection; these bound what clients can hold open (file descriptors).
    max_connections: Annotated[Int, Field(ge=1, le=512)] = 32
    request_timeout_s: Pos = 5.0  # to send the request and read the answer, slow senders included
    # POST /halt, /resume, /stop need "Authorization: Bearer <the value of this variable>"; while the
    # variable is unset or empty the control endpoints refuse every request.
    control_token_env: str = "ARB_CONTROL_TOKEN"


class AlertsConfig(Section):
    telegram_token_env: str = "TELEGRAM_BOT_TOKEN"
    telegram_chat_id_env: str = "TELEGRAM_CHAT_ID"
    telegram_base_url: str = "https://api.telegram.org"
    cooldown_s: NonNeg = 60.0
    queue_size: PosInt = 100
    timeout_s: Pos = 5.0
    # With Telegram set up, the configured chat may send /status, /profit, /halt, /stop, ...
    commands: Flag = True
    poll_timeout_s: Annotated[Num, Field(ge=1, le=50)] = 25.0  # getUpdates long-poll wait


class LiveGuardsConfig(Section):
    confirm_file: str = ".live_trading_ok"
    dry_run_cycles: Annotated[Int, Field(ge=0, le=1000)] = 3


class ShutdownConfig(Section):
    flatten: Flag = False
    timeout_s: Pos = 20.0


class MarketDataConfig(Section):
    use_websocket: Flag = True
    stale_after_s: Pos = 5.0
    recover_every_s: Pos = 30.0
    ws_error_threshold: PosInt = 3
    # The deadline a tick's book and FX reads share on real venues: what has not arrived by then
    # is stale for that tick. Unset: READ_BUDGET_SHARE of watchdog.max_loop_latency_ms; when set,
    # it must be below that maximum, so a slow venue costs stale books, never the loop.
    tick_read_budget_ms: Annotated[float, Field(ge=50)] | None = None


class RecordConfig(Section):
    """`arb record`, and `record: true` in a run: every book the venues deliver, to Parquet files."""

    enabled: Flag = False
    dir: Annotated[str, Field(min_length=1)] = "data/recordings"
    max_file_mb: Annotated[Num, Field(gt=0, le=100_000)] = 256.0  # then the day's next part
    max_total_mb: Annotated[Num, Field(gt=0)] = 10_240.0  # then the oldest files are deleted
    flush_rows: Annotated[Int, Field(ge=1, le=1_000_000)] = 5_000  # rows per row group, at most
    flush_s: Annotated[Num, Field(gt=0, le=3600)] = 5.0  # a row group at least this often
    # Books waiting for the writer thread; when full, new ones are dropped and counted (never a wait).
    queue_size: Annotated[Int, Field(ge=1, le=10_000_000)] = 100_000

    @model_validator(mode="after")
    def _cap_holds_a_file(self) -> RecordConfig:
        if self.max_total_mb < self.max_file_mb:
            raise KeyProblem(
                "max_total_mb", f"at least max_file_mb ({_describe(self.max_file_mb)})", self.max_total_mb
            )
        return self


class ReplayConfig(Section):
    """`arb replay`: how a recording stands in for the venues, and what of the run stays on."""

    # From the decision to the order reaching the book: fills walk the book recorded this much later.
    fill_latency_ms: Annotated[Num, Field(ge=0, le=60_000)] = 50.0
    # A replay reports to no one unless asked: Redis, the health server and Telegram alerts are
    # off (alerts still go to the log) unless turned on here and configured in their own sections.
    redis: Flag = False
    health_server: Flag = False
    telegram: Flag = False


class AppConfig(Section):
    instance: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = DEFAULT_INSTANCE
    accounting_currency: str = "KRW"
    symbols: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["BTC", "ETH"])
    engines: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: list(BUILTIN_ENGINES))
    mode: ModeConfig = ModeConfig()
    loop: LoopConfig = LoopConfig()
    venues: dict[str, VenueConfig]
    fx: FxConfig = FxConfig()
    signal: SignalConfig = SignalConfig()
    safety: SafetyConfig = SafetyConfig()
    execution: ExecutionConfig = ExecutionConfig()
    exit: ExitConfig = ExitConfig()
    stoploss: StoplossConfig = StoplossConfig()
    rebalancer: RebalancerConfig = RebalancerConfig()
    mock: MockConfig = MockConfig()
    storage: StorageConfig = StorageConfig()
    redis: RedisConfig = RedisConfig()
    fleet: FleetConfig = FleetConfig()
    logging: LoggingConfig = LoggingConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    sys_monitor: SysMonitorConfig = SysMonitorConfig()
    health_server: HealthServerConfig = HealthServerConfig()
    alerts: AlertsConfig = AlertsConfig()
    live_guards: LiveGuardsConfig = LiveGuardsConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    market_data: MarketDataConfig = MarketDataConfig()
    record: RecordConfig = RecordConfig()
    replay: ReplayConfig = ReplayConfig()
    # Engine sections for user engines loaded by dotted path: name -> free-form settings.
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("symbols")
    @classmethod
    def _assets(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or not s.isalnum():
                raise ValueError(f"base asset codes such as BTC, not {s!r}")
        codes = [s.upper() for s in v]
        # Compared as traded: [btc, BTC] would run the same asset twice, with twice the limits.
        for i, code in enumerate(codes):
            if code in codes[:i]:
                first = v[codes.index(code)]
                raise KeyProblem(f"[{i}]", f"each asset once ({first!r} is already listed)", v[i])
        return codes

    @field_validator("engines")
    @classmethod
    def _engines(cls, v: list[str]) -> list[str]:
        for i, name in enumerate(v):
            if name not in BUILTIN_ENGINES and "." not in name:
                raise KeyProblem(
                    f"[{i}]", f"a built-in engine ({', '.join(BUILTIN_ENGINES)}) or a dotted path", name
                )
        if len(set(v)) != len(v):
            raise ValueError("each engine once")
        return v

    @field_validator("venues")
    @classmethod
    def _two_venues(cls, v: dict[str, VenueConfig]) -> dict[str, VenueConfig]:
        if len(v) < 2:
            raise ValueError("at least two venues")
        for name in v:
            if not name.isidentifier():
                raise KeyProblem(name, "a venue name that is an identifier", name)
        return v

    @model_validator(mode="after")
    def _limits_in_order(self) -> AppConfig:
        """Pairs across sections; within a section each section checks its own."""
        if self.signal.min_spread_pct >= self.safety.max_spread_pct:
            # Safety rejects a net spread above its maximum as bad data: nothing would ever enter.
            raise KeyProblem(
                "signal.min_spread_pct",
                f"below safety.max_spread_pct ({_describe(self.safety.max_spread_pct)})",
                self.signal.min_spread_pct,
            )
        if self.rebalancer.auto_reduce:
            # Entries up to safety's limit that the rebalancer reduces at once pay two round trips.
            in_order(self, ("safety.max_exposure", "rebalancer.max_exposure"))
        return self

    @model_validator(mode="after")
    def _cross_refs(self) -> AppConfig:
        if self.fx.source == "venue" and self.fx.venue not in self.venues:
            raise KeyProblem("fx.venue", f"one of the venues ({', '.join(self.venues)})", self.fx.venue)
        quotes = {v.quote for v in self.venues.values()} - {self.accounting_currency}
        if self.fx.source == "fixed":
            missing = sorted(quotes - set(self.fx.fixed))
            if missing:
                raise KeyProblem(
                    "fx.fixed",
                    f"a rate for every venue quote currency (missing {', '.join(missing)})",
                    dict(self.fx.fixed),
                )
        budget, max_latency = self.market_data.tick_read_budget_ms, self.watchdog.max_loop_latency_ms
        if budget is not None and budget >= max_latency:
            raise KeyProblem(
                "market_data.tick_read_budget_ms",
                f"less than watchdog.max_loop_latency_ms ({max_latency:g})",
                budget,
            )
        if self.fleet.enabled and not self.redis.enabled:
            raise KeyProblem(
                "redis.enabled", "true with fleet.enabled (the shared budget lives in Redis)", False
            )
        if self.mode.current == "mock":
            missing = [s for s in self.symbols if s not in self.mock.assets]
            if missing:
                raise KeyProblem(
                    "mock.assets",
                    f"a reference price for every symbol in mock mode (missing {', '.join(missing)})",
                    sorted(self.mock.assets),
                )
        return self

    def tick_read_budget_ms(self) -> float:
        """The deadline of a tick's reads: market_data.tick_read_budget_ms, or a share of the
        watchdog's maximum loop latency, leaving the rest to the engines and a trading tick's orders."""
        configured = self.market_data.tick_read_budget_ms
        if configured is not None:
            return configured
        return READ_BUDGET_SHARE * self.watchdog.max_loop_latency_ms

    def venue_symbol(self, venue: str, asset: str) -> str:
        return f"{asset}/{self.venues[venue].quote}"

    def loop_trigger(self) -> Literal["interval", "book"]:
        """loop.trigger, or its default: book where the feed signals updates (the paper and live
        streams, the mock market with mock.updates_per_s), interval where it does not."""
        if self.loop.trigger is not None:
            return self.loop.trigger
        if self.mode.current == "mock":
            return "book" if self.mock.updates_per_s > 0 else "interval"
        return "book"

    def redacted(self) -> dict[str, Any]:
        """The effective config for display: secrets are never in it, only the names of their variables.

        URL passwords (storage.url, redis.url, any URL a venue or plugin names) are masked.
        """
        data = _mask_strings(self.model_dump(mode="json"))
        secrets: dict[str, str] = {}
        for venue in self.venues.values():
            for env in (venue.api_key_env, venue.api_secret_env):
                if env:
                    secrets[env] = "***set***" if os.environ.get(env) else "(not set)"
        for env in (self.alerts.telegram_token_env, self.alerts.telegram_chat_id_env):
            secrets[env] = "***set***" if os.environ.get(env) else "(not set)"
        data["secrets_from_environment"] = secrets
        return data


def config_strings(data: Any) -> list[str]:
    """Every string value in a dumped config, however deep: where URLs with credentials may hide."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for value in data.values() for s in config_strings(value)]
    if isinstance(data, list | tuple):
        return [s for value in data for s in config_strings(value)]
    return []


def _mask_strings(data: Any) -> Any:
    if isinstance(data, str):
        return mask_url_credentials(data)
    if isinstance(data, dict):
        return {key: _mask_strings(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_mask_strings(value) for value in data]
    return data


@cache
def known_exchange_ids() -> frozenset[str]:
    """ccxt's exchange ids, read from its package files so that a mock run does not import ccxt."""
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    root = Path(next(iter(spec.submodule_search_locations)))
    return frozenset(p.stem for p in root.glob("*.py") if not p.stem.startswith("_") and p.stem != "base")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif parts:
            parts.append(f".{p}")
        else:
            parts.append(str(p))
    return "".join(parts) or "(top level)"


def _below(where: str, sub: str) -> str:
    if where == "(top level)":
        return sub
    return f"{where}{sub}" if sub.startswith("[") else f"{where}.{sub}"


def readable_errors(err: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[str]:
    """One line per problem: `key.path: expected ..., found ...` (paths under `prefix`)."""
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = _loc(prefix + loc)
        kind = e["type"]
        found = _describe(e.get("input"))
        problem = (e.get("ctx") or {}).get("error")
        if isinstance(problem, KeyProblem):
            expected, found = problem.expected, _describe(problem.found)
            lines.append(f"{_below(where, problem.where)}: expected {expected}, found {found}")
        elif kind == "extra_forbidden":
            lines.append(f"{where}: unknown key (found {found}); check its spelling and section")
        elif kind == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            msg = e["msg"]
            # pydantic's "Input should be a finite number" reads as "expected a finite number".
            msg = msg.removeprefix("Value error, ").removeprefix("Input should be ")
            lines.append(
                f"{where}: expected {msg[0].lower() + msg[1:] if msg else 'a valid value'}, found {found}"
            )
    return lines


def parse_config(data: Any, mode: str | None = None, worker: dict[str, Any] | None = None) -> AppConfig:
    """Validate a parsed YAML document; `mode` overrides mode.current and `worker` the top-level
    `instance` and `symbols` (one fleet config, N workers) before validation."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"(top level): expected a mapping of sections, found {_describe(data)}")
    if worker:
        data = {**data, **worker}
    if mode is not None:
        section = data.get("mode")
        if section is not None:
            # An override does not make an invalid file valid: the file's own mode section must pass.
            try:
                ModeConfig.model_validate(section)
            except ValidationError as err:
                raise ConfigError(readable_errors(err, ("mode",))) from None
        section = dict(section) if isinstance(section, dict) else {}
        section["current"] = mode
        data = {**data, "mode": section}
    try:
        return AppConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(readable_errors(err)) from None


class _UniqueKeys(yaml.constructor.SafeConstructor):
    """Refuses a key written twice in one mapping, in a SafeLoader.

    Plain YAML loading keeps the last one silently: a second `safety:` section would quietly
    drop every limit of the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: Flag = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """The pure-Python parser: its messages name what it found (`found undefined alias 'x'`)."""


# libyaml parses a config some 20 times faster, which every start of the command pays; PyYAML
# built without it has only the pure-Python parser.
_FastUniqueKeyLoader: type = type(
    "_FastUniqueKeyLoader", (_UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)), {}
)


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    """The parsed document with dotted keys set (`signal.min_spread_pct`: 0.5), before validation,
    so that a bad value is reported like one written in the file."""
    data = copy.deepcopy(data) if data is not None else {}
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"{dotted}: {where} is {_describe(child)}, not a section with keys")
            node = child
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: expected a key inside a section")
        node[parts[-1]] = value
    return data


def load_config(
    path: str | Path,
    mode: str | None = None,
    worker: dict[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AppConfig:
    """The config in `path`, with `mode`, a fleet `worker`'s instance and symbols, and dotted-key
    `overrides` applied before it is validated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (pass --config PATH)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not readable UTF-8 text: {err}") from None
    try:
        data = yaml.load(text, Loader=_FastUniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError:
        pass
    else:
        return parse_config(apply_overrides(data, overrides) if overrides else data, mode, worker)
    try:
        # Not valid YAML: parsed again by the pure-Python parser for its clearer message.
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_config(data, mode, worker)
