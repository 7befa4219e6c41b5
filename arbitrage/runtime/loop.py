"""The synchronous live loop: one tick after another on a monotonic schedule.

Each tick: snapshot -> engines in order (intents carried out as each engine returns them) ->
metrics line -> tick hooks (watchdog, sysmonitor, heartbeat, dry-run gate). Tick k starts at
t0 + k*interval; a late tick skips the slots it missed instead of bursting to catch up.
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
from pathlib import Path
from typing import Protocol

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.decisions import EntryIntent, ExitIntent, SafetyVerdict
from arbitrage.domain.opportunity import Opportunity
from arbitrage.engines.base import Engine, EngineOutput, TickContext
from arbitrage.runtime.market_feed import MarketFeed
from arbitrage.runtime.metrics_line import TickFigures, metrics_line
from arbitrage.runtime.pair_trader import PairTrader
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


class LiveLoop:
    def __init__(
        self,
        *,
        config: AppConfig,
        clock: Clock,
        feed: MarketFeed,
        engines: Sequence[Engine],
        trader: PairTrader,
        state: BotState,
        ledger: Ledger,
        interval_s: float,
        max_ticks: int | None,
        hooks: Sequence[TickHook] = (),
        sys_sample: SysSampler | None = None,
        halt_file: Path | None = None,
        live: bool = False,
        print_line: Callable[[str], None] | None = None,
        stage_timer: StageTimer = NO_STAGE_TIMER,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._feed = feed
        self._engines = list(engines)
        self._trader = trader
        self.state = state
        self._ledger = ledger
        self._interval = interval_s
        self._max_ticks = max_ticks
        self.hooks = list(hooks)
        self.sys_sample = sys_sample
        self.stage_timer = stage_timer
        self._halt_file = halt_file
        self._live = live
        self._print = print_line or log.info
        self._stop = threading.Event()
        self.exit_code = 0
        self.stop_reason = ""
        self.last_report: TickReport | None = None
        self.last_tick_wall: float | None = None
        self._loggers = {e.name: logging.getLogger(f"arbitrage.{e.name}") for e in self._engines}
        self._engine_metrics: dict[str, float] = {}

    # Control -------------------------------------------------------------------------------

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        if self._stop.is_set():
            return
        self.stop_reason = reason
        self.exit_code = exit_code
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        """Tick until --loops is reached or a stop is requested; returns the exit code."""
        t0 = self._clock.monotonic()
        k = 0
        done = 0
        while not self._stop.is_set():
            ideal = t0 + k * self._interval
            start = self._clock.monotonic()
            report = self.run_tick(start, scheduled=ideal)
            done += 1
            for hook in self.hooks:
                code = hook.after_tick(report)
                if code is not None:
                    self.request_stop(f"{type(hook).__name__} requested exit {code}", code)
            if self._max_ticks is not None and done >= self._max_ticks:
                break
            if self._stop.is_set():
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

    # One tick ------------------------------------------------------------------------------

    def run_tick(self, started: float | None = None, scheduled: float | None = None) -> TickReport:
        perf = time.perf_counter
        t_start = perf()
        started = self._clock.monotonic() if started is None else started
        timer = self.stage_timer
        state = self.state
        counters = state.counters
        counters.ticks += 1
        tick = counters.ticks

        timer.enter("snapshot")
        snapshot = self._feed.snapshot()
        live_errors = self._feed.errors_last_tick
        timer.leave("snapshot")

        if state.roll_day(snapshot.ts, None):
            state.daily_realized = self._ledger.daily_pnl(state.day)
            log.info("trading day %s: realized so far %s", state.day, state.daily_realized)
        if self._halt_file is not None:
            halted = self._halt_file.exists()
            if halted != state.halted:
                log.warning("operator halt %s (%s)", "ON" if halted else "OFF", self._halt_file)
            state.halted = halted
            state.halt_reason = f"halt file {self._halt_file} exists" if halted else ""

        timer.enter("residuals")
        live_errors += self._guarded(
            "resolving orders of unknown outcome", self._trader.resolve_unresolved, snapshot
        )
        live_errors += self._guarded("hedging residual inventory", self._trader.hedge_residuals, snapshot)
        timer.leave("residuals")

        state.venues = self._feed.venue_statuses()
        ctx = TickContext(tick=tick, snapshot=snapshot, state=state.view())
        traded = False
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
            self._absorb(engine.name, out, metrics, rejections)
            intents = [d for d in out.decisions if isinstance(d, INTENTS)]
            if intents:
                orders = f"{engine.name}.orders"
                timer.enter(orders)
                live_errors += self._carry_out(intents, tick, snapshot)
                traded = True
                ctx.state = state.view()
                timer.leave(orders)

        if traded:
            # Several pairs of one tick can each leave a residual within the bound and together
            # exceed it: unwind now, so that no tick ends over execution.max_unhedged_qty.
            timer.enter("residuals")
            live_errors += self._guarded("hedging residual inventory", self._trader.hedge_residuals, snapshot)
            timer.leave("residuals")

        counters.live_errors += live_errors
        loop_ms = (perf() - t_start) * 1000.0
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
        timer.enter("logging")
        self._print(metrics_line(figures, self._cfg.accounting_currency))
        timer.leave("logging")
        self.last_tick_wall = self._clock.time()
        # OrderBook.age_ms written out, as this runs over every book of every tick (the limit is
        # positive, so age_ms's floor at zero changes nothing here).
        max_age = self._cfg.safety.max_book_age_ms
        now = snapshot.ts
        report = TickReport(
            tick=tick,
            started_at=started,
            loop_ms=loop_ms,
            figures=figures,
            metrics=dict(metrics),
            traded=traded,
            live_errors=live_errors,
            rejections=rejections,
            books=len(snapshot.books) - len(snapshot.carried),  # the books that came this tick
            stale_books=sum(1 for b in snapshot.books.values() if (now - b.exchange_ts) * 1000.0 > max_age),
            start_error_ms=0.0 if scheduled is None else (started - scheduled) * 1000.0,
        )
        self.last_report = report
        return report

    def _guarded(self, what: str, step: Callable[[MarketSnapshot], None], snapshot: MarketSnapshot) -> int:
        """Run a trader step outside the engines; a failure is a live error, never the loop's end."""
        try:
            step(snapshot)
        except Exception:
            exec_log.exception("%s failed; the tick goes on", what)
            return 1
        return 0

    def _absorb(
        self, name: str, out: EngineOutput, metrics: dict[str, float], rejections: dict[str, int]
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

    def _carry_out(self, intents: list[EntryIntent | ExitIntent], tick: int, snapshot: MarketSnapshot) -> int:
        """Execute intents; exits first (never blocked), entries only while entries are allowed.

        Each kind is written in one commit before its first order goes out (one fsync for the
        tick's pairs, not one each), then sent pair by pair; an entry that may no longer go
        out when its turn comes is withdrawn unsent. What the venues answer is booked pair by
        pair in one ledger batch: one commit, made before the entries are written and at the end.
        """
        with self._ledger.batch():
            return self._carry_out_batch(intents, tick, snapshot)

    def _carry_out_batch(
        self, intents: list[EntryIntent | ExitIntent], tick: int, snapshot: MarketSnapshot
    ) -> int:
        errors = 0
        exits: dict[str, ExitIntent] = {}
        for intent in intents:
            if isinstance(intent, ExitIntent) and intent.position_id not in exits:
                why = self._exit_blocked(intent)
                if why is None:
                    exits[intent.position_id] = intent
                else:
                    exec_log.debug("exit of %s held: %s", intent.position_id, why)
        for dust in [i for i in exits.values() if i.sell is None or i.buy is None]:
            # Below what the venues trade: closed into the residual book, no venue call.
            del exits[dust.position_id]
            try:
                self._trader.close_dust(dust)
            except Exception:
                errors += 1
                exec_log.exception("dust close of %s failed", dust.position_id)
        if exits:
            try:
                pending_exits = self._trader.write_exits(list(exits.values()))
            except Exception:
                exec_log.exception("exits of %s not written", ", ".join(exits))
                pending_exits = []
                errors += 1
            for pending_exit in pending_exits:
                # Asked again for each: the exits before it may have taken seconds.
                why = self._exit_blocked(pending_exit.intent)
                try:
                    if why is None:
                        self._trader.send_exit(pending_exit)
                    else:
                        self._trader.withdraw(pending_exit, why)
                except Exception:
                    errors += 1
                    exec_log.exception("exit of %s failed", pending_exit.intent.position_id)
        entries = []
        for entry in intents:
            if isinstance(entry, EntryIntent):
                why = self._held_back(entry, snapshot)
                if why is None:
                    entries.append(entry)
                else:
                    exec_log.info("entry %s skipped: %s", entry.opportunity.key, why)
        if not entries:
            return errors
        try:
            pending_entries = self._trader.write_entries(entries, tick)
        except Exception:
            exec_log.exception("entries %s not written", ", ".join(e.opportunity.key for e in entries))
            return errors + 1
        for pending in pending_entries:
            # Asked again for each: the pairs before it may have taken seconds.
            why = self._held_back(pending.intent, snapshot)
            try:
                if why is None:
                    self._trader.send_entry(pending)
                else:
                    self._trader.withdraw(pending, why)
            except Exception:
                errors += 1
                exec_log.exception("entry %s failed", pending.intent.opportunity.key)
        return errors

    def _exit_blocked(self, intent: ExitIntent) -> str | None:
        """Why an exit must not go out now: a leg's venue is degraded, so only the other leg could
        fill, to be unwound at a cost and tried again. Exits are never held by entry limits."""
        statuses = self._feed.venue_statuses()
        venues = [leg.venue for leg in (intent.sell, intent.buy) if leg is not None]
        for venue in venues:
            status = statuses.get(venue)
            if status is not None and status.degraded:
                return f"{venue} is degraded (circuit breaker open or paused)"
        return None

    def _held_back(self, entry: EntryIntent, snapshot: MarketSnapshot) -> str | None:
        """Why an entry must not go out now (entries blocked, stopping, overtaken), or None."""
        if self.state.entries_blocked or self._stop.is_set():
            return self.state.entries_blocked or "stopping"
        return self._overtaken(entry, snapshot)

    def _overtaken(self, entry: EntryIntent, snapshot: MarketSnapshot) -> str | None:
        """Why an entry approved at the start of the tick must not go out now, or None.

        The orders before it in this tick can take seconds (a create that timed out, its
        lookups, the repairs): meanwhile a venue may have opened its breaker or been told to
        pause (a 429), which would leave a single leg, and its books may have aged past what
        safety accepts.
        """
        legs = (entry.buy.venue, entry.sell.venue)
        statuses = self._feed.venue_statuses()
        for venue in legs:
            status = statuses.get(venue)
            if status is not None and status.degraded:
                return f"{venue} became degraded after the entry was approved"
        limit = self._cfg.safety.max_book_age_ms
        now = self._clock.time()
        for venue in legs:
            book = snapshot.book(venue, entry.opportunity.asset)
            if book is not None and book.age_ms(now) > limit:
                return f"{venue} book now {book.age_ms(now):.0f}ms old > safety.max_book_age_ms {limit:.0f}"
        return None
