"""Market rules for venues whose markets are simulated or recorded (mock, replay): Upbit's price
unit on KRW markets, Binance-like rules elsewhere, since neither has an exchange to ask."""

from __future__ import annotations

import math
from decimal import Decimal

from arbitrage.domain.money import MarketRules, dec, upbit_krw_tick

KRW_QTY_STEP = Decimal("1e-8")
KRW_MIN_NOTIONAL = Decimal(5000)  # Upbit's minimum order value
FOREIGN_MAX_TICK = Decimal("0.01")
FOREIGN_MIN_NOTIONAL = Decimal(5)  # Binance-like minimum notional in USDT


def krw_rules(mid: float, coin_fee_rate: Decimal) -> MarketRules:
    """Upbit's: the price unit depends on the price itself, so it follows the current mid."""
    return MarketRules(
        price_tick=upbit_krw_tick(dec(mid)),
        qty_step=KRW_QTY_STEP,
        min_notional=KRW_MIN_NOTIONAL,
        buy_fee_in_base=coin_fee_rate,
    )


def foreign_rules(price: float, coin_fee_rate: Decimal) -> MarketRules:
    """Binance-like rules from the price's magnitude: a step worth 1-10 quote units, tick <= 0.01.
    Fixed per market (from a stable price), as an exchange's filters are."""
    magnitude = math.floor(math.log10(price))
    tick = min(FOREIGN_MAX_TICK, Decimal(10) ** (magnitude - 4))
    step = Decimal(10) ** (-magnitude)
    return MarketRules(
        price_tick=tick, qty_step=step, min_notional=FOREIGN_MIN_NOTIONAL, buy_fee_in_base=coin_fee_rate
    )
