"""The seeded market model behind the mock venues: random-walk prices, a mean-reverting premium.

Each asset's reference price (accounting currency) walks geometrically; one shared cross-venue
premium follows a discrete Ornstein-Uhlenbeck process, so opportunities open and converge; FX
(quote -> accounting currency) has its own small noise. Books are built lazily, once per tick,
and each side's levels only when something reads past the top (see ScaledSide).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain.book import Level, OrderBook
from arbitrage.errors import PermanentVenueError
from arbitrage.venues.lazy_side import LazySide

# Quantities left on a level after a fill that are below the fill granularity (1e-8, the
# venue's quantization) cannot be traded and are dropped instead of showing as dust.
DUST_QTY = 1e-8


@dataclass(frozen=True, slots=True)
class _MarketShape:
    """One (venue, symbol) market and its level layout, fixed at construction.

    A shape is a tuple of (price multiplier on the mid, notional in accounting currency), so a
    book is one multiply per price and one per quantity.
    """

    venue: str
    symbol: str
    asset: str | None  # the base asset of a coin market, None for an FX market
    fx_quote: str | None  # the currency an FX market prices, e.g. "USDT" in "USDT/KRW"
    quote: str
    premium_pct: float  # the venue's static premium (coin markets only)
    gets_premium: bool  # quoted in the accounting currency: carries the shared premium
    levels: int
    bid_shape: tuple[Level, ...]
    ask_shape: tuple[Level, ...]
    opening_mid: float  # mid at construction, in the venue's quote currency


class ScaledSide(LazySide):
    """One side of a mock book: the market's fixed level layout scaled by this tick's mid.

    Every tick builds every book, and most readers look at the top alone (the signal engine's
    first test, safety's marks), so the levels are made on the first read past the top: a
    book costs a quarter of what twenty price and quantity pairs a side would.
    """

    __slots__ = ("_layout", "_price_k", "_qty_k")

    def __init__(self, layout: tuple[Level, ...], price_k: float, qty_k: float) -> None:
        self._layout = layout
        self._price_k = price_k
        self._qty_k = qty_k
        self._levels = None

    def _first(self) -> Level:
        k, v = self._layout[0]
        return (self._price_k * k, v * self._qty_k)

    def _make(self) -> tuple[Level, ...]:
        p, q = self._price_k, self._qty_k
        return tuple([(p * k, v * q) for k, v in self._layout])

    def columns(self, depth: int) -> tuple[list[float], list[float]]:
        if self._levels is not None:
            return super().columns(depth)
        p, q, layout = self._price_k, self._qty_k, self._layout[:depth]
        return [p * k for k, _ in layout], [v * q for _, v in layout]

    def __len__(self) -> int:
        return len(self._layout)

    def __iter__(self) -> Iterator[Level]:
        if self._levels is not None:
            return iter(self._levels)
        # A walk usually stops within the first levels: make only those it reaches.
        p, q = self._price_k, self._qty_k
        return ((p * k, v * q) for k, v in self._layout)


class MockMarket:
    """The whole simulated market: every mock venue's books, driven by `step()` once per tick."""

    def __init__(self, config: AppConfig, clock: Clock) -> None:
        mock = config.mock
        self._clock = clock
        self._accounting = config.accounting_currency
        # Separate streams, so that how often books are read never shifts the price path.
        self._price_rng = random.Random(f"{mock.seed}:mock-market:prices")
        self._premium_rng = random.Random(f"{mock.seed}:mock-market:premium")
        self._fx_rng = random.Random(f"{mock.seed}:mock-market:fx")
        layout_rng = random.Random(f"{mock.seed}:mock-market:layout")

        self._assets = tuple(sorted(mock.assets))
        self._ref = {a: mock.assets[a].price for a in self._assets}
        self._vol = {a: mock.assets[a].volatility_pct / 100.0 for a in self._assets}
        self._premium = mock.premium_mean_pct
        self._premium_mean = mock.premium_mean_pct
        self._premium_vol = mock.premium_vol_pct
        self._reversion = mock.premium_reversion
        self._fx_mean = mock.fx_rate
        self._fx_noise = mock.fx_noise_pct / 100.0
        self._foreign = tuple(sorted({v.quote for v in config.venues.values()} - {self._accounting}))
        self._fx = {self._accounting: 1.0, **{q: mock.fx_rate for q in self._foreign}}
        self._tick = 0

        self._markets: dict[tuple[str, str], _MarketShape] = {}
        self._venue_symbols: dict[str, tuple[str, ...]] = {}
        for venue, vcfg in config.venues.items():
            home = vcfg.quote == self._accounting
            symbols = [f"{a}/{vcfg.quote}" for a in self._assets]
            if home:
                fx_symbols = (f"{q}/{self._accounting}" for q in self._foreign)
                symbols += [s for s in fx_symbols if s not in symbols]
            self._venue_symbols[venue] = tuple(symbols)
            m = vcfg.mock
            for symbol in symbols:
                base = symbol.partition("/")[0]
                is_coin = base in self._ref
                shape = _MarketShape(
                    venue=venue,
                    symbol=symbol,
                    asset=base if is_coin else None,
                    fx_quote=None if is_coin else base,
                    quote=vcfg.quote,
                    premium_pct=m.premium_pct if is_coin else 0.0,
                    gets_premium=home and is_coin,
                    levels=m.depth_levels,
                    bid_shape=_side_shape(
                        layout_rng,
                        m.depth_levels,
                        m.half_spread_bps,
                        m.level_step_bps,
                        m.level_notional,
                        -1.0,
                    ),
                    ask_shape=_side_shape(
                        layout_rng, m.depth_levels, m.half_spread_bps, m.level_step_bps, m.level_notional, 1.0
                    ),
                    opening_mid=0.0,
                )
                opening = self._mid_accounting(shape) / self._fx[shape.quote]
                self._markets[(venue, symbol)] = replace(shape, opening_mid=opening)

        self._books: dict[tuple[str, str, int], OrderBook] = {}
        self._taken: dict[tuple[str, str, str], float] = {}
        # With mock.updates_per_s the market steps on the feed's thread while the tick reads and
        # fills: a step, a book built and a fill are each one step under this lock.
        self._lock = threading.Lock()

    # The tick --------------------------------------------------------------------------------

    def step(self) -> None:
        """Advance one tick: prices walk, the premium reverts, FX jitters; liquidity refills."""
        with self._lock:
            self._step()

    def _step(self) -> None:
        gauss = self._price_rng.gauss
        for asset in self._assets:
            sigma = self._vol[asset]
            # exp(sigma*z - sigma^2/2) keeps the expected price flat (a martingale walk).
            self._ref[asset] *= math.exp(sigma * gauss(0.0, 1.0) - 0.5 * sigma * sigma)
        self._premium += self._reversion * (
            self._premium_mean - self._premium
        ) + self._premium_vol * self._premium_rng.gauss(0.0, 1.0)
        for quote in self._foreign:
            self._fx[quote] = self._fx_mean * (1.0 + self._fx_noise * self._fx_rng.gauss(0.0, 1.0))
        self._tick += 1
        self._books.clear()
        self._taken.clear()

    @property
    def tick(self) -> int:
        """How many times step() has run."""
        return self._tick

    # Diagnostics -----------------------------------------------------------------------------

    @property
    def premium_pct(self) -> float:
        """The shared premium (%) of accounting-currency venues over the reference price."""
        return self._premium

    def reference_price(self, asset: str) -> float:
        """The asset's reference price in the accounting currency."""
        return self._ref[asset]

    def fx_rate(self, quote: str) -> float:
        """How much accounting currency one unit of `quote` is worth this tick."""
        try:
            return self._fx[quote]
        except KeyError:
            raise KeyError(f"no mock FX rate for {quote!r} (quotes: {', '.join(self._fx)})") from None

    # Markets ---------------------------------------------------------------------------------

    def symbols(self, venue: str) -> tuple[str, ...]:
        """The market symbols the venue lists: one per asset, plus FX markets on home venues."""
        return self._venue_symbols.get(venue, ())

    def markets(self) -> tuple[tuple[str, str], ...]:
        """Every (venue, symbol) the market quotes."""
        return tuple(self._markets)

    def has_market(self, venue: str, symbol: str) -> bool:
        return (venue, symbol) in self._markets

    def mid(self, venue: str, symbol: str) -> float:
        """This tick's mid in the venue's quote currency."""
        shape = self._shape(venue, symbol)
        return self._mid_accounting(shape) / self._fx[shape.quote]

    def opening_mid(self, venue: str, symbol: str) -> float:
        """The mid before the first step, from the configured prices: stable for market rules."""
        return self._shape(venue, symbol).opening_mid

    def book(self, venue: str, symbol: str, depth: int) -> OrderBook:
        """The venue's book for `symbol` this tick, at most `depth` levels a side."""
        key = (venue, symbol, depth)
        cached = self._books.get(key)
        if cached is not None:
            return cached
        with self._lock:
            return self._build(key, venue, symbol, depth)

    def _build(self, key: tuple[str, str, int], venue: str, symbol: str, depth: int) -> OrderBook:
        shape = self._markets.get((venue, symbol)) or self._shape(venue, symbol)
        if shape.asset is None:
            mid_acc = self._mid_accounting(shape)
        else:  # _mid_accounting of a coin market, inline: this runs for every book of every tick
            premium = shape.premium_pct + (self._premium if shape.gets_premium else 0.0)
            mid_acc = self._ref[shape.asset] * (1.0 + premium / 100.0)
        mid = mid_acc / self._fx[shape.quote]
        per_unit = 1.0 / mid_acc  # notional (accounting ccy) -> quantity
        taken = self._taken
        bids: Sequence[Level]
        asks: Sequence[Level]
        if taken and ((venue, symbol, "buy") in taken or (venue, symbol, "sell") in taken):
            n = depth if depth < shape.levels else shape.levels
            bids = self._remaining(shape, "sell", mid, per_unit, n)
            asks = self._remaining(shape, "buy", mid, per_unit, n)
        elif depth >= shape.levels:  # the usual case: the whole layout, no slice to copy
            bids = ScaledSide(shape.bid_shape, mid, per_unit)
            asks = ScaledSide(shape.ask_shape, mid, per_unit)
        else:
            bids = ScaledSide(shape.bid_shape[:depth], mid, per_unit)
            asks = ScaledSide(shape.ask_shape[:depth], mid, per_unit)
        now = self._clock.time()
        book = OrderBook(venue, symbol, bids, asks, now, now)
        self._books[key] = book
        return book

    def consume(self, venue: str, symbol: str, taking: str, qty: float) -> None:
        """Remove `qty` from the top of the side a `taking` order eats, until the next step()."""
        if qty <= 0:
            return
        self._shape(venue, symbol)
        with self._lock:
            self._consume(venue, symbol, taking, qty)

    def _consume(self, venue: str, symbol: str, taking: str, qty: float) -> None:
        key = (venue, symbol, taking)
        self._taken[key] = self._taken.get(key, 0.0) + qty
        # list() copies the keys in one step, so a book() on another thread cannot break the loop.
        for cached in list(self._books):
            if cached[0] == venue and cached[1] == symbol:
                self._books.pop(cached, None)

    # Internals -------------------------------------------------------------------------------

    def _shape(self, venue: str, symbol: str) -> _MarketShape:
        shape = self._markets.get((venue, symbol))
        if shape is None:
            listed = ", ".join(self.symbols(venue)) or "none"
            raise PermanentVenueError(venue, f"no mock market {symbol!r} (listed: {listed})")
        return shape

    def _mid_accounting(self, shape: _MarketShape) -> float:
        if shape.asset is None:
            return self._fx[shape.fx_quote or ""]
        premium = shape.premium_pct + (self._premium if shape.gets_premium else 0.0)
        return self._ref[shape.asset] * (1.0 + premium / 100.0)

    def _remaining(
        self, shape: _MarketShape, taking: str, mid: float, per_unit: float, depth: int
    ) -> tuple[Level, ...]:
        """One side after this tick's fills took `taken` quantity from its top."""
        layout = shape.ask_shape if taking == "buy" else shape.bid_shape
        taken = self._taken.get((shape.venue, shape.symbol, taking), 0.0)
        out: list[Level] = []
        for k, v in layout:
            qty = v * per_unit
            if taken > 0.0:
                if taken >= qty:
                    taken -= qty
                    continue
                qty -= taken
                taken = 0.0
                if qty < DUST_QTY:
                    continue
            out.append((mid * k, qty))
            if len(out) == depth:
                break
        return tuple(out)


def _side_shape(
    rng: random.Random,
    levels: int,
    half_spread_bps: float,
    step_bps: float,
    level_notional: float,
    direction: float,
) -> tuple[Level, ...]:
    """Price multipliers away from the mid (direction +1 asks, -1 bids) and seeded notionals."""
    return tuple(
        (
            1.0 + direction * (half_spread_bps + i * step_bps) / 10_000.0,
            level_notional * rng.uniform(0.5, 1.5),
        )
        for i in range(levels)
    )
