"""The operator's console state: a compact picture of the bot after each tick, for `arb watch`
(GET /state on the health server, or the console key in Redis) and Telegram's /status.

Each tick takes its facts by reference (no venue or ledger call, no formatting); the document
is built from them on its first read and never changed after, so the HTTP and Telegram threads
read it without a lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.pnl import unrealized_pnl
from arbitrage.domain.positions import PairPosition
from arbitrage.domain.spread import taker_net_spread_pct, taker_rates
from arbitrage.engines.base import VenueStatus
from arbitrage.ops.watchdog import Level, WatchdogReport
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.state import BotState

EVENTS_KEPT = 50  # what the console's "last events" panel can show
EVENT_TEXT_MAX = 200

Publish = Callable[[str, Mapping[str, Any]], object]


class EventLog:
    """The run's last events (entries, exits, hedges, alerts), newest last, each one also forwarded
    to the Redis event stream when there is one. Called from the loop's thread and from whatever
    thread raises an alert (a lease lost, a venue breaker), and read from the HTTP and Telegram
    threads: one lock around the ring, never held while forwarding."""

    def __init__(self, clock: Clock, forward: Publish | None = None, size: int = EVENTS_KEPT) -> None:
        self._clock = clock
        self._forward = forward
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def publish(self, kind: str, payload: Mapping[str, Any]) -> object:
        with self._lock:
            self._events.append(
                {"ts": round(self._clock.time(), 3), "kind": kind, "text": event_text(kind, payload)}
            )
        return self._forward(kind, payload) if self._forward is not None else True

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)


def event_text(kind: str, payload: Mapping[str, Any]) -> str:
    """One line an operator reads: an alert as "[LEVEL] key: text", anything else as key=value pairs."""
    if kind == "alert":
        text = f"[{payload.get('level', 'ERROR')}] {payload.get('key', '')}: {payload.get('text', '')}"
    else:
        text = " ".join(f"{k}={v}" for k, v in payload.items() if v is not None)
    return text[:EVENT_TEXT_MAX]


def direction_spreads(
    assets: tuple[str, ...], snapshot: MarketSnapshot, venues: Mapping[str, VenueStatus], buffer_pct: float
) -> dict[str, dict[str, float | None]]:
    """Per asset and direction ("buy>sell" venue names), the top-of-book net spread %: the signal
    engine's own first test (domain.spread, less the slippage buffer); None without both books."""
    rates = {}
    for name, status in venues.items():
        fx = snapshot.fx.get(status.quote)
        if fx is not None:
            rates[name] = (fx, *taker_rates(fx, status.taker_fee_pct))
    spreads: dict[str, dict[str, float | None]] = {}
    for asset in assets:
        per_direction: dict[str, float | None] = {}
        for buy, (buy_fx, buy_k, _) in rates.items():
            buy_book = snapshot.books.get((buy, asset))
            ask = buy_book.best_ask if buy_book is not None else None
            for sell, (_, _, sell_k) in rates.items():
                if sell == buy:
                    continue
                sell_book = snapshot.books.get((sell, asset))
                bid = sell_book.best_bid if sell_book is not None else None
                net = None
                if ask and bid:
                    net = round(taker_net_spread_pct(ask, buy_fx, buy_k, bid, sell_k) - buffer_pct, 4)
                per_direction[f"{buy}>{sell}"] = net
        spreads[asset] = per_direction
    return spreads


def venue_lines(
    snapshot: MarketSnapshot, venues: Mapping[str, VenueStatus], described: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per venue: its feed (stream, rest, simulated...), the oldest book's age, breaker, order rate."""
    ages: dict[str, float] = {}
    for (venue, _), book in snapshot.books.items():
        age = book.age_ms(snapshot.ts)
        ages[venue] = max(age, ages.get(venue, 0.0))
    lines = {}
    for name, status in venues.items():
        detail = described.get(name, {})
        circuit = detail.get("circuit")
        lines[name] = {
            "feed": str(detail.get("feed", "?")),
            "book_age_ms": round(ages[name], 1) if name in ages else None,
            "breaker": str(circuit.get("state", "?")) if isinstance(circuit, Mapping) else "closed",
            "degraded": status.degraded,
            "orders_last_minute": status.orders_last_minute,
            "ws_lag_ms": round(status.ws_lag_ms, 1),
        }
    return lines


@dataclass(frozen=True)
class TickFacts:
    """What the console shows of one tick, taken by reference or one shallow copy in the loop's
    thread: the snapshot, statuses, positions and watchdog report are immutable objects."""

    config: AppConfig
    tick: int
    loop_ms: float
    snapshot: MarketSnapshot
    venues: Mapping[str, VenueStatus]
    positions: tuple[PairPosition, ...]
    day: str
    realized: Decimal
    fees: Decimal
    trades: int
    halted: bool
    halt_reason: str
    entries_blocked: str | None
    stopping: bool
    watchdog: WatchdogReport | None

    @classmethod
    def of(
        cls,
        config: AppConfig,
        state: BotState,
        snapshot: MarketSnapshot,
        report: TickReport,
        watchdog: WatchdogReport | None,
        stopping: bool,
    ) -> TickFacts:
        return cls(
            config,
            report.tick,
            report.loop_ms,
            snapshot,
            state.venues,  # replaced, never changed, by the next tick
            tuple(state.positions.values()),
            state.day,
            state.daily_realized,
            state.daily_fees,
            state.daily_trades,
            state.halted,
            state.halt_reason,
            state.entries_blocked,
            stopping,
            watchdog,
        )


class ConsoleState:
    """One tick's console state. The tick only takes its facts; the JSON document is built on its
    first read, in the reader's thread (HTTP, Telegram, the Redis save), so a tick nobody looks at
    costs next to nothing. The venues' descriptions and the events are read then: newer, never older."""

    def __init__(
        self,
        facts: TickFacts,
        describe_venues: Callable[[], Mapping[str, Mapping[str, Any]]],
        events: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.facts = facts
        self.tick = facts.tick
        self._describe = describe_venues
        self._events = events

    @cached_property
    def document(self) -> Mapping[str, Any]:
        return console_document(self.facts, self._describe(), self._events())


def console_document(
    facts: TickFacts, described: Mapping[str, Mapping[str, Any]], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The console's JSON document (see README, The operator's console)."""
    config, snapshot = facts.config, facts.snapshot
    fees = {name: status.taker_fee_pct for name, status in facts.venues.items()}
    positions = []
    for p in facts.positions:
        pnl = unrealized_pnl(p, snapshot, fees)
        positions.append(
            {
                "id": p.position_id,
                "asset": p.asset,
                "buy": p.buy_venue,
                "sell": p.sell_venue,
                "qty": str(p.qty),
                "entry_spread_pct": round(p.entry_spread_pct, 4),
                "unrealized": None if pnl is None else round(pnl, 2),
                "age_s": round(max(0.0, snapshot.ts - p.opened_at), 1),
            }
        )
    watchdog = facts.watchdog
    return {
        "instance": config.instance,
        "mode": config.mode.current,
        "currency": config.accounting_currency,
        "tick": facts.tick,
        "ts": snapshot.ts,
        "loop_ms": round(facts.loop_ms, 2),
        "halted": facts.halted,
        "halt_reason": facts.halt_reason,
        "entries_blocked": facts.entries_blocked,
        "stopping": facts.stopping,
        "threshold_pct": config.signal.min_spread_pct,
        "spreads": direction_spreads(
            tuple(config.symbols), snapshot, facts.venues, config.signal.slippage_buffer_pct
        ),
        "venues": venue_lines(snapshot, facts.venues, described),
        "positions": positions,
        "today": {
            "day": facts.day,
            "realized": str(facts.realized),
            "fees": str(facts.fees),
            "trades": facts.trades,
        },
        "watchdog": {
            "level": (watchdog.level if watchdog else Level.OK).name,
            "per_metric": {k: v.name for k, v in (watchdog.per_metric if watchdog else {}).items()},
        },
        "events": events,
    }


class ConsoleHook:
    """A tick hook, after the supervisor's (so the watchdog grade is this tick's): takes the tick's
    console facts and, with Redis, stores the document there at most every `remote_every_s`."""

    def __init__(
        self,
        config: AppConfig,
        clock: Clock,
        state: BotState,
        snapshot: Callable[[], MarketSnapshot | None],
        watchdog: Callable[[], WatchdogReport | None],
        describe_venues: Callable[[], Mapping[str, Mapping[str, Any]]],
        events: EventLog,
        stopping: Callable[[], bool],
        save_remote: Callable[[Mapping[str, Any]], object] | None = None,
        remote_every_s: float = 1.0,
        read: bool = True,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._state = state
        self._snapshot = snapshot
        self._watchdog = watchdog
        self._describe = describe_venues
        self._events = events
        self._stopping = stopping
        self._save_remote = save_remote
        self._remote_every_s = remote_every_s
        self._last_saved = float("-inf")
        # Whether anything reads the document (the health server, the chat commands, Redis): with
        # no reader, taking a tick's facts (every position and venue) is work for no one.
        self._read = read or save_remote is not None
        self.latest: ConsoleState | None = None

    def after_tick(self, report: TickReport) -> int | None:
        if not self._read:
            return None
        snapshot = self._snapshot()
        if snapshot is None:
            return None
        facts = TickFacts.of(self._cfg, self._state, snapshot, report, self._watchdog(), self._stopping())
        latest = self.latest = ConsoleState(facts, self._describe, self._events.recent)
        if self._save_remote is not None:
            mono = self._clock.monotonic()
            if mono - self._last_saved >= self._remote_every_s:
                self._last_saved = mono
                self._save_remote(latest.document)
        return None

    def document(self) -> Mapping[str, Any] | None:
        """The latest console document (built now if nobody asked for it yet); None before a tick."""
        latest = self.latest
        return latest.document if latest is not None else None
