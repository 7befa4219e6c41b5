"""Small builders for engine tests: config, books, snapshots, state, opportunities, positions.

The reference market: BTC around 100,000 USDT on binance (fee 0.1%) and 141,000,000 KRW on
upbit (fee 0.05%), USDT at 1,400 KRW, so buying on binance and selling on upbit grosses ~0.71%.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from arbitrage.config import AppConfig, parse_config
from arbitrage.domain.book import Level, MarketSnapshot, OrderBook, split_symbol
from arbitrage.domain.money import MarketRules, dec
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.positions import PairPosition
from arbitrage.engines.base import StateView, TickContext, VenueStatus

NOW = 1_700_000_000.0
USDT_KRW = 1400.0
FX = {"KRW": 1.0, "USDT": USDT_KRW}
FEES = {"upbit": 0.05, "binance": 0.1}


def make_config(**sections: Any) -> AppConfig:
    """The test config; each keyword replaces keys inside that section (or a top-level value)."""
    data: dict[str, Any] = {
        "venues": {
            "upbit": {"exchange": "mock", "quote": "KRW", "taker_fee_pct": FEES["upbit"]},
            "binance": {"exchange": "mock", "quote": "USDT", "taker_fee_pct": FEES["binance"]},
        },
        "fx": {"source": "fixed", "fixed": {"USDT": USDT_KRW}},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


def book(
    venue: str,
    symbol: str,
    bids: Iterable[Level] = (),
    asks: Iterable[Level] = (),
    ts: float = NOW,
) -> OrderBook:
    return OrderBook(venue, symbol, tuple(bids), tuple(asks), exchange_ts=ts, received_ts=ts)


def btc_books(
    binance_ask: float = 100_000.0,
    upbit_bid: float = 141_000_000.0,
    depth: float = 1.0,
    ts: float = NOW,
) -> list[OrderBook]:
    """One level each side, 10 bps wide, `depth` BTC per level."""
    return [
        book("binance", "BTC/USDT", [(binance_ask * 0.999, depth)], [(binance_ask, depth)], ts),
        book("upbit", "BTC/KRW", [(upbit_bid, depth)], [(upbit_bid * 1.001, depth)], ts),
    ]


def snapshot(
    books: Iterable[OrderBook],
    *,
    ts: float = NOW,
    fx: Mapping[str, float] | None = None,
    fx_age_ms: float = 0.0,
    ws_lag_ms: Mapping[str, float] | None = None,
    carried: Iterable[tuple[str, str]] = (),
) -> MarketSnapshot:
    return MarketSnapshot(
        ts=ts,
        books={(b.venue, split_symbol(b.symbol)[0]): b for b in books},
        fx=dict(FX if fx is None else fx),
        fx_age_ms=fx_age_ms,
        ws_lag_ms=dict(ws_lag_ms or {}),
        carried=frozenset(carried),
    )


def default_rules() -> dict[tuple[str, str], MarketRules]:
    return {
        ("binance", "BTC/USDT"): MarketRules(Decimal("0.01"), Decimal("0.00001"), Decimal(5)),
        ("upbit", "BTC/KRW"): MarketRules(Decimal(1000), Decimal("0.00000001"), Decimal(5000)),
        ("binance", "ETH/USDT"): MarketRules(Decimal("0.01"), Decimal("0.0001"), Decimal(5)),
        ("upbit", "ETH/KRW"): MarketRules(Decimal(1000), Decimal("0.00000001"), Decimal(5000)),
    }


def default_balances() -> dict[str, dict[str, Decimal]]:
    return {
        "upbit": {"KRW": Decimal(1_000_000_000), "BTC": Decimal(10), "ETH": Decimal(100)},
        "binance": {"USDT": Decimal(1_000_000), "BTC": Decimal(10), "ETH": Decimal(100)},
    }


def venue_status(config: AppConfig, name: str, **changes: Any) -> VenueStatus:
    v = config.venues[name]
    return replace(VenueStatus(name, v.quote, v.taker_fee_pct), **changes)


def state(
    config: AppConfig,
    *,
    positions: Iterable[PairPosition] = (),
    balances: Mapping[str, Mapping[str, Decimal]] | None = None,
    initial_balances: Mapping[str, Mapping[str, Decimal]] | None = None,
    rules: Mapping[tuple[str, str], MarketRules] | None = None,
    venues: Mapping[str, Mapping[str, Any]] | None = None,
    daily_realized_pnl: Decimal = Decimal(0),
    **changes: Any,
) -> StateView:
    """`venues` gives per-venue VenueStatus changes, e.g. {"upbit": {"degraded": True}}."""
    statuses = {name: venue_status(config, name, **(venues or {}).get(name, {})) for name in config.venues}
    bal = default_balances() if balances is None else balances
    return StateView(
        mode="mock",
        accounting_currency="KRW",
        positions={p.position_id: p for p in positions},
        balances=bal,
        initial_balances=bal if initial_balances is None else initial_balances,
        rules=default_rules() if rules is None else rules,
        venues=statuses,
        daily_realized_pnl=daily_realized_pnl,
        **changes,
    )


def ctx(snap: MarketSnapshot, view: StateView, tick: int = 1, **decisions: list[Any]) -> TickContext:
    return TickContext(tick=tick, snapshot=snap, state=view, decisions=dict(decisions))


def opportunity(**changes: Any) -> Opportunity:
    """A BTC opportunity buying on binance and selling on upbit that passes every default limit."""
    base = Opportunity(
        asset="BTC",
        buy_venue="binance",
        sell_venue="upbit",
        buy_symbol="BTC/USDT",
        sell_symbol="BTC/KRW",
        qty=0.03,
        buy_price=100_000.0,
        sell_price=141_000_000.0,
        buy_vwap=100_000.0,
        sell_vwap=141_000_000.0,
        buy_fx=USDT_KRW,
        sell_fx=1.0,
        gross_spread_pct=0.714,
        net_spread_pct=0.56,
        slippage_pct=0.0,
        fees_pct=0.15,
        ts=NOW,
    )
    return replace(base, **changes)


def pair_position(
    position_id: str = "P1",
    *,
    asset: str = "BTC",
    qty: str = "0.01",
    buy_price: float = 100_000.0,
    sell_price: float = 141_000_000.0,
    buy_fx: float = USDT_KRW,
    sell_fx: float = 1.0,
    opened_at: float = NOW - 60.0,
    buy_venue: str = "binance",
    sell_venue: str = "upbit",
) -> PairPosition:
    """An entry filled at exactly these prices, fees at the test venues' taker rates."""
    q = Decimal(qty)
    cost = q * dec(buy_price) * dec(buy_fx)
    proceeds = q * dec(sell_price) * dec(sell_fx)
    fees = cost * dec(FEES[buy_venue]) / 100 + proceeds * dec(FEES[sell_venue]) / 100
    quote = {"binance": "USDT", "upbit": "KRW"}
    return PairPosition(
        position_id=position_id,
        asset=asset,
        buy_venue=buy_venue,
        sell_venue=sell_venue,
        buy_symbol=f"{asset}/{quote[buy_venue]}",
        sell_symbol=f"{asset}/{quote[sell_venue]}",
        qty=q,
        buy_qty=q,
        sell_qty=q,
        entry_cost=cost,
        entry_proceeds=proceeds,
        entry_fees=fees,
        entry_spread_pct=float((proceeds - cost - fees) / cost * 100),
        opened_at=opened_at,
    )
