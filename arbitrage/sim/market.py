"""The simulator's markets and its seeded price model: a random walk per coin, a kimchi premium.

Binance quotes each coin in USDT around its reference price. Upbit quotes it in KRW at the
reference times the KRW/USDT rate, times Upbit's USDT premium (its own KRW-USDT market), times a
per-coin premium that reverts to a mean, so that cross-venue spreads open and close.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from arbitrage.domain.money import upbit_krw_tick

Level = tuple[Decimal, Decimal]  # (price, quantity)

DEFAULT_ASSETS: dict[str, float] = {"BTC": 100_000.0, "ETH": 3_500.0}
MAX_COINS = 26


def sim_assets(coins: int) -> dict[str, float]:
    """BTC and ETH, then made-up coins SIMA, SIMB, ... (codes no exchange or ccxt renames) at
    prices from 2 to 2,000 USDT, up to `coins` in all (at most MAX_COINS)."""
    if not 1 <= coins <= MAX_COINS:
        raise ValueError(f"coins: expected 1 to {MAX_COINS}, found {coins}")
    assets = dict(list(DEFAULT_ASSETS.items())[:coins])
    for i in range(coins - len(assets)):
        assets[f"SIM{chr(ord('A') + i)}"] = round(2.0 * 10 ** (i % 4) * (1 + i / 10), 2)
    return assets


@dataclass(frozen=True, slots=True)
class SimMarket:
    """One tradable market on one venue, with the rules the venue enforces on orders."""

    venue: str
    market_id: str  # the venue's own id: "BTCUSDT", "KRW-BTC"
    base: str
    quote: str
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    tick: Decimal | None = None  # a fixed tick; None means Upbit's KRW tick table

    def tick_at(self, price: Decimal) -> Decimal:
        return self.tick if self.tick is not None else upbit_krw_tick(price)

    def on_tick(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick_at(price) == 0

    def on_step(self, qty: Decimal) -> bool:
        return qty > 0 and qty % self.step == 0

    def floor_price(self, price: Decimal) -> Decimal:
        tick = self.tick_at(price)
        return (price / tick).to_integral_value(ROUND_FLOOR) * tick

    def ceil_price(self, price: Decimal) -> Decimal:
        tick = self.tick_at(price)
        return (price / tick).to_integral_value(ROUND_CEILING) * tick

    def floor_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.step).to_integral_value(ROUND_DOWN) * self.step


def binance_market(base: str, ref_price: float) -> SimMarket:
    """A BASE/USDT market with a tick and step of the size Binance uses at that price."""
    tick = Decimal("0.01") if ref_price >= 10 else Decimal("0.0001")
    # one step is worth about 1 USDT or less, as on Binance (BTCUSDT 0.00001, ETHUSDT 0.0001)
    step = Decimal(10) ** -max(0, min(8, math.ceil(math.log10(ref_price))))
    return SimMarket("binance", f"{base}USDT", base, "USDT", step, step, Decimal(5), tick)


def upbit_market(base: str) -> SimMarket:
    """A KRW-BASE market: KRW tick table, 1e-8 volume step, 5,000 KRW minimum order."""
    step = Decimal("0.00000001")
    return SimMarket("upbit", f"KRW-{base}", base, "KRW", step, step, Decimal(5000))


@dataclass(frozen=True, slots=True)
class LadderShape:
    """How a venue's book looks around its mid price."""

    levels: int = 20
    half_spread_bps: float = 2.0
    level_step_bps: float = 1.5
    level_notional: float = 25_000.0  # quote currency per level, on average


class PriceModel:
    """Reference prices, FX and premiums, moved one step per market tick by a seeded RNG."""

    def __init__(
        self,
        rng: random.Random,
        assets: Mapping[str, float],
        fx_rate: float = 1380.0,
        premium_pct: float = 0.8,
        usdt_premium_pct: float = 1.0,
        vol_pct: float = 0.02,
        premium_vol_pct: float = 0.08,
        reversion: float = 0.1,
    ) -> None:
        self._rng = rng
        self.ref = dict(assets)
        self.fx = fx_rate
        self.premium_mean = premium_pct
        self.premium = dict.fromkeys(assets, premium_pct)
        self.usdt_premium = usdt_premium_pct
        self._vol = vol_pct / 100.0
        self._premium_vol = premium_vol_pct
        self._reversion = reversion

    def step(self) -> None:
        gauss = self._rng.gauss
        for asset in self.ref:
            self.ref[asset] *= math.exp(self._vol * gauss(0.0, 1.0))
            p = self.premium[asset]
            self.premium[asset] = (
                p + self._reversion * (self.premium_mean - p) + self._premium_vol * gauss(0.0, 1.0)
            )
        self.fx *= math.exp(self._vol * 0.2 * gauss(0.0, 1.0))

    def usdt_krw(self) -> float:
        return self.fx * (1.0 + self.usdt_premium / 100.0)

    def mid(self, market: SimMarket) -> float:
        if market.quote == "USDT":
            return self.ref[market.base]
        if market.base == "USDT":
            return self.usdt_krw()
        return self.ref[market.base] * self.usdt_krw() * (1.0 + self.premium[market.base] / 100.0)


def build_ladder(
    market: SimMarket, mid: float, shape: LadderShape, notional_scale: float, rng: random.Random
) -> tuple[list[Level], list[Level]]:
    """Bids (best first) and asks (best first) around `mid`, on the market's tick and step."""
    mid_d = Decimal(repr(mid))
    half = Decimal(repr(shape.half_spread_bps / 10_000.0))
    gap = Decimal(repr(shape.level_step_bps / 10_000.0))
    best_bid = market.floor_price(mid_d * (1 - half))
    best_ask = market.ceil_price(mid_d * (1 + half))
    if best_ask <= best_bid:
        best_ask = best_bid + market.tick_at(best_bid)
    bids: list[Level] = []
    asks: list[Level] = []
    for i in range(shape.levels):
        bid = market.floor_price(best_bid * (1 - gap * i))
        if bids and bid >= bids[-1][0]:
            bid = market.floor_price(bids[-1][0] - market.tick_at(bids[-1][0]))
        ask = market.ceil_price(best_ask * (1 + gap * i))
        if asks and ask <= asks[-1][0]:
            ask = asks[-1][0] + market.tick_at(asks[-1][0])
        for price, side in ((bid, bids), (ask, asks)):
            if price <= 0:
                continue
            notional = shape.level_notional * notional_scale * rng.uniform(0.4, 1.6)
            qty = market.floor_qty(Decimal(repr(notional)) / price)
            side.append((price, max(qty, market.step)))
    return bids, asks
