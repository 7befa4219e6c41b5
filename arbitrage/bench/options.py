"""What the benchmark runs: its options and the config of N synthetic assets on V mock venues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbitrage.config import AppConfig, parse_config

REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass(frozen=True)
class BenchOptions:
    workdir: Path
    symbols: int = 20
    venues: int = 2
    ticks: int = 20_000  # measured ticks per loop run, after the warm-up
    warmup: int = 200
    synchronous: tuple[str, ...] = ("FULL", "NORMAL")
    fx_source: str = "venue"
    seed: int = 42
    redis: bool = False
    baseline_ticks: int = 5_000
    schedule_ticks: int = 200
    schedule_interval_s: float = 0.05
    late_tick: int = 50
    late_by_s: float = 0.12
    cold_runs: int = 5
    noise_samples: int = 2_000
    record_ticks: int = 0  # ticks per run of the recording cost (0: not measured)
    record_rounds: int = 3  # runs with recording, each alternating stretches with and without
    record_interval_s: float = 0.01  # tick interval of those runs (0: back to back)


UNHEDGED_KRW = 20_000.0  # what each synthetic asset may leave unhedged, in KRW at its reference price


def bench_config(
    options: BenchOptions,
    synchronous: str,
    *,
    redis_prefix: str | None = None,
    interval_s: float = 0.0,
    record_dir: Path | None = None,
) -> AppConfig:
    """N synthetic assets on V mock venues quoting KRW and USDT in turn, funded far beyond any trade."""
    if options.venues < 2 or options.symbols < 1:
        raise ValueError("the benchmark needs at least 1 symbol and 2 venues")
    assets = [f"X{i:03d}" for i in range(options.symbols)]
    # Prices across five orders of magnitude, so that both venues' tick and step rules get exercised.
    prices = {a: 2_000.0 * 10 ** (i % 5) * (1.0 + i / 13.0) for i, a in enumerate(assets)}
    venues: dict[str, Any] = {}
    for v in range(options.venues):
        krw = v % 2 == 0
        funds = {"KRW": 1e13} if krw else {"USDT": 1e10}
        funds.update({a: 1e12 / prices[a] for a in assets})
        venues[f"venue{v}"] = {"exchange": "mock", "quote": "KRW" if krw else "USDT",
                               "taker_fee_pct": 0.05 if krw else 0.1, "balances": funds}  # fmt: skip
    data: dict[str, Any] = {
        "instance": "bench",
        "symbols": assets,
        "mode": {"current": "mock"},
        "loop": {"interval_s": interval_s},
        "venues": venues,
        "fx": {"source": options.fx_source, "venue": "venue0", "fixed": {"USDT": 1380.0}},
        # Ticks back to back compress minutes of trading into seconds: a per-minute order limit
        # would turn nearly every tick into an ORDER_RATE rejection and hide the trading path.
        "safety": {"halt_file": str(options.workdir / ".halt"), "max_orders_per_minute": 10**9},
        # Each asset may stay unhedged by about 20,000 KRW worth, as live.yml's BTC and ETH bounds
        # are (about twice the smallest order a venue takes). With the one default of 0.0001 units,
        # a 2,000 KRW coin's bound would sit far below anything a venue trades: the dust a coin fee
        # leaves would be over it for good, and priced again as an unwind every few seconds.
        "execution": {"max_unhedged_qty_by_asset": {a: UNHEDGED_KRW / p for a, p in prices.items()}},
        "mock": {"seed": options.seed, "assets": {a: {"price": p} for a, p in prices.items()}},
        "storage": {"synchronous": synchronous},
        "logging": {"console": False},
        # Back to back, ticks keep a core busy and turn a few rejections per tick into thousands
        # per minute: that is the point here, not an alarm that should stop the run.
        "sys_monitor": {"warn_cpu_pct": 1000, "max_cpu_pct": 1000},
        "watchdog": {"warn_safety_rejections_per_minute": 1e9, "max_safety_rejections_per_minute": 1e9},
    }
    if record_dir is not None:
        data["record"] = {"enabled": True, "dir": str(record_dir)}
    if redis_prefix is not None:
        data["redis"] = {"enabled": True, "url": REDIS_URL, "key_prefix": redis_prefix}
    return parse_config(data)
