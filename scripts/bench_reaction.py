#!/usr/bin/env python3
"""The reaction benchmark: `python scripts/bench_reaction.py [OPTIONS]` runs `arb sim` streaming
WebSocket books for N coins x 2 venues at a set update rate, the bot in live mode against it (in
this process, built as `arb run` builds it), opens spreads on the simulator one at a time, and
prints the reaction from the frame that made each opportunity to the order request at the socket
(p50 / p99 / max), in book-trigger mode and, for comparison, interval mode; with the ticks per
update, whether every update was taken exactly once, and the process's CPU."""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.bench.reaction import FrameWatch, OrderWire, TickStamps, reactions, stamp_order_path
from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.domain.book import BookListener
from arbitrage.ops.logs import reset_logging
from arbitrage.runtime.assembly import RunSettings, assemble
from arbitrage.runtime.loop import TickReport
from arbitrage.sim.control import SimControl
from arbitrage.sim.market import sim_assets
from arbitrage.sim.urls import sim_options, sim_urls
from arbitrage.venues.build import build_venues

REPO = Path(__file__).resolve().parent.parent
VENUES = {"upbit": "KRW", "binance": "USDT"}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--symbols", type=int, default=20, help="coins streamed on both venues")
    p.add_argument("--updates-per-s", type=float, default=10.0, help="book updates a second, per book")
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per mode")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before measuring (streams up, dry run)")
    p.add_argument("--spread-every", type=float, default=2.0, help="a spread is opened this often, s")
    p.add_argument("--premium", type=float, default=2.5, help="the opened spread: a coin's Upbit premium, %%")
    p.add_argument("--min-gap-ms", type=float, default=1.0, help="loop.min_gap_ms of the book-trigger run")
    p.add_argument("--interval", type=float, default=1.0, help="loop.interval_s (interval-mode run too)")
    p.add_argument("--modes", default="book,interval", help="which runs, in order")
    p.add_argument(
        "--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite ledger durability"
    )
    p.add_argument("--seed", type=int, default=3)
    p.add_argument(
        "--profile", action="store_true", help="also print where a reaction's time goes, by tick stage"
    )
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_config(
    args: argparse.Namespace, base_url: str, coins: list[str], trigger: str, key: str
) -> AppConfig:
    raw = yaml.safe_load((REPO / "config" / "live.yml").read_text(encoding="utf-8"))
    raw.update(
        mode={"current": "live"},
        symbols=coins,
        loop={**raw["loop"], "interval_s": args.interval, "trigger": trigger, "min_gap_ms": args.min_gap_ms},
        exit={**raw.get("exit", {}), "mode": "none"},  # every entry closes at once: inventory arbitrage
        redis={"enabled": False},
        health_server={"enabled": False},
        logging={**raw.get("logging", {}), "console": False},
        live_guards={"dry_run_cycles": 0},  # the guard is not what is measured here
        market_data={"use_websocket": True, "stale_after_s": 5.0},
        storage={"synchronous": args.synchronous},
    )
    raw["signal"].update(min_spread_pct=1.0, max_notional=300_000, min_notional=50_000)
    raw["safety"].update(max_orders_per_minute=100_000, halt_file=".halt-bench")
    raw["watchdog"].update(warn_loop_latency_ms=3000, max_loop_latency_ms=10_000)
    raw["sys_monitor"] = {**raw.get("sys_monitor", {}), "warn_cpu_pct": 1000, "max_cpu_pct": 1000}
    for name in VENUES:
        raw["venues"][name].update(
            urls=sim_urls(name, base_url), options=sim_options(name), timeout_ms=3000,
            api_key_env=f"BENCH_{name.upper()}_KEY", api_secret_env=f"BENCH_{name.upper()}_SECRET",
        )  # fmt: skip
        os.environ[f"BENCH_{name.upper()}_KEY"] = f"{key}-{name}"
        os.environ[f"BENCH_{name.upper()}_SECRET"] = "bench-secret"
    return parse_config(raw)


class Ticks:
    """Counts ticks and the updates they took once measuring has begun."""

    def __init__(self) -> None:
        self.measuring = False
        self.ticks = self.updates = 0

    def after_tick(self, report: TickReport) -> int | None:
        if self.measuring:
            self.ticks += 1
            self.updates += report.book_updates
        return None


def open_spreads(
    sim: SimControl, coins: list[str], premium: float, every: float, stop: threading.Event, wire: OrderWire
) -> int:
    """A spread on one coin at a time, alternately each way, closed again as soon as the bot sent
    an order on it (or after half the period): one entry per spread, and a bot at rest when the
    next one opens, so that each reaction is the loop's and not the queue behind a trading tick.
    The period is drawn from `every` to 1.5 x `every`, so that spreads do not open in step with an
    interval-triggered loop's grid."""
    rng = random.Random(len(coins))
    opened = 0
    while not stop.is_set():
        coin = coins[opened % len(coins)]
        sign = 1.0 if opened % 2 == 0 else -1.0
        sent = len(wire.orders)
        started = time.monotonic()
        sim.steer(coin, premium_pct=sign * premium)
        opened += 1
        while len(wire.orders) == sent and time.monotonic() - started < every / 2 and not stop.is_set():
            time.sleep(0.002)
        sim.steer(coin, premium_pct=0.0)
        period = every * (1.0 + rng.random() / 2)
        stop.wait(max(0.0, period - (time.monotonic() - started)))
    return opened


def run_mode(args: argparse.Namespace, sim: SimControl, base_url: str, coins: list[str], trigger: str,
             workdir: Path) -> dict[str, Any]:  # fmt: skip
    sim.reset()
    for coin in coins:
        sim.steer(coin, premium_pct=0.0, set_mean=True)
    config = bot_config(args, base_url, coins, trigger, f"bench-{trigger}-{os.getpid()}")
    watch = FrameWatch(config)

    def venues(config: AppConfig, clock: Any, env: Any, alert: Any, listeners: list[BookListener]) -> Any:
        return build_venues(config, clock, env, alert, [*listeners, watch])

    settings = RunSettings(workdir / trigger / "data", workdir / trigger / "logs", args.interval, None)
    os.chdir(workdir)
    run = assemble(config, settings, dict(os.environ), SystemClock(), make_venues=venues)
    bot = run.bot
    measured: dict[str, Any] = {}
    ticks = Ticks()
    bot.loop.hooks.append(ticks)
    stamps = TickStamps() if args.profile else None
    if stamps is not None:
        bot.loop.stage_timer = stamps
        bot.loop.hooks.append(stamps)
        measured["stamps"] = stamps
        stamp_order_path(stamps, bot.ledger, bot._pool)
    wire = OrderWire(stamps)
    stop = threading.Event()

    def conduct() -> None:
        if stop.wait(args.warmup):
            return
        ticks.measuring = True
        updates0, cpu0, t0 = bot.events.updates, time.process_time(), time.perf_counter()
        busy0 = watch.busy_ns
        measured["spreads"] = open_spreads(
            sim, coins, args.premium, args.spread_every, stop_after(args.seconds), wire
        )
        measured["wall_s"] = time.perf_counter() - t0
        measured["cpu_s"] = time.process_time() - cpu0
        measured["watch_s"] = (watch.busy_ns - busy0) / 1e9
        measured["updates"] = bot.events.updates - updates0
        bot.loop.request_stop("benchmark over")

    conductor = threading.Thread(target=conduct, daemon=True)
    try:
        with wire.installed(bot.venues.by_name):
            conductor.start()
            code = bot.loop.run()
            stop.set()
            if code != 0 or "spreads" not in measured:
                raise RuntimeError(
                    f"the bot stopped early (exit {code}: {bot.loop.stop_reason}); see {settings.log_dir}"
                )
            conductor.join(30)
        bot.venues.close()  # streams stopped first: the counts below are final
        told, taken, pending = bot.events.counts()
        measured.update(
            reactions=reactions(watch, wire, list(VENUES)), ticks=ticks.ticks, tick_updates=ticks.updates,
            all_updates=told, taken=taken, pending=pending, frames=watch.frames,
            trades=bot.state.counters.trades,
        )  # fmt: skip
    finally:
        run.close()
        reset_logging()
    return measured


def stop_after(seconds: float) -> threading.Event:
    done = threading.Event()
    threading.Timer(seconds, done.set).start()
    return done


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(trigger: str, args: argparse.Namespace, m: dict[str, Any]) -> list[str]:
    r = m["reactions"]
    lines = [f"== {trigger} trigger" + (f" (interval {args.interval:g} s)" if trigger == "interval" else
             f" (min_gap {args.min_gap_ms:g} ms, full pass every {args.interval:g} s)")]  # fmt: skip
    if r.first_ms:
        lines.append(
            f"reaction frame -> order at the socket, ms: p50 {statistics.median(r.first_ms):.3f}  "
            f"p99 {pct(r.first_ms, 0.99):.3f}  max {max(r.first_ms):.3f}  "
            f"({len(r.first_ms)} legs of {m['spreads']} spreads opened; {r.repeats} re-entries, "
            f"{r.unmatched} other orders)"
        )
    else:
        lines.append(f"reaction: no order matched an opportunity ({m['spreads']} spreads opened)")
    if r.splits and args.profile:
        keys = sorted({k for split in r.splits for k in split}, key=lambda k: statistics.median(
            [split[k] for split in r.splits if k in split]))  # fmt: skip
        marks = [f"{k} {statistics.median([s[k] for s in r.splits if k in s]):.2f}" for k in keys]
        lines.append("  median ms from the frame to each stage mark (> begins, < ends): " + ", ".join(marks))
        lines.append("  every reaction, ms: " + " ".join(f"{v:.1f}" for v in sorted(r.first_ms)))
    stamps = m.get("stamps")
    if stamps is not None and stamps.cycles_ms:
        body = [c[0] for c in stamps.cycles_ms]
        whole = [c[1] for c in stamps.cycles_ms]
        lines.append(
            f"  a tick, ms: start to metrics line p50 {statistics.median(body):.2f} "
            f"p90 {pct(body, 0.9):.2f}; with its hooks p50 {statistics.median(whole):.2f} "
            f"p90 {pct(whole, 0.9):.2f}"
        )
    per_tick = m["tick_updates"] / m["ticks"] if m["ticks"] else 0.0
    rate = m["updates"] / m["wall_s"]
    lines.append(
        f"updates {m['updates']} in {m['wall_s']:.1f} s ({rate:.0f}/s), ticks {m['ticks']}: "
        f"{m['ticks'] / max(1, m['updates']):.3f} ticks per update ({per_tick:.1f} updates per tick)"
    )
    lost = m["all_updates"] - m["taken"] - m["pending"]
    lines.append(
        f"updates told {m['all_updates']}, taken by ticks {m['taken']}, pending {m['pending']}: "
        f"{lost} lost or taken twice; frames seen beside the loop {m['frames']}"
    )
    cpu = 100.0 * m["cpu_s"] / m["wall_s"]
    bot_cpu = 100.0 * (m["cpu_s"] - m["watch_s"]) / m["wall_s"]
    lines.append(
        f"CPU of this process: {cpu:.1f}% of one core ({bot_cpu:.1f}% without the bench's frame watch)"
    )
    return lines


def main(argv: list[str]) -> int:
    args = parse(argv)
    coins = list(sim_assets(args.symbols))
    port = free_port()
    tick_ms = 1000.0 / args.updates_per_s
    sim_cmd = [sys.executable, "-m", "arbitrage", "sim", "--port", str(port), "--tick-ms", f"{tick_ms:g}",
               "--coins", str(args.symbols), "--seed", str(args.seed)]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="arb-reaction-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        sim_proc = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            sim = SimControl(base_url)
            deadline = time.monotonic() + 30
            while True:
                try:
                    sim.health()
                    break
                except Exception:
                    if time.monotonic() > deadline or sim_proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            print(f"arb sim: {args.symbols} coins x 2 venues, {args.updates_per_s:g} updates/s per book "
                  f"(--tick-ms {tick_ms:g}), bot in live mode over WebSocket", flush=True)  # fmt: skip
            for trigger in args.modes.split(","):
                measured = run_mode(args, sim, base_url, coins, trigger, workdir)
                for line in report(trigger, args, measured):
                    print(line, flush=True)
        finally:
            sim_proc.terminate()
            sim_proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
