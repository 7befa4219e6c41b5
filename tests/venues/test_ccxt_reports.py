"""ccxt fee structures read by currency: the quote value of every fee, and the part in the coin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbitrage.venues.ccxt_reports import base_fee, quote_fee

D = Decimal


@pytest.mark.parametrize(
    ("fees", "coin", "quote_value"),
    [
        # Binance buy, commissionAsset BTC: in the coin, valued at the fill price
        ([{"cost": 0.00001002, "currency": "BTC"}], "0.00001002", "1.002"),
        # two trades of one order
        (
            [{"cost": "0.000005", "currency": "BTC"}, {"cost": "0.00000502", "currency": "BTC"}],
            "0.00001002",
            "1.002",
        ),
        # Binance with BNB fees: nothing in the coin; the quote value estimated from the taker rate
        ([{"cost": 0.0015, "currency": "BNB"}], "0", "1.002"),
        # a sell, or Upbit: in the quote
        ([{"cost": "1.002", "currency": "USDT"}], "0", "1.002"),
        (None, None, "1.002"),  # the venue said nothing: the caller estimates
    ],
)
def test_fees_by_currency(fees: list[dict[str, Any]] | None, coin: str | None, quote_value: str) -> None:
    assert base_fee(fees, "BTC/USDT") == (None if coin is None else D(coin))
    assert quote_fee(fees, "BTC/USDT", D(100_000), D("1002"), D("0.001")) == D(quote_value)
