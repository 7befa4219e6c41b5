"""The fleet's benchmark: `python scripts/bench_fleet.py [OPTIONS]` prints the shared risk budget's
reservation round trip on loopback Redis (db 14) and the tick times of N workers at once next to one
worker alone (arbitrage.bench.fleet does the measuring)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.bench.fleet import run_fleet_bench
from arbitrage.bench.options import BenchOptions


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--reservations", type=int, default=10_000, help="admissions timed, each then released")
    p.add_argument("--workers", type=int, default=3, help="workers ticking at once")
    p.add_argument("--symbols", type=int, default=20, help="synthetic assets per worker")
    p.add_argument("--ticks", type=int, default=2_000, help="measured ticks per worker")
    p.add_argument("--warmup", type=int, default=100, help="ticks run before measuring")
    p.add_argument("--interval", type=float, default=0.0, help="loop.interval_s of each worker (0: no wait)")
    p.add_argument("--seed", type=int, default=42, help="mock market seed")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="arb-bench-fleet-") as tmp:
        options = BenchOptions(workdir=Path(tmp), symbols=args.symbols, warmup=args.warmup, seed=args.seed)
        run_fleet_bench(options, args.reservations, args.workers, args.ticks, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
