"""The reaction benchmark's two stamps, both on this process's perf_counter_ns clock.

FrameWatch is a BookListener beside the loop's own: as each streamed book arrives (on the stream's
thread, right after ccxt.pro parsed the frame) it is stamped and the cross-venue opportunities of
its asset are found with the signal engine's own `find_opportunity`, so each opportunity is known
from the frame that made it. OrderWire stamps each create-order request when its first bytes are
handed to the venue's socket (http.client's send, in the thread that places the leg). Reaction is
the one minus the other, for the first order on each leg of each opportunity.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from arbitrage.config import AppConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.orders import OrderReport, OrderRequest
from arbitrage.engines.signal import find_opportunity
from arbitrage.store.ledger import Ledger
from arbitrage.venues.base import Venue

Direction = tuple[str, str, str]  # (asset, buy venue, sell venue)
# An order sent this soon after the frames closed its opportunity was still priced on it: the tick
# read its books a moment before the order went out.
CLOSED_GRACE_NS = 100_000_000


@dataclass(slots=True)
class Episode:
    """One stretch of frames over which an opportunity stood: from the frame that made it."""

    opened_ns: int
    closed_ns: int | None = None
    legs: set[str] = field(default_factory=set)  # the legs ("buy", "sell") already answered


class FrameWatch:
    def __init__(self, config: AppConfig) -> None:
        sig = config.signal
        self._settings = {
            "min_spread_pct": sig.min_spread_pct,
            "max_notional": sig.max_notional,
            "min_notional": sig.min_notional,
            "buffer_pct": sig.slippage_buffer_pct,
        }
        self._venues = {name: (vc.quote, vc.taker_fee_pct) for name, vc in config.venues.items()}
        self._asset_of = {
            (venue, config.venue_symbol(venue, asset)): asset
            for venue in config.venues
            for asset in config.symbols
        }
        fixed = config.fx.source == "fixed"
        self._fx: dict[str, float] = {**(config.fx.fixed if fixed else {}), config.accounting_currency: 1.0}
        self._fx_market = None if fixed else (config.fx.venue, config.fx.symbol)
        self._fx_quote = config.fx.symbol.partition("/")[0]
        self._books: dict[tuple[str, str], OrderBook] = {}
        self._lock = threading.Lock()
        self.episodes: dict[Direction, list[Episode]] = {}
        self.frames = 0
        self.busy_ns = 0  # spent in here: the bench's own share of the process's CPU

    def __call__(self, book: OrderBook) -> None:
        now = time.perf_counter_ns()
        with self._lock:
            self.frames += 1
            key = (book.venue, book.symbol)
            if key == self._fx_market:
                if book.best_bid is not None and book.best_ask is not None:
                    self._fx[self._fx_quote] = (book.best_bid + book.best_ask) / 2
            else:
                asset = self._asset_of.get(key)
                if asset is not None:
                    self._books[(book.venue, asset)] = book
                    self._look(asset, now, book.received_ts)
        self.busy_ns += time.perf_counter_ns() - now

    def _look(self, asset: str, now: int, ts: float) -> None:
        for buy, (buy_quote, buy_fee) in self._venues.items():
            for sell, (sell_quote, sell_fee) in self._venues.items():
                if buy == sell:
                    continue
                buy_book, sell_book = self._books.get((buy, asset)), self._books.get((sell, asset))
                buy_fx, sell_fx = self._fx.get(buy_quote), self._fx.get(sell_quote)
                if buy_book is None or sell_book is None or buy_fx is None or sell_fx is None:
                    continue
                opp, _top = find_opportunity(
                    asset, buy_book, sell_book, buy_fx, sell_fx, buy_fee, sell_fee, ts=ts, **self._settings
                )
                episodes = self.episodes.setdefault((asset, buy, sell), [])
                standing = bool(episodes) and episodes[-1].closed_ns is None
                if opp is not None and not standing:
                    episodes.append(Episode(now))
                elif opp is None and standing:
                    episodes[-1].closed_ns = now

    def asset_of(self, venue: str, symbol: str) -> str | None:
        return self._asset_of.get((venue, symbol))

    def episode_at(self, direction: Direction, at_ns: int) -> Episode | None:
        """The opportunity standing (or last opened) at `at_ns` in that direction."""
        with self._lock:
            for episode in reversed(self.episodes.get(direction, [])):
                if episode.opened_ns <= at_ns:
                    closed = episode.closed_ns
                    return episode if closed is None or at_ns - closed <= CLOSED_GRACE_NS else None
        return None


class TickStamps:
    """A StageTimer that keeps when each stage of the running tick began and ended (perf_counter_ns):
    where the time between a frame and its order went."""

    def __init__(self) -> None:
        self.current: dict[str, int] = {}
        self.cycles_ms: list[tuple[float, float]] = []  # per tick: (start to logged, start to hooks done)

    def after_tick(self, report: object) -> int | None:
        """The last tick hook: how long the whole tick took, the other hooks included."""
        start, logged = self.current.get("snapshot>"), self.current.get("logging<")
        if start is not None and logged is not None:
            self.cycles_ms.append(((logged - start) / 1e6, (time.perf_counter_ns() - start) / 1e6))
        return None

    def enter(self, stage: str) -> None:
        if stage == "snapshot":
            self.current = {}  # a new tick: the dict an order already took is left alone
        self.current[f"{stage}>"] = time.perf_counter_ns()

    def leave(self, stage: str) -> None:
        self.current[f"{stage}<"] = time.perf_counter_ns()

    def timing(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` with its start and end kept among the running tick's stamps (the last call's)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.current[f"{name}>"] = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[f"{name}<"] = time.perf_counter_ns()

        return timed


def stamp_order_path(stamps: TickStamps, ledger: Ledger, pool: ThreadPoolExecutor | None) -> None:
    """Among the tick's stamps, also: the PENDING orders written, the durable commit around them
    (and its body), and the hand-off of legs to the leg threads."""
    ledger.insert_orders = stamps.timing("pending_orders", ledger.insert_orders)  # type: ignore[method-assign]
    transaction = ledger.transaction

    @contextmanager
    def timed(durable: bool = True) -> Iterator[None]:
        if not durable:
            with transaction(durable):
                yield
            return
        stamps.current["durable_tx>"] = time.perf_counter_ns()
        with transaction(durable):
            yield
            stamps.current["durable_tx.body<"] = time.perf_counter_ns()
        stamps.current["durable_tx<"] = time.perf_counter_ns()

    ledger.transaction = timed  # type: ignore[method-assign]
    if pool is not None:
        pool.submit = stamps.timing("leg_handoff", pool.submit)  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class WiredOrder:
    venue: str
    symbol: str
    side: str
    wire_ns: int  # first bytes of the create request handed to the socket
    stamps: Mapping[str, int] = field(default_factory=dict)  # the sending tick's stages, if kept


class OrderWire:
    """Stamps create-order requests at the socket; see the module docstring."""

    def __init__(self, stamps: TickStamps | None = None) -> None:
        self._local = threading.local()
        self.orders: list[WiredOrder] = []
        self._lock = threading.Lock()
        self._stamps = stamps

    @contextmanager
    def installed(self, venues: Mapping[str, Venue]) -> Iterator[None]:
        """http.client's send stamped, and each venue's submit marked, for as long as this lasts."""
        original = http.client.HTTPConnection.send
        local = self._local

        def send(conn: http.client.HTTPConnection, data: Any) -> None:
            if getattr(local, "placing", False) and getattr(local, "wire_ns", None) is None:
                local.wire_ns = time.perf_counter_ns()
            original(conn, data)

        http.client.HTTPConnection.send = send  # type: ignore[method-assign,assignment]
        for venue in venues.values():
            venue.submit = self._marking(venue.submit, venue.name)  # type: ignore[method-assign]
        try:
            yield
        finally:
            http.client.HTTPConnection.send = original  # type: ignore[method-assign]

    def _marking(
        self, submit: Callable[[OrderRequest], OrderReport], venue: str
    ) -> Callable[..., OrderReport]:
        local = self._local

        def marked(request: OrderRequest) -> OrderReport:
            local.placing, local.wire_ns, local.submit_ns = True, None, time.perf_counter_ns()
            try:
                return submit(request)
            finally:
                local.placing = False
                if local.wire_ns is not None:
                    stamps = dict(self._stamps.current) if self._stamps is not None else {}
                    stamps["submit>"] = local.submit_ns
                    with self._lock:
                        self.orders.append(
                            WiredOrder(venue, request.symbol, request.side, local.wire_ns, stamps)
                        )

        return marked


@dataclass(frozen=True, slots=True)
class Reactions:
    first_ms: list[float]  # per opportunity and leg, frame to the first order on that leg
    repeats: int  # later orders on a leg of an opportunity already answered (re-entries)
    unmatched: int  # orders with no opportunity the frames showed (hedges, unwinds)
    # per first leg, ms from the frame to each stamp of the sending tick (see TickStamps)
    splits: list[dict[str, float]] = field(default_factory=list)


def reactions(watch: FrameWatch, wire: OrderWire, venues: list[str]) -> Reactions:
    """Each order matched to the opportunity that stood when it was sent, in its direction."""
    first: list[float] = []
    splits: list[dict[str, float]] = []
    repeats = unmatched = 0
    for order in sorted(wire.orders, key=lambda o: o.wire_ns):
        asset = watch.asset_of(order.venue, order.symbol)
        other = next((v for v in venues if v != order.venue), None)
        if asset is None or other is None:
            unmatched += 1
            continue
        direction = (asset, order.venue, other) if order.side == "buy" else (asset, other, order.venue)
        episode = watch.episode_at(direction, order.wire_ns)
        if episode is None:
            unmatched += 1
        elif order.side in episode.legs:
            repeats += 1
        else:
            episode.legs.add(order.side)
            first.append((order.wire_ns - episode.opened_ns) / 1e6)
            splits.append({k: (ns - episode.opened_ns) / 1e6 for k, ns in order.stamps.items()})
    return Reactions(first, repeats, unmatched, splits)
