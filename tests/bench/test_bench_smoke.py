"""The benchmark: a tiny real run prints every figure; its baseline and figures rest on sound parts.

No speed is asserted here: the benchmark prints figures, it does not judge a test run by them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from arbitrage.bench.baseline import bare_best_spread, replay_snapshots
from arbitrage.bench.figures import Stats
from arbitrage.bench.options import REDIS_URL, BenchOptions, bench_config
from arbitrage.clock import SystemClock
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.runtime.wiring import build_bot

REPO = Path(__file__).resolve().parents[2]
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
STAGES = ["snapshot", "residuals", "signal", "safety", "execution", "stoploss", "position",
          "execution.orders", "stoploss.orders", "ledger (in *.orders)", "logging", "sysmonitor",
          "watchdog", "heartbeat", "other"]  # fmt: skip
NUMBER = r"-?\d+\.\d+"


def _redis_db14() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at 127.0.0.1:6379 is unreachable ({exc}); start it with: {REDIS_START}")
    return client


def _stage_row(out: str, label: str) -> list[str]:
    rows = re.findall(rf"^  {re.escape(label)} +((?:{NUMBER} +){{5}}{NUMBER})$", out, re.MULTILINE)
    return [r.split() for r in rows]


def test_a_tiny_run_prints_every_figure(tmp_path: Path) -> None:
    client = _redis_db14()
    argv = [sys.executable, str(REPO / "scripts" / "bench.py"), "--symbols", "3", "--venues", "3",
            "--ticks", "60", "--warmup", "0", "--synchronous", "both", "--redis", "--baseline-ticks", "30",
            "--schedule-ticks", "12", "--schedule-interval", "0.01", "--late-tick", "4", "--late-by", "0.03",
            "--cold-runs", "1", "--noise-samples", "20", "--workdir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    try:
        assert proc.returncode == 0, err
        assert client.keys(f"bench-{proc.pid}:*") == [], "the run must delete the Redis keys it wrote"
    finally:
        client.close()

    assert "3 symbols x 3 venues (KRW, USDT, KRW)" in out
    assert re.search(rf"machine noise: .* p50 {NUMBER} p99 {NUMBER} max {NUMBER} ms", out)
    for sync in ("FULL", "NORMAL"):
        assert re.search(rf"== loop, ledger synchronous={sync}: 60 ticks after 0 warm-up, \d+ trading", out)
    assert len(re.findall(r"^  ticks per second: \d+$", out, re.MULTILINE)) == 2
    for label in ("all ticks", "non-trading ticks", "trading ticks", "non-trading - snapshot"):
        rows = re.findall(rf"^  {label} +\d+ +(?:(?:{NUMBER}|-) *){{4}}$", out, re.MULTILINE)
        assert len(rows) == 2, label
    for stage in STAGES:
        assert len(_stage_row(out, stage)) == 2, stage
    # The first beat comes with the first tick, so a run without warm-up has at least one.
    assert len(re.findall(rf"heartbeat, per beat +[1-9]\d* beats: p50 +{NUMBER} p99 +{NUMBER} max", out)) == 2
    assert len(re.findall(rf"RSS MB at tick: (?:{NUMBER}@\d+ ?)+$", out, re.MULTILINE)) == 2
    assert len(re.findall(rf"RSS growth: [+-]{NUMBER} MB from tick 1 to tick 60", out)) == 2
    assert re.search(rf"^  bare loop +30 +{NUMBER}", out, re.MULTILINE)
    for sync in ("FULL", "NORMAL"):
        ratios = rf"bot/bare, non-trading p50 \({sync}\): {NUMBER}x whole tick, {NUMBER}x without"
        assert re.search(ratios, out)
    assert "== schedule at interval 0.01 s over 12 ticks, tick 4 late by 0.03 s" in out
    assert re.search(rf"start error vs the ideal schedule: mean {NUMBER} ms, worst {NUMBER} ms", out)
    assert re.search(rf"burst after the late tick: (no|YES) \(smallest gap .* {NUMBER} ms", out)
    assert re.search(rf"cold start: scripts/run_live.py --mode mock --once, 1 runs: median {NUMBER} s", out)
    verdicts = re.findall(r"^  (.+?) +(?:-?\d+\.\d+ \S* +\(target <= [\d.]+\) )?(met|MISSED|n/a)$", out,
                          re.MULTILINE)  # fmt: skip
    assert len(verdicts) == 2 * 4 + 3, verdicts


def test_without_redis_the_heartbeat_is_reported_off(tmp_path: Path) -> None:
    argv = [sys.executable, str(REPO / "scripts" / "bench.py"), "--symbols", "2", "--ticks", "20",
            "--warmup", "5", "--synchronous", "NORMAL", "--baseline-ticks", "0", "--schedule-ticks", "0",
            "--cold-runs", "0", "--noise-samples", "0", "--workdir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^  heartbeat +off \(pass --redis", done.stdout, re.MULTILINE)
    assert not _stage_row(done.stdout, "heartbeat")


def _levels(snapshot: MarketSnapshot) -> dict[str, Any]:
    return {"fx": snapshot.fx, "books": {k: (b.bids, b.asks) for k, b in snapshot.books.items()}}


def test_the_baseline_replays_exactly_the_snapshots_the_loop_saw(tmp_path: Path) -> None:
    options = BenchOptions(workdir=tmp_path, symbols=4)
    config = bench_config(options, "NORMAL")
    bot = build_bot(config, data_dir=tmp_path / "data", interval_s=0.0, max_ticks=40,
                    alert=lambda key, text: None, env={}, clock=SystemClock())  # fmt: skip
    seen: list[dict[str, Any]] = []
    take = bot.feed.snapshot

    def recording_snapshot(changed: frozenset[tuple[str, str]] | None = None) -> MarketSnapshot:
        snapshot = take(changed)
        seen.append(_levels(snapshot))
        return snapshot

    bot.feed.snapshot = recording_snapshot  # type: ignore[method-assign]
    traded = 0

    class CountTrades:
        def after_tick(self, report: Any) -> None:
            nonlocal traded
            traded += report.traded

    bot.loop.hooks.append(CountTrades())
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert traded > 0, "trades consume liquidity mid-tick: the replay must not depend on them"
    replayed = [_levels(s) for s in replay_snapshots(config, 40)]
    assert replayed == seen


def _book(venue: str, bid: float, ask: float) -> OrderBook:
    return OrderBook(venue, "X/Q", ((bid, 1.0),), ((ask, 1.0),), 0.0, 0.0)


@pytest.mark.parametrize(
    ("books", "fx", "fees", "expected"),
    [
        # Buy on a at 100 (fee 1%), sell on b at 103 (fee 0): (103 - 101) / 100, of the buy's
        # notional before its fee (domain.spread, as the signal engine's).
        ({"a": (99.0, 100.0), "b": (103.0, 104.0)}, {"Q": 1.0}, (1.0, 0.0), (103 - 101) / 100 * 100),
        # No pair pays: the best is the least negative, buying on a (100) and selling on b (99.5).
        ({"a": (99.0, 100.0), "b": (99.5, 100.5)}, {"Q": 1.0}, (0.0, 0.0), (99.5 - 100.0) / 100.0 * 100),
        # FX applies to both sides alike: the spread in % does not change with the rate.
        ({"a": (99.0, 100.0), "b": (103.0, 104.0)}, {"Q": 1380.0}, (0.0, 0.0), 3.0),
    ],
)
def test_bare_best_spread(
    books: dict[str, tuple[float, float]], fx: dict[str, float], fees: tuple[float, float], expected: float
) -> None:
    snapshot = MarketSnapshot(0.0, {(v, "X"): _book(v, *ba) for v, ba in books.items()}, fx)
    best = bare_best_spread(snapshot, ["X"], [("a", "Q", fees[0]), ("b", "Q", fees[1])])
    assert best == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "p50", "p99", "top"),
    [
        ([3.0], 3.0, 3.0, 3.0),
        ([1.0, 2.0], 1.0, 2.0, 2.0),
        ([float(i) for i in range(1, 101)], 50.0, 99.0, 100.0),
        ([float(i) for i in range(1000, 0, -1)], 500.0, 990.0, 1000.0),
    ],
)
def test_stats_take_nearest_rank_percentiles(values: list[float], p50: float, p99: float, top: float) -> None:
    stats = Stats.of(values)
    assert (stats.n, stats.p50, stats.p99, stats.max) == (len(values), p50, p99, top)
