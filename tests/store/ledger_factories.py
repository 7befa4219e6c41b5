"""Small factories of orders, pair positions and opportunities for the ledger tests."""

from __future__ import annotations

from decimal import Decimal

from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.orders import Order
from arbitrage.domain.positions import PairPosition


def make_order(cid: str = "E0000001-B", **kw: object) -> Order:
    fields: dict[str, object] = {
        "client_order_id": cid,
        "venue": "upbit",
        "symbol": "BTC/KRW",
        "side": "buy",
        "qty": Decimal("0.01234567"),
        "price": Decimal("91234000"),
        "opportunity_id": cid.rsplit("-", 1)[0],
    }
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def make_position(pid: str = "E0000001", **kw: object) -> PairPosition:
    fields: dict[str, object] = {
        "position_id": pid,
        "asset": "BTC",
        "buy_venue": "binance",
        "sell_venue": "upbit",
        "buy_symbol": "BTC/USDT",
        "sell_symbol": "BTC/KRW",
        "qty": Decimal("0.0100"),
        "buy_qty": Decimal("0.0100"),
        "sell_qty": Decimal("0.0100"),
        "entry_cost": Decimal("912345.678901234567890123"),
        "entry_proceeds": Decimal("925000.50"),
        "entry_fees": Decimal("1381.04"),
        "entry_spread_pct": 1.2345678901234567,
        "opened_at": 1_700_000_000.123456,
    }
    fields.update(kw)
    return PairPosition(**fields)  # type: ignore[arg-type]


def make_opportunity(**kw: object) -> Opportunity:
    fields: dict[str, object] = {
        "asset": "BTC",
        "buy_venue": "binance",
        "sell_venue": "upbit",
        "buy_symbol": "BTC/USDT",
        "sell_symbol": "BTC/KRW",
        "qty": 0.01,
        "buy_price": 65000.5,
        "sell_price": 92500000.0,
        "buy_vwap": 65000.25,
        "sell_vwap": 92510000.0,
        "buy_fx": 1385.2,
        "sell_fx": 1.0,
        "gross_spread_pct": 2.75,
        "net_spread_pct": 2.5,
        "slippage_pct": 0.1,
        "fees_pct": 0.15,
        "ts": 1_700_000_000.5,
        "book_age_ms": 12.5,
    }
    fields.update(kw)
    return Opportunity(**fields)  # type: ignore[arg-type]
