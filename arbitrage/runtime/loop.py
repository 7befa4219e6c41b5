"""The synchronous live loop: one tick after another, on a monotonic schedule or on book updates.

Each tick: snapshot -> engines in order (intents carried out as each engine returns them) ->
metrics line -> tick hooks (watchdog, sysmonitor, heartbeat, dry-run gate). With the interval
trigger, tick k starts at t0 + k*interval; a late tick skips the slots it missed instead of
bursting to catch up. With the book trigger, a tick starts when a stream delivers a changed book
(all updates since the last tick make one tick), at least min_gap after the last one ended, and a
full pass over every book runs at least every interval.
A StageTimer (by default one that does nothing) is told when each named stage of a tick begins
and ends: the benchmark plugs in there.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal, Protocol

from arbitrage.clock import Clock
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.decisions import EntryIntent, ExitIntent, SafetyVerdict
from arbitrage.domain.opportunity import Opportunity
from arbitrage.engines.base import Engine, EngineOutput, TickContext
from arbitrage.runtime.book_events import BookEvents, BookKey
from arbitrage.runtime.intent_executor import EntryGate, IntentExecutor
from arbitrage.runtime.market_feed import MarketFeed
from arbitrage.runtime.metrics_line import TickFigures, metrics_line
from arbitrage.runtime.pair_trader import PairTrader
from arbitrage.runtime.rejection_log import FLUSH_S, RejectionLog
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger import Ledger

log = logging.getLogger("arbitrage.live_loop")
exec_log = logging.getLogger("arbitrage.execution")

INTENTS = (EntryIntent, ExitIntent)


@dataclass
class TickReport:
    tick: int
    started_at: float  # monotonic
    loop_ms: float
    figures: TickFigures
    metrics: dict[str, float] = field(default_factory=dict)  # every engine metric, "engine.metric"
    traded: bool = False
    live_errors: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    books: int = 0
    stale_books: int = 0
    # Actual minus scheduled start (t0 + k*interval), ms: how late the tick began (negative if a
    # wait woke early); 0 for a tick run outside the schedule.
    start_error_ms: float = 0.0
    # A book-triggered tick: the books streamed updates changed (None on a full pass over every
    # book) and how many updates made them.
    changed_books: int | None = None
    book_updates: int = 0


class TickHook(Protocol):
    def after_tick(self, report: TickReport) -> int | None:
        """Observe a finished tick; return an exit code to stop the loop, None to go on."""


class StageTimer(Protocol):
    """Told when each named stage of a tick begins and ends: snapshot, residuals, each engine,
    <engine>.orders, sysmonitor, logging. Stages never nest; one entered twice in a tick (residuals,
    after trading) adds up. The loop's only concession to measuring it."""

    def enter(self, stage: str) -> None: ...

    def leave(self, stage: str) -> None: ...


class NoStageTimer:
    """The default: two empty calls per stage, nothing read, nothing kept."""

    def enter(self, stage: str) -> None:
        return None

    def leave(self, stage: str) -> None:
        return None


NO_STAGE_TIMER = NoStageTimer()

SysSampler = Callable[[], tuple[float, float]]  # -> (cpu %, rss MB)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What the loop itself needs of the configuration, cut out in one place (the wiring)."""

    interval_s: float
    max_ticks: int | None  # None: until stopped
    accounting_currency: str  # for the metrics line
    max_book_age_ms: float  # a book older than this counts as stale (and blocks an entry)
    halt_file: Path | None = None  # the operator's halt switch, checked each tick
    live: bool = False  # live mode: the metrics line says so
    # "book": tick on streamed book updates (interval_s the longest wait, and a full pass at least
    # that often); "interval": tick on the fixed grid. Book needs a feed that signals (`events`).
    trigger: Literal["interval", "book"] = "interval"
    min_gap_ms: float = 0.0  # book trigger: the least idle time between one tick and the next
    # Ticks between metrics lines (the first tick's is always written): 1 in a run (the operator
    # watches the log); a replay writes one a minute of data time, as a line per tick would cost
    # it ~5% of a tick and tell no one anything.
    metrics_line_every: int = 1
    # Seconds (of the loop's clock) between writes of the counted safety rejections to the ledger.
    # The rows come out the same whatever the pace (each write adds counts); a replay writes them
    # once a minute of data time, as every 5 s was a write per 5 ticks for a statistic.
    rejections_flush_s: float = FLUSH_S


class LiveLoop:
    def __init__(
        self,
        *,
        settings: LoopSettings,
        clock: Clock,
        feed: MarketFeed,
        engines: Sequence[Engine],
        trader: PairTrader,
        state: BotState,
        ledger: Ledger,
        hooks: Sequence[TickHook] = (),
        sys_sample: SysSampler | None = None,
        print_line: Callable[[str], None] | None = None,
        stage_timer: StageTimer = NO_STAGE_TIMER,
        events: BookEvents | None = None,
        entry_gate: EntryGate | None = None,
    ) -> None:
        self._settings = settings
        self._events = events
        self._clock = clock
        self._feed = feed
        self._engines = list(engines)
        self._trader = trader
        self.state = state
        self._ledger = ledger
        self._interval = settings.interval_s
        self._max_ticks = settings.max_ticks
        self.hooks = list(hooks)
        self.sys_sample = sys_sample
        self.stage_timer = stage_timer
        self._halt_file = settings.halt_file
        self._live = settings.live
        self._print = print_line or log.info
        self._stop = threading.Event()
        self.exit_code = 0
        self.stop_reason = ""
        self.last_report: TickReport | None = None
        self.last_snapshot: MarketSnapshot | None = None  # for the tick hooks (the operator's console)
        self.last_tick_wall: float | None = None
        self._loggers = {e.name: logging.getLogger(f"arbitrage.{e.name}") for e in self._engines}
        self._engine_metrics: dict[str, float] = {}
        self.rejection_log = RejectionLog(ledger, clock, settings.rejections_flush_s)
        self._executor = IntentExecutor(
            settings.max_book_age_ms,
            clock,
            feed,
            trader,
            state,
            ledger,
            self._stop.is_set,
            entry_gate=entry_gate,
        )

    # Control -------------------------------------------------------------------------------

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        if self._stop.is_set():
            return
        self.stop_reason = reason
        self.exit_code = exit_code
        self._stop.set()
        if self._events is not None:
            self._events.interrupt()  # a loop waiting for books wakes to stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        """Tick until --loops is reached or a stop is requested; returns the exit code."""
        events = self._events
        if events is not None and self._settings.trigger == "book":
            return self._run_on_books(events)
        t0 = self._clock.monotonic()
        k = 0
        done = 0
        while not self._stop.is_set():
            ideal = t0 + k * self._interval
            start = self._clock.monotonic()
            got = events.take() if events is not None else None  # a full pass takes every update
            report = self.run_tick(start, scheduled=ideal)
            report.book_updates = got.updates if got is not None else 0
            done += 1
            if self._after_tick(report) or (self._max_ticks is not None and done >= self._max_ticks):
                break
            now = self._clock.monotonic()
            if self._interval <= 0:
                k += 1
                continue
            # The next slot after now: a late tick skips missed slots rather than bursting.
            k = max(k + 1, math.ceil((now - t0) / self._interval))
            delay = t0 + k * self._interval - now
            if delay > 0:
                self._clock.wait(self._stop, delay)
        return self.exit_code

    def _run_on_books(self, events: BookEvents) -> int:
        """Tick on streamed book updates; see the module docstring."""
        clock, stop, interval = self._clock, self._stop, self._interval
        gap = self._settings.min_gap_ms / 1000.0
        last_full: float | None = None
        done = 0
        start = clock.monotonic()
        while not stop.is_set():
            got = events.take()  # every update so far is this tick's, whatever it reads
            full = last_full is None or start - last_full >= interval
            if full:
                last_full = start
            report = self.run_tick(start, changed=None if full else got.keys)
            report.book_updates = got.updates
            done += 1
            if self._after_tick(report) or (self._max_ticks is not None and done >= self._max_ticks):
                break
            if gap > 0 and clock.wait(stop, gap):  # a hot market must leave the process some time
                break
            assert last_full is not None
            wait = last_full + interval - clock.monotonic()
            if wait > 0 and not events.signal.is_set():
                clock.wait(events.signal, wait)
            start = clock.monotonic()
        return self.exit_code

    def _after_tick(self, report: TickReport) -> bool:
        """The tick hooks, in order; True when the loop is to stop."""
        for hook in self.hooks:
            code = hook.after_tick(report)
            if code is not None:
                self.request_stop(f"{type(hook).__name__} requested exit {code}", code)
        return self._stop.is_set()

    # One tick ------------------------------------------------------------------------------

    def run_tick(
        self,
        started: float | None = None,
        scheduled: float | None = None,
        changed: frozenset[BookKey] | None = None,
    ) -> TickReport:
        """One tick, its steps in the order docs/ARCHITECTURE.md (The tick) gives them; `changed`
        (the books streamed updates changed) narrows it to those, None is a full pass."""
        t_start = time.perf_counter()
        started = self._clock.monotonic() if started is None else started
        counters = self.state.counters
        counters.ticks += 1
        tick = counters.ticks
        snapshot, live_errors = self._snapshot(changed)
        self.last_snapshot = snapshot
        self._trading_day_and_halt(snapshot)
        live_errors += self._residuals(snapshot, resolve=True)
        traded, rejections, errors = self._engines_and_intents(tick, snapshot)
        live_errors += errors
        if traded:
            # Several pairs of one tick can each leave a residual within the bound and together
            # exceed it: unwind now, so that no tick ends over execution.max_unhedged_qty.
            live_errors += self._residuals(snapshot, resolve=False)
        self.rejection_log.flush_if_due()
        counters.live_errors += live_errors
        loop_ms = (time.perf_counter() - t_start) * 1000.0
        figures = self._metrics(loop_ms)
        self.last_tick_wall = self._clock.time()
        report = TickReport(
            tick=tick,
            started_at=started,
            loop_ms=loop_ms,
            figures=figures,
            metrics=dict(self._engine_metrics),
            traded=traded,
            live_errors=live_errors,
            rejections=rejections,
            books=len(snapshot.books) - len(snapshot.carried),  # the books that came this tick
            stale_books=self._stale_books(snapshot),
            start_error_ms=0.0 if scheduled is None else (started - scheduled) * 1000.0,
            changed_books=None if snapshot.changed is None else len(snapshot.changed),
        )
        self.last_report = report
        return report

    # The steps of a tick -------------------------------------------------------------------

    def _snapshot(self, changed: frozenset[BookKey] | None) -> tuple[MarketSnapshot, int]:
        """Every book on every venue and the FX rates; the reads that failed are live errors."""
        self.stage_timer.enter("snapshot")
        snapshot = self._feed.snapshot(changed)
        live_errors = self._feed.errors_last_tick
        self.stage_timer.leave("snapshot")
        return snapshot, live_errors

    def _trading_day_and_halt(self, snapshot: MarketSnapshot) -> None:
        state = self.state
        if state.roll_day(snapshot.ts, None):
            state.daily_realized = self._ledger.daily_pnl(state.day)
            # Once a day: the day's fees and trades so far (a restart mid-day keeps counting on).
            for row in self._ledger.daily_rows():
                if row["day"] == state.day:
                    state.daily_fees, state.daily_trades = Decimal(row["fees"]), int(row["trades"])
            log.info("trading day %s: realized so far %s", state.day, state.daily_realized)
        if self._halt_file is not None:
            halted = self._halt_file.exists()
            if halted != state.halted:
                log.warning("operator halt %s (%s)", "ON" if halted else "OFF", self._halt_file)
            state.halted = halted
            state.halt_reason = f"halt file {self._halt_file} exists" if halted else ""

    def _residuals(self, snapshot: MarketSnapshot, resolve: bool) -> int:
        """Orders of unknown outcome (at the start of a tick) and residual inventory; returns the
        live errors."""
        self.stage_timer.enter("residuals")
        errors = 0
        if resolve:
            errors += self._guarded(
                "resolving orders of unknown outcome", self._trader.resolve_unresolved, snapshot
            )
        errors += self._guarded("hedging residual inventory", self._trader.hedger.hedge_residuals, snapshot)
        self.stage_timer.leave("residuals")
        return errors

    def _engines_and_intents(self, tick: int, snapshot: MarketSnapshot) -> tuple[bool, dict[str, int], int]:
        """The engines in order, each one's intents carried out as it returns them; returns whether
        anything traded, the safety rejections by reason, and the live errors."""
        timer, state = self.stage_timer, self.state
        state.venues = self._feed.venue_statuses()
        ctx = TickContext(tick=tick, snapshot=snapshot, state=state.view())
        traded = False
        live_errors = 0
        rejections: dict[str, int] = {}
        metrics = self._engine_metrics
        metrics.clear()
        for engine in self._engines:
            timer.enter(engine.name)
            try:
                out = engine.on_tick(ctx)
            except Exception:
                live_errors += 1
                self._loggers[engine.name].exception("engine %s raised; tick goes on without it", engine.name)
                timer.leave(engine.name)
                continue
            timer.leave(engine.name)
            ctx.decisions[engine.name] = out.decisions
            self._absorb(engine.name, out, metrics, rejections, snapshot.ts)
            intents = [d for d in out.decisions if isinstance(d, INTENTS)]
            if intents:
                orders = f"{engine.name}.orders"
                timer.enter(orders)
                live_errors += self._executor.carry_out(intents, tick, snapshot)
                traded = True
                ctx.state = state.view()
                timer.leave(orders)
        return traded, rejections, live_errors

    def _metrics(self, loop_ms: float) -> TickFigures:
        """The tick's figures, written as the metrics line."""
        timer, state, counters = self.stage_timer, self.state, self.state.counters
        metrics = self._engine_metrics
        timer.enter("sysmonitor")
        cpu, mem = self.sys_sample() if self.sys_sample else (0.0, 0.0)
        timer.leave("sysmonitor")
        realized = float(state.run_realized)
        unrealized = metrics.get("position.unrealized_pnl", 0.0)
        figures = TickFigures(
            pnl=realized + unrealized,
            trades=counters.trades,
            open_pos=len(state.positions),
            exposure=metrics.get("position.exposure", 0.0),
            realized_pnl=realized,
            signals=counters.signals,
            exec_rate_pct=100.0 * counters.entries / counters.signals if counters.signals else 0.0,
            safety_rejections=counters.safety_rejections,
            sl_triggers=counters.sl_triggers,
            loop_ms=loop_ms,
            cpu_pct=cpu,
            mem_mb=mem,
            live=self._live,
        )
        if (counters.ticks - 1) % self._settings.metrics_line_every == 0:  # the first tick's, and on
            timer.enter("logging")
            self._print(metrics_line(figures, self._settings.accounting_currency))
            timer.leave("logging")
        return figures

    def _stale_books(self, snapshot: MarketSnapshot) -> int:
        # OrderBook.age_ms written out, as this runs over every book of every tick (the limit is
        # positive, so age_ms's floor at zero changes nothing here).
        max_age = self._settings.max_book_age_ms
        now = snapshot.ts
        return sum(1 for b in snapshot.books.values() if (now - b.exchange_ts) * 1000.0 > max_age)

    def _guarded(self, what: str, step: Callable[[MarketSnapshot], None], snapshot: MarketSnapshot) -> int:
        """Run a trader step outside the engines; a failure is a live error, never the loop's end."""
        try:
            step(snapshot)
        except Exception:
            exec_log.exception("%s failed; the tick goes on", what)
            return 1
        return 0

    def _absorb(
        self,
        name: str,
        out: EngineOutput,
        metrics: dict[str, float],
        rejections: dict[str, int],
        ts: float,
    ) -> None:
        counters = self.state.counters
        logger = self._loggers[name]
        for note in out.notes:
            logger.log(logging.getLevelName(note.level), note.message)
        for key, value in out.metrics.items():
            metrics[f"{name}.{key}"] = value
        for d in out.decisions:
            if isinstance(d, Opportunity):
                counters.signals += 1
            elif isinstance(d, SafetyVerdict):
                if d.approved:
                    counters.approvals += 1
                else:
                    counters.safety_rejections += 1
                    counters.rejections[d.reason or ""] += 1
                    rejections[d.reason or ""] = rejections.get(d.reason or "", 0) + 1
                    self.rejection_log.count(self.state.day, d, ts)
