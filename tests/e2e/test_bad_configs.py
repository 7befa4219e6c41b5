"""Malformed configs: each one exits 2 before anything starts, names the offending key, no traceback.

Most cases go through `arb run` in-process (click's CliRunner, the same code path as the real
command); the ones marked `real` run `scripts/run_live.py` as a subprocess.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from arbitrage.cli import main
from tests.e2e.runner import base_config, run_bot

Doc = dict[str, Any]
NAN, INF = float("nan"), float("inf")  # yaml.safe_dump writes them as .nan and .inf


def edited(key: str, value: Any) -> Callable[[], str]:
    """The shipped config with `key` (dotted) set to `value`, replacing whatever was there."""

    def build() -> str:
        data = base_config()
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
        return yaml.safe_dump(data, sort_keys=False)

    return build


def without(key: str) -> Callable[[], str]:
    def build() -> str:
        data = base_config()
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[last]
        return yaml.safe_dump(data, sort_keys=False)

    return build


def text(raw: str) -> Callable[[], str]:
    return lambda: raw


def shipped() -> str:
    return yaml.safe_dump(base_config(), sort_keys=False)


@dataclass(frozen=True)
class BadConfig:
    id: str
    build: Callable[[], str] | None  # the file's text; None: no file at all
    names: tuple[str, ...]  # what stderr must contain: the key path (and any detail)
    args: tuple[str, ...] = ("--mock", "--once")
    real: bool = False  # run through scripts/run_live.py as a subprocess


CASES = [
    # Wrong types.
    BadConfig("string-for-number", edited("signal.min_spread_pct", "abc"), ("signal.min_spread_pct",)),
    BadConfig(
        "string-for-fee", edited("venues.upbit.taker_fee_pct", "cheap"), ("venues.upbit.taker_fee_pct",)
    ),
    BadConfig("symbols-not-a-list", edited("symbols", "BTC"), ("symbols", "valid list")),
    BadConfig("section-is-a-scalar", edited("signal", 5), ("signal", "found 5")),
    BadConfig("venues-is-a-list", edited("venues", ["upbit", "binance"]), ("venues",)),
    # Negative limits and out-of-range percentages.
    BadConfig(
        "negative-unhedged-bound",
        edited("execution.max_unhedged_qty", -1),
        ("execution.max_unhedged_qty", "found -1"),
        real=True,
    ),
    BadConfig(
        "negative-open-positions", edited("safety.max_open_positions", -3), ("safety.max_open_positions",)
    ),
    BadConfig("negative-balance", edited("venues.upbit.balances.KRW", -5), ("venues.upbit.balances.KRW",)),
    BadConfig("slippage-over-100", edited("safety.max_slippage_pct", 150), ("safety.max_slippage_pct",)),
    BadConfig("fee-over-5", edited("venues.upbit.taker_fee_pct", 7), ("venues.upbit.taker_fee_pct",)),
    BadConfig("fault-rate-over-1", edited("mock.faults.reject_rate", 1.5), ("mock.faults.reject_rate",)),
    BadConfig("negative-interval", edited("loop.interval_s", -1), ("loop.interval_s",)),
    # Unknown keys.
    BadConfig("unknown-top-level-key", edited("strategy", {"aggressive": True}), ("strategy", "unknown key")),
    BadConfig(
        "typo-in-section", edited("signal.min_sprad_pct", 0.5), ("signal.min_sprad_pct", "unknown key")
    ),
    BadConfig(
        "typo-in-venue", edited("venues.binance.taker_fees_pct", 0.1), ("venues.binance.taker_fees_pct",)
    ),
    # Venues.
    BadConfig(
        "unknown-exchange-id", edited("venues.upbit.exchange", "nopex"), ("venues.upbit.exchange", "'nopex'")
    ),
    BadConfig("bad-quote-code", edited("venues.upbit.quote", "K-RW"), ("venues.upbit.quote",)),
    BadConfig("fx-venue-not-a-venue", edited("fx.venue", "kraken"), ("fx.venue", "'kraken'"), real=True),
    BadConfig("only-one-venue", without("venues.binance"), ("venues", "at least two venues")),
    BadConfig("no-venues-section", without("venues"), ("venues", "required key is missing"), real=True),
    BadConfig(
        "fx-fixed-without-usdt",
        edited("fx", {"source": "fixed", "fixed": {"EUR": 1450}}),
        ("fx.fixed", "USDT"),
    ),
    # Symbols.
    BadConfig("no-mock-price", edited("symbols", ["BTC", "ETH", "XRP"]), ("mock.assets", "XRP")),
    BadConfig("empty-symbols", edited("symbols", []), ("symbols", "at least 1 item")),
    BadConfig("duplicate-symbols", edited("symbols", ["BTC", "ETH", "BTC"]), ("symbols", "each asset once")),
    # Engines.
    BadConfig(
        "unknown-engine-name",
        edited("engines", ["signal", "safety", "executor"]),
        ("engines[2]", "'executor'"),
    ),
    BadConfig("duplicate-engine", edited("engines", ["signal", "signal"]), ("engines", "each engine once")),
    BadConfig(
        "engine-module-missing",
        edited("engines", ["signal", "safety", "nosuch.engines:Spread"]),
        ("engines[2]", "nosuch"),
        real=True,
    ),
    BadConfig(
        "engine-class-missing",
        edited("engines", ["signal", "tests.engines.sample_user_engine:NoSuchClass"]),
        ("engines[1]", "NoSuchClass"),
    ),
    BadConfig(
        "engine-without-on-tick",
        edited("engines", ["signal", "tests.engines.sample_user_engine:NotAnEngine"]),
        ("engines[1]", "on_tick"),
    ),
    BadConfig(
        "engine-constructor-raises",
        edited("engines", ["signal", "tests.engines.sample_user_engine:Exploding"]),
        ("engines[1]", "threshold_pct missing"),
    ),
    # The file itself.
    BadConfig(
        "yaml-syntax", text("signal:\n  min_spread_pct: [0.3\nsafety: {}\n"), ("line 3, column",), real=True
    ),
    BadConfig(
        "duplicate-section",
        lambda: shipped() + "signal:\n  min_spread_pct: 9\n",
        ("'signal' appears twice", "line"),
    ),
    BadConfig("yaml-is-a-list", text("- upbit\n- binance\n"), ("(top level)", "mapping")),
    BadConfig("empty-file", text(""), ("venues", "required key is missing")),
    BadConfig("missing-file", None, ("missing.yml", "does not exist"), real=True),
    # Other sections.
    BadConfig("storage-scheme", edited("storage.url", "mysql://db/arb"), ("storage.url", "sqlite:///")),
    BadConfig(
        "watchdog-warn-above-max",
        edited("watchdog.warn_loop_latency_ms", 5000),
        ("watchdog.warn_loop_latency_ms", "max_loop_latency_ms"),
        real=True,
    ),
    BadConfig(
        "read-budget-not-below-max-latency",
        edited("market_data.tick_read_budget_ms", 2500),
        ("market_data.tick_read_budget_ms", "less than watchdog.max_loop_latency_ms (2500)", "2500"),
        real=True,
    ),
    BadConfig("invalid-mode-in-file", edited("mode.current", "turbo"), ("mode.current", "'turbo'")),
    BadConfig(
        "client-id-prefix", edited("execution.client_id_prefix", "arb-1!"), ("execution.client_id_prefix",)
    ),
    BadConfig("instance-name", edited("instance", "my bot"), ("instance",)),
    # Limits that lose money: an entry that does not pay, a threshold that never compares true,
    # a kill switch that never trips (issue 10).
    BadConfig(
        "negative-entry-spread",
        edited("signal.min_spread_pct", -2),
        ("signal.min_spread_pct: expected greater than 0, found -2",),
        real=True,
    ),
    BadConfig("zero-entry-spread", edited("signal.min_spread_pct", 0), ("signal.min_spread_pct", "found 0")),
    BadConfig(
        "nan-exit-spread",
        edited("exit.min_spread_pct", NAN),
        ("exit.min_spread_pct: expected a finite number, found nan",),
        real=True,
    ),
    BadConfig(
        "infinite-daily-loss-limit",
        edited("safety.daily_loss_limit", INF),
        ("safety.daily_loss_limit: expected a finite number, found inf",),
        real=True,
    ),
    BadConfig("infinite-exposure", edited("safety.max_exposure", INF), ("safety.max_exposure", "finite")),
    BadConfig("nan-max-notional", edited("signal.max_notional", NAN), ("signal.max_notional", "finite")),
    BadConfig("minus-inf-exit-spread", edited("exit.min_spread_pct", -INF), ("exit.min_spread_pct", "-inf")),
    BadConfig("infinite-interval-in-file", edited("loop.interval_s", INF), ("loop.interval_s", "finite")),
    BadConfig("interval-over-a-day", edited("loop.interval_s", 1e9), ("loop.interval_s", "86400")),
    BadConfig(
        "nan-watchdog-limit", edited("watchdog.max_loop_latency_ms", NAN), ("watchdog.max_loop_latency_ms",)
    ),
    BadConfig("nan-fault-rate", edited("mock.faults.reject_rate", NAN), ("mock.faults.reject_rate", "nan")),
    BadConfig("nan-mock-premium", edited("mock.premium_mean_pct", NAN), ("mock.premium_mean_pct", "nan")),
    BadConfig("infinite-mock-price", edited("mock.assets.BTC.price", INF), ("mock.assets.BTC.price", "inf")),
    BadConfig(
        "nan-venue-premium", edited("venues.upbit.mock.premium_pct", NAN), ("venues.upbit.mock.premium_pct",)
    ),
    # ... in the values of mappings too.
    BadConfig(
        "infinite-balance", edited("venues.upbit.balances.KRW", INF), ("venues.upbit.balances.KRW", "finite")
    ),
    BadConfig(
        "nan-fixed-fx",
        edited("fx", {"source": "fixed", "fixed": {"USDT": NAN}}),
        ("fx.fixed.USDT", "finite", "found nan"),
    ),
    BadConfig(
        "nan-unhedged-bound-by-asset",
        edited("execution.max_unhedged_qty_by_asset.ETH", NAN),
        ("execution.max_unhedged_qty_by_asset.ETH", "finite"),
    ),
    # YAML `true` is an int to Python: never a number here.
    BadConfig(
        "bool-for-float",
        edited("signal.max_notional", True),
        ("signal.max_notional: expected a valid number, found True",),
        real=True,
    ),
    BadConfig(
        "bool-for-int", edited("safety.max_open_positions", True), ("safety.max_open_positions", "True")
    ),
    BadConfig(
        "bool-for-balance", edited("venues.binance.balances.USDT", True), ("venues.binance.balances.USDT",)
    ),
    BadConfig("bool-for-seed", edited("mock.seed", True), ("mock.seed", "found True")),
    BadConfig("int-for-bool", edited("rebalancer.auto_reduce", 1), ("rebalancer.auto_reduce", "boolean")),
    BadConfig("string-for-int", edited("loop.book_depth", "10"), ("loop.book_depth", "found '10'")),
    BadConfig("negative-seed", edited("mock.seed", -1), ("mock.seed", "found -1")),
    # One asset written twice in two cases.
    BadConfig(
        "symbols-differing-in-case",
        edited("symbols", ["btc", "BTC"]),
        ("symbols[1]: expected each asset once ('btc' is already listed), found 'BTC'",),
        real=True,
    ),
    BadConfig(
        "balances-differing-in-case",
        edited("venues.upbit.balances", {"krw": 1_000_000, "KRW": 100_000_000}),
        ("venues.upbit.balances.KRW: expected each asset once ('krw' is already listed), found 'KRW'",),
    ),
    BadConfig(
        "unhedged-bound-for-a-pair",
        edited("execution.max_unhedged_qty_by_asset", {"ETH/KRW": 0.002}),
        ("execution.max_unhedged_qty_by_asset.ETH/KRW", "asset or currency code"),
    ),
    # A min above its max, a warn above its max.
    BadConfig(
        "min-notional-above-max",
        edited("signal.min_notional", 6_000_000),
        ("signal.min_notional: expected at most max_notional (5000000.0), found 6000000",),
        real=True,
    ),
    BadConfig(
        "dynamic-stop-min-above-max",
        edited("stoploss.dynamic_min_pct", 5),
        ("stoploss.dynamic_min_pct", "dynamic_max_pct"),
    ),
    BadConfig(
        "entry-exposure-above-rebalancer",
        edited("safety.max_exposure", 30_000_000),
        ("safety.max_exposure: expected at most rebalancer.max_exposure", "found 30000000"),
    ),
    BadConfig(
        "entry-spread-at-outlier-limit",
        edited("signal.min_spread_pct", 5),
        ("signal.min_spread_pct", "below safety.max_spread_pct"),
    ),
    BadConfig(
        "cpu-warn-above-max",
        edited("sys_monitor.warn_cpu_pct", 99),
        ("sys_monitor.warn_cpu_pct", "max_cpu_pct"),
    ),
    BadConfig(
        "rss-warn-above-max",
        edited("sys_monitor.warn_rss_mb", 2048),
        ("sys_monitor.warn_rss_mb", "max_rss_mb"),
    ),
    BadConfig(
        "fds-warn-above-max", edited("sys_monitor.warn_open_fds", 1000), ("sys_monitor.warn_open_fds",)
    ),
    BadConfig(
        "threads-warn-above-max",
        edited("sys_monitor.warn_threads", 500),
        ("sys_monitor.warn_threads: expected at most max_threads (200), found 500",),
        real=True,
    ),
    BadConfig(
        "ws-lag-warn-above-max",
        edited("watchdog.warn_ws_lag_ms", 3000),
        ("watchdog.warn_ws_lag_ms", "max_ws_lag_ms"),
    ),
    BadConfig(
        "heartbeat-outlives-nothing",
        edited("redis.heartbeat_interval_s", 20),
        ("redis.heartbeat_interval_s", "below heartbeat_ttl_s"),
    ),
    # The command line.
    BadConfig("negative-loops", shipped, ("--loops",), args=("--mock", "--loops", "-1"), real=True),
    BadConfig(
        "nan-interval",
        shipped,
        ("'--interval': 'nan' is not a finite number",),
        args=("--mock", "--once", "--interval", "nan"),
        real=True,
    ),
    BadConfig(
        "infinite-interval",
        shipped,
        ("'--interval': 'inf' is not a finite number",),
        args=("--mock", "--once", "--interval", "inf"),
    ),
    BadConfig("interval-not-a-number", shipped, ("--interval",), args=("--mock", "--interval", "soon")),
    BadConfig(
        "once-and-loops",
        shipped,
        ("--once conflicts with --loops 5",),
        args=("--mock", "--once", "--loops", "5"),
        real=True,
    ),
    BadConfig("negative-seed-option", shipped, ("'--seed'", "-1"), args=("--mock", "--once", "--seed", "-1")),
    BadConfig("nan-seed-option", shipped, ("'--seed'", "nan"), args=("--mock", "--once", "--seed", "nan")),
    BadConfig("invalid-mode-option", shipped, ("--mode", "turbo"), args=("--mode", "turbo", "--once")),
    BadConfig(
        "mock-and-paper", shipped, ("--mock conflicts with --mode paper",), args=("--mock", "--mode", "paper")
    ),
]


def write_case(workdir: Path, case: BadConfig) -> Path:
    path = workdir / ("missing.yml" if case.build is None else "config.yml")
    if case.build is not None:
        path.write_text(case.build(), encoding="utf-8")
    return path


def run_in_process(
    workdir: Path, config: Path, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(
        main,
        ["run", "--config", str(config), "--log-dir", "logs", "--data-dir", "data", *args],
        env={"ARB_MODE": None},
    )
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result.exit_code, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_exits_2_naming_the_key(
    case: BadConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_case(tmp_path, case)
    if case.real:
        run = run_bot(tmp_path, *case.args, config=config, timeout=60)
        code, stderr, stdout = run.code, run.stderr, run.stdout
    else:
        code, stderr = run_in_process(tmp_path, config, case.args, monkeypatch)
        stdout = ""
    assert code == 2, (code, stderr)
    for needle in case.names:
        assert needle in stderr, f"{needle!r} not in stderr:\n{stderr}"
    assert "Traceback" not in stderr + stdout
    assert "[METRICS]" not in stdout
    # Nothing was started: no log folder, no ledger.
    assert sorted(p.name for p in tmp_path.iterdir()) == ([config.name] if config.exists() else [])


def test_enough_cases_and_enough_real_runs() -> None:
    assert len(CASES) >= 24
    assert sum(c.real for c in CASES) >= 5
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_problem_is_listed_one_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base_config()
    data["signal"]["min_spread_pct"] = "wide"
    data["execution"]["max_unhedged_qty"] = -1
    data["safety"]["max_opne_positions"] = 3
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, stderr = run_in_process(tmp_path, config, ("--mock", "--once"), monkeypatch)
    assert code == 2
    assert "config error (3 problems)" in stderr
    problems = [line for line in stderr.splitlines() if line.startswith("  - ")]
    assert [p.split(":")[0] for p in problems] == [
        "  - signal.min_spread_pct",
        "  - safety.max_opne_positions",
        "  - execution.max_unhedged_qty",
    ]
    # What was expected and what was found, in the same line.
    assert "expected" in problems[0] and "found 'wide'" in problems[0]


def test_override_does_not_hide_an_invalid_mode_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(edited("mode", "live")(), encoding="utf-8")  # a scalar, not a section
    code, stderr = run_in_process(tmp_path, config, ("--mode", "mock", "--once"), monkeypatch)
    assert code == 2
    assert "mode:" in stderr and "found 'live'" in stderr
