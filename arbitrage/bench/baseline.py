"""The bare baseline: the least a spread bot must do, timed over the snapshots the loop runs saw."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from arbitrage.bench.options import BenchOptions, bench_config
from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.spread import taker_net_spread_pct, taker_rates
from arbitrage.runtime.market_feed import MarketFeed
from arbitrage.runtime.wiring import build_fx
from arbitrage.venues.build import build_mock_venues


def bare_best_spread(snapshot: MarketSnapshot, assets: Sequence[str],
                     venues: Sequence[tuple[str, str, float]]) -> float | None:  # fmt: skip
    """The least a spread bot must do: the best top-of-book net spread (%) over every asset and
    ordered venue pair, after both taker fees and FX (domain.spread, as the signal engine's).
    `venues` are (name, quote, taker fee %)."""
    fx = snapshot.fx
    get, spread = snapshot.books.get, taker_net_spread_pct  # local names, looked up once
    sides = [(name, fx[quote], *taker_rates(fx[quote], fee)) for name, quote, fee in venues]
    best: float | None = None
    for asset in assets:
        for buy_venue, buy_fx, buy_k, _ in sides:
            buy = get((buy_venue, asset))
            if buy is None or not buy.asks:
                continue
            ask = buy.asks[0][0]
            for sell_venue, _, _, sell_k in sides:
                if sell_venue == buy_venue:
                    continue
                sell = get((sell_venue, asset))
                if sell is None or not sell.bids:
                    continue
                net = spread(ask, buy_fx, buy_k, sell.bids[0][0], sell_k)
                if best is None or net > best:
                    best = net
    return best


def replay_snapshots(config: AppConfig, ticks: int) -> Iterator[MarketSnapshot]:
    """The snapshots a bot run of `config` saw, tick by tick: the mock market's path depends on its
    seed alone, never on how often it is read nor on what an earlier tick traded."""
    clock = SystemClock()
    venues = build_mock_venues(config, clock)
    symbols = {(v, a): config.venue_symbol(v, a) for v in config.venues for a in config.symbols}
    feed = MarketFeed(venues.by_name, symbols, config.loop.book_depth, build_fx(config, venues.by_name),
                      clock, before_tick=venues.before_tick)  # fmt: skip
    for _ in range(ticks):
        yield feed.snapshot()


def materialized(snapshot: MarketSnapshot) -> MarketSnapshot:
    """The snapshot with every book side a plain tuple, as a stream delivers it: the mock
    market's sides are built lazily (ScaledSide), which the bare loop must not pay for."""
    books = {key: replace(book, bids=tuple(book.bids), asks=tuple(book.asks))
             for key, book in snapshot.books.items()}  # fmt: skip
    return replace(snapshot, books=books)


def run_baseline(options: BenchOptions, ticks: int) -> list[float]:
    """Milliseconds per snapshot of bare_best_spread, over the snapshots the loop runs saw."""
    config = bench_config(options, "FULL")
    venues = [(name, v.quote, v.taker_fee_pct) for name, v in config.venues.items()]
    assets = list(config.symbols)
    perf = time.perf_counter
    times: list[float] = []
    for i, lazy in enumerate(replay_snapshots(config, options.warmup + ticks)):
        snapshot = materialized(lazy)
        t = perf()
        bare_best_spread(snapshot, assets, venues)
        if i >= options.warmup:
            times.append((perf() - t) * 1000.0)
    return times
