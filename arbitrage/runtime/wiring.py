"""The bot built from the config: ledger, venues, feed, sender, pair trader, recovery and loop.
runtime.assembly builds the run around it; everything else receives what it needs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig
from arbitrage.domain.book import BookListener
from arbitrage.domain.legs import ResidualBook
from arbitrage.domain.orders import Order
from arbitrage.engines.base import Engine, VenueStatus
from arbitrage.engines.registry import build_engines
from arbitrage.runtime.book_events import BookEvents
from arbitrage.runtime.bookkeeper import Bookkeeper
from arbitrage.runtime.loop import LiveLoop, LoopSettings, TickHook
from arbitrage.runtime.market_feed import FixedFx, FxSource, MarketFeed, VenueFx
from arbitrage.runtime.order_sender import OrderSender, Placement
from arbitrage.runtime.pair_trader import LegRunner, PairTrader
from arbitrage.runtime.recovery import Recovery
from arbitrage.runtime.rejection_log import FLUSH_S
from arbitrage.runtime.residual_hedger import ResidualHedger
from arbitrage.runtime.state import BotState
from arbitrage.runtime.tick_reads import TickReader
from arbitrage.store.instance_lock import InstanceLock, acquire_instance_lock
from arbitrage.store.ledger import Ledger, ledger_url, open_ledger
from arbitrage.venues.base import AlertFn, Venue, Venues
from arbitrage.venues.build import build_venues

if TYPE_CHECKING:  # redis-py is imported only by a fleet's workers
    from arbitrage.runtime.shared_budget import SharedBudget
    from arbitrage.store.risk_budget import RiskBudget

# How a run gets its venues: build_venues for run and bench; a replay passes venues of its own.
# Its arguments after the alert: the listeners to be told of every book the venues' feeds deliver,
# and the recorders to be told of those and of every book read over REST in a stream's stead.
VenueFactory = Callable[
    [AppConfig, Clock, Mapping[str, str], AlertFn, Sequence[BookListener], Sequence[BookListener]], Venues
]

log = logging.getLogger("arbitrage.live_loop")


def lock_instance(config: AppConfig, data_dir: Path, clock: Clock) -> InstanceLock:
    """The run's hold on its ledger and data dir; AlreadyRunning names the bot that has them."""
    return acquire_instance_lock(ledger_url(config, data_dir), data_dir, config.instance, clock.time)


def build_fx(config: AppConfig, venues: Mapping[str, Venue]) -> FxSource:
    if config.fx.source == "fixed":
        return FixedFx(config.accounting_currency, config.fx.fixed)
    return VenueFx(config.accounting_currency, config.fx.venue, config.fx.symbol)


def sequential_legs(sender: OrderSender) -> LegRunner:
    def run(legs: list[Order]) -> list[Placement]:
        return [sender.place(order) for order in legs]

    return run


def concurrent_legs(sender: OrderSender, pool: ThreadPoolExecutor) -> LegRunner:
    def run(legs: list[Order]) -> list[Placement]:
        # The first leg goes out from this thread at once, while a worker wakes for the others:
        # a hand-off to a thread costs the first leg a scheduler wake-up (milliseconds on a busy
        # machine) between the ledger's commit and the venue's socket.
        others = [pool.submit(sender.place, order) for order in legs[1:]]
        try:
            first = [sender.place(legs[0])] if legs else []
        finally:
            placed = [f.result() for f in others]  # never return while a leg is still going out
        return first + placed

    return run


@dataclass
class Bot:
    config: AppConfig
    clock: Clock
    ledger: Ledger
    venues: Venues
    state: BotState
    feed: MarketFeed
    sender: OrderSender
    trader: PairTrader
    loop: LiveLoop
    recovery: Recovery  # its `last` report: what the start-up reconciliation found
    events: BookEvents  # the books the feeds changed since the last tick, and their counts
    shared_budget: SharedBudget | None = None  # the fleet's risk budget, with fleet.enabled
    _pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.feed.close()
        self.venues.close()
        self.ledger.close()


def initial_state(
    config: AppConfig, venues: Mapping[str, Venue], symbols: Mapping[tuple[str, str], str]
) -> BotState:
    state = BotState(
        mode=config.mode.current,
        accounting_currency=config.accounting_currency,
        utc_offset_h=config.safety.trading_day_utc_offset_h,
    )
    for name, venue in venues.items():
        state.balances[name] = venue.balances()
        state.initial_balances[name] = dict(state.balances[name])
        state.venues[name] = VenueStatus(name=name, quote=venue.quote, taker_fee_pct=venue.taker_fee_pct)
    for (venue_name, _asset), symbol in symbols.items():
        state.rules[(venue_name, symbol)] = venues[venue_name].rules(symbol)
    return state


def build_bot(
    config: AppConfig,
    *,
    data_dir: Path,
    interval_s: float,
    max_ticks: int | None,
    alert: AlertFn,
    metrics_line_every: int = 1,
    rejections_flush_s: float = FLUSH_S,
    env: Mapping[str, str],
    clock: Clock | None = None,
    hooks: list[TickHook] | None = None,
    sys_sample: Callable[[], tuple[float, float]] | None = None,
    print_line: Callable[[str], None] | None = None,
    publish: Callable[[str, dict[str, Any]], object] | None = None,
    engines: Sequence[Engine] | None = None,
    make_venues: VenueFactory = build_venues,
    recorders: Sequence[BookListener] = (),
    risk_budget: RiskBudget | None = None,
) -> Bot:
    """The bot for `config`; `engines` already built from it (by the session, before any file
    is created) or None to build them here; its venues from `make_venues`, telling
    `recorders` of every book they deliver or read; with `risk_budget`, a worker of a fleet whose
    entries are reserved in it."""
    clock = clock or SystemClock()
    if engines is None:
        engines = build_engines(config)  # a bad engine path fails before anything opens
    ledger = open_ledger(ledger_url(config, data_dir), config.storage.synchronous, config.instance)
    events = BookEvents()
    try:
        venues = make_venues(config, clock, env, alert, [events], recorders)
    except BaseException:
        ledger.close()
        raise
    symbols = {(v, a): config.venue_symbol(v, a) for v in config.venues for a in config.symbols}
    state = initial_state(config, venues.by_name, symbols)
    for position in ledger.open_positions():
        state.put_position(position)
    feed = _market_feed(config, venues, symbols, clock)
    sender = OrderSender(venues.by_name, ledger, clock, alert)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leg") if venues.concurrent_legs else None
    run_legs = concurrent_legs(sender, pool) if pool is not None else sequential_legs(sender)
    books = Bookkeeper(
        config.exit, config.accounting_currency, state, ledger, venues.by_name, alert, clock, publish=publish
    )
    hedger = ResidualHedger(
        config.execution, config.venue_symbol, books, venues.by_name, sender, feed.book, ResidualBook()
    )
    trader = PairTrader(config.execution, books, hedger, venues.by_name, sender, run_legs, feed.book)
    recovery = Recovery(
        ledger, venues.by_name, sender, trader, state, clock, alert, fx=feed.fx_now, mid=feed.mid
    )
    shared: SharedBudget | None = None
    if risk_budget is not None:
        from arbitrage.runtime.shared_budget import SharedBudget

        shared = SharedBudget(risk_budget, state, ledger.daily_pnl)
    settings = _loop_settings(config, venues, interval_s, max_ticks, metrics_line_every, rejections_flush_s)
    loop = LiveLoop(
        settings=settings,
        clock=clock,
        feed=feed,
        engines=engines,
        trader=trader,
        state=state,
        ledger=ledger,
        hooks=[recovery, *([shared] if shared is not None else []), *(hooks or [])],
        sys_sample=sys_sample,
        print_line=print_line,
        events=events,
        entry_gate=shared,
    )
    bot = Bot(
        config, clock, ledger, venues, state, feed, sender, trader, loop, recovery, events, shared, _pool=pool
    )
    recovery.run()  # reconcile with the venues before the first tick
    if shared is not None:
        shared.start()  # the worker's open positions, as recovery left them, are its reservations
    return bot


def _market_feed(
    config: AppConfig, venues: Venues, symbols: Mapping[tuple[str, str], str], clock: Clock
) -> MarketFeed:
    """The tick's books and FX; remote venues read in parallel within the tick's read budget."""
    reader = None
    if venues.remote_reads:
        budget_s = config.tick_read_budget_ms() / 1000.0
        reader = TickReader(venues.by_name, clock, budget_s, concurrent=True)
    return MarketFeed(
        venues.by_name,
        symbols,
        config.loop.book_depth,
        build_fx(config, venues.by_name),
        clock,
        before_tick=venues.before_tick,
        reader=reader,
    )


def _loop_settings(
    config: AppConfig,
    venues: Venues,
    interval_s: float,
    max_ticks: int | None,
    metrics_line_every: int,
    rejections_flush_s: float,
) -> LoopSettings:
    """The loop's settings; ticking on book updates only where the venues' feeds signal them."""
    trigger = config.loop_trigger()
    if trigger == "book" and not venues.signals_books:
        log.info("loop: ticks every %gs (the venues' feeds do not signal book updates)", interval_s)
        trigger = "interval"
    elif trigger == "book":
        log.info(
            "loop: ticks on streamed book updates, at least %g ms apart, every book looked at every %gs",
            config.loop.min_gap_ms,
            interval_s,
        )
    return LoopSettings(
        interval_s=interval_s,
        max_ticks=max_ticks,
        accounting_currency=config.accounting_currency,
        max_book_age_ms=config.safety.max_book_age_ms,
        halt_file=Path(config.safety.halt_file),
        live=config.mode.current == "live",
        trigger=trigger,
        min_gap_ms=config.loop.min_gap_ms,
        metrics_line_every=metrics_line_every,
        rejections_flush_s=rejections_flush_s,
    )
