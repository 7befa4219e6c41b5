#!/usr/bin/env python3
"""Record the mock market without running the bot: `python scripts/make_recording.py --config C
--out DIR --seconds N --rate R` steps the config's mock market R times per simulated second for N
seconds and writes every venue's books (FX markets included) in the recording format, for
`arb replay` to trade on. The market is the one `arb run --mode mock` trades (same seed, same
path), only stamped with data time from --start instead of the wall clock."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, load_config
from arbitrage.recording.batch_writer import BatchWriter
from arbitrage.venues.mock_market import MockMarket


def make_recording(config: AppConfig, out: Path, seconds: float, rate: float, start: float) -> int:
    """Write the recording; the number of books written."""
    clock = FakeClock(start=start)
    market = MockMarket(config, clock)
    depth = max(vc.mock.depth_levels for vc in config.venues.values())
    writer = BatchWriter(out, depth, "mock", {name: vc.exchange for name, vc in config.venues.items()})
    markets = [(venue, symbol) for venue in config.venues for symbol in market.symbols(venue)]
    steps = int(seconds * rate)
    written = 0
    for _ in range(steps):
        market.step()
        writer.write(market.book(venue, symbol, depth) for venue, symbol in markets)
        written += len(markets)
        clock.advance(1.0 / rate)
    writer.close()
    return written


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="config/live.yml", help="its venues, symbols and mock section")
    p.add_argument("--out", type=Path, required=True, help="the recording's directory")
    p.add_argument("--seconds", type=float, default=600.0, help="simulated seconds to record")
    p.add_argument("--rate", type=float, default=1.0, help="book updates per second per market")
    p.add_argument("--start", default="2026-01-05T00:00:00", help="data time of the first book, UTC")
    args = p.parse_args(argv)
    config = load_config(args.config, "mock")
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC).timestamp()
    began = time.perf_counter()
    books = make_recording(config, args.out, args.seconds, args.rate, start)
    print(f"wrote {books:,} books to {args.out} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
