#!/usr/bin/env python3
"""The loop's benchmark: `python scripts/bench.py [OPTIONS]` prints tick times, memory, the bare
baseline ratio, schedule accuracy and cold start (the arbitrage.bench package does the measuring)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.bench.driver import run_bench
from arbitrage.bench.options import BenchOptions


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--symbols", type=int, default=20, help="synthetic assets traded on every venue")
    p.add_argument("--venues", type=int, default=2, help="mock venues, quoting KRW and USDT in turn (>= 2)")
    p.add_argument("--ticks", type=int, default=20_000, help="measured ticks per loop run (interval 0)")
    p.add_argument("--warmup", type=int, default=200, help="ticks run before measuring (RSS start)")
    p.add_argument("--synchronous", choices=["FULL", "NORMAL", "both"], default="both",
                   help="SQLite ledger durability of the loop runs")  # fmt: skip
    p.add_argument("--fx", choices=["venue", "fixed"], default="venue", help="FX source")
    p.add_argument("--seed", type=int, default=42, help="mock market seed")
    p.add_argument("--redis", action="store_true",
                   help="beat the real Redis at 127.0.0.1:6379 db 14 (key prefix bench-<pid>)")  # fmt: skip
    p.add_argument("--baseline-ticks", type=int, default=5_000, help="snapshots for the bare baseline")
    p.add_argument("--schedule-ticks", type=int, default=200, help="ticks of the real-clock schedule run")
    p.add_argument("--schedule-interval", type=float, default=0.05, help="interval of the schedule run, s")
    p.add_argument("--late-tick", type=int, default=50, help="the tick made late in the schedule run")
    p.add_argument("--late-by", type=float, default=0.12, help="how late that tick is, s")
    p.add_argument("--cold-runs", type=int, default=5, help="cold starts of scripts/run_live.py --once")
    p.add_argument("--noise-samples", type=int, default=2_000, help="timings of a fixed workload (0: off)")
    p.add_argument("--record-ticks", type=int, default=0,
                   help="ticks per run of the recording cost (0: off)")  # fmt: skip
    p.add_argument("--record-rounds", type=int, default=3, help="recording runs, each alternating stretches")
    p.add_argument("--record-interval", type=float, default=0.01,
                   help="tick interval of the recording runs, s (0: back to back)")  # fmt: skip
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    sync = ("FULL", "NORMAL") if args.synchronous == "both" else (args.synchronous,)
    with tempfile.TemporaryDirectory(prefix="arb-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        options = BenchOptions(
            workdir=workdir,
            symbols=args.symbols,
            venues=args.venues,
            ticks=args.ticks,
            warmup=args.warmup,
            synchronous=sync,
            fx_source=args.fx,
            seed=args.seed,
            redis=args.redis,
            baseline_ticks=args.baseline_ticks,
            schedule_ticks=args.schedule_ticks,
            schedule_interval_s=args.schedule_interval,
            late_tick=args.late_tick,
            late_by_s=args.late_by,
            cold_runs=args.cold_runs,
            noise_samples=args.noise_samples,
            record_ticks=args.record_ticks,
            record_rounds=args.record_rounds,
            record_interval_s=args.record_interval,
        )
        run_bench(options, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
