"""How each exchange takes, finds and cancels orders by client order id through ccxt 4.5, and its rules.

Binance: `newClientOrderId` on create, `origClientOrderId` to look up and cancel; the FULL create
answer carries the fills. Upbit: `identifier` on create (ccxt's `clientOrderId`), answered before
matching, so the outcome is read back; ccxt's fetch_order always sends `uuid`, so a lookup by
identifier goes to the raw `privateGetOrder`. Upbit's ccxt markets carry placeholder precision:
KRW markets follow Upbit's tick table at the order's price and its minimum order value. Any other
ccxt exchange gets the unified `clientOrderId` and a lookup through its order lists.

Methods raise ccxt's own exceptions; the venue classifies them (arbitrage.venues.ccxt_errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from arbitrage.domain.money import ZERO, MarketRules, upbit_krw_tick
from arbitrage.venues.ccxt_reports import to_decimal

FALLBACK_UNIT = Decimal("1e-8")
UPBIT_QTY_STEP = Decimal("1e-8")
UPBIT_KRW_MIN_TOTAL = Decimal(5000)

Order = dict[str, Any]


def _unit(value: Any, precision_mode: int) -> Decimal:
    number = to_decimal(value)
    if number is None or number <= 0:
        return FALLBACK_UNIT
    if precision_mode == TICK_SIZE:
        return number
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    return FALLBACK_UNIT  # significant digits: no fixed unit; the venue rounds the rest


def market_rules(exchange: Any, symbol: str) -> MarketRules:
    """Tick, step and minimums as ccxt's market structure states them."""
    market = exchange.market(symbol)
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    return MarketRules(
        price_tick=_unit(precision.get("price"), exchange.precisionMode),
        qty_step=_unit(precision.get("amount"), exchange.precisionMode),
        min_notional=to_decimal((limits.get("cost") or {}).get("min")) or ZERO,
        min_qty=to_decimal((limits.get("amount") or {}).get("min")) or ZERO,
    )


class OrderDialect:
    """The generic ccxt way, for exchanges without a dialect of their own."""

    # The create call answers before matching: read the outcome back by venue order id.
    reads_back = False
    # Minimums that the markets do not carry come from a private call (load_minimums).
    loads_minimums = False

    def create_params(self, client_order_id: str) -> dict[str, Any]:
        return {"clientOrderId": client_order_id, "timeInForce": "IOC"}

    def find(self, exchange: Any, symbol: str, client_order_id: str) -> Order | None:
        if exchange.has.get("fetchOrders"):
            orders = exchange.fetch_orders(symbol)
        else:
            orders = exchange.fetch_open_orders(symbol) + exchange.fetch_closed_orders(symbol)
        found = [o for o in orders if o.get("clientOrderId") == client_order_id]
        return found[-1] if found else None

    def refetch(self, exchange: Any, symbol: str, order: Order) -> Order:
        return dict(exchange.fetch_order(order["id"], symbol))

    def cancel(self, exchange: Any, symbol: str, order: Order) -> None:
        exchange.cancel_order(order["id"], symbol)

    def fee_trades(self, exchange: Any, symbol: str, order: Order) -> list[Order] | None:
        """The order's trades, for their fees, when the order itself says nothing of fees."""
        if exchange.has.get("fetchOrderTrades"):
            return list(exchange.fetch_order_trades(order["id"], symbol))
        return None

    def totals(self, order: Order) -> tuple[Decimal, Decimal] | None:
        """Exact (filled, quote cost) from the raw answer, when the exchange gives both as strings."""
        return None

    def free_balances(self, balance: Order) -> dict[str, Decimal] | None:
        """Exact free amounts from the raw balance answer (ccxt's floats lose digits past ~16)."""
        return None

    def tick_follows_price(self, symbol: str) -> bool:
        """Whether the price tick depends on the price (then rules need the current price)."""
        return False

    def load_minimums(self, exchange: Any, symbol: str) -> None:
        """Read the minimums the markets do not carry (a private call: only with API keys)."""

    def rules(self, exchange: Any, symbol: str, price: Decimal | None) -> MarketRules:
        return market_rules(exchange, symbol)


class BinanceDialect(OrderDialect):
    def create_params(self, client_order_id: str) -> dict[str, Any]:
        return {"newClientOrderId": client_order_id, "timeInForce": "IOC"}

    def find(self, exchange: Any, symbol: str, client_order_id: str) -> Order | None:
        return dict(exchange.fetch_order(None, symbol, {"origClientOrderId": client_order_id}))

    def fee_trades(self, exchange: Any, symbol: str, order: Order) -> list[Order] | None:
        return list(exchange.fetch_my_trades(symbol, None, None, {"orderId": order["id"]}))

    def totals(self, order: Order) -> tuple[Decimal, Decimal] | None:
        return _raw_totals(order, "executedQty", "cummulativeQuoteQty")

    def free_balances(self, balance: Order) -> dict[str, Decimal] | None:
        info = balance.get("info")
        rows = info.get("balances") if isinstance(info, Mapping) else None
        return _raw_free(rows, "asset", "free")


class UpbitDialect(OrderDialect):
    reads_back = True
    loads_minimums = True

    def __init__(self) -> None:
        self.min_totals: dict[str, Decimal] = {}  # symbol -> minimum order value from /orders/chance

    def create_params(self, client_order_id: str) -> dict[str, Any]:
        return {"clientOrderId": client_order_id, "timeInForce": "ioc"}

    def find(self, exchange: Any, symbol: str, client_order_id: str) -> Order | None:
        raw = exchange.privateGetOrder({"identifier": client_order_id})
        return dict(exchange.parse_order(raw))

    def fee_trades(self, exchange: Any, symbol: str, order: Order) -> list[Order] | None:
        return None  # paid_fee is on the order itself

    def totals(self, order: Order) -> tuple[Decimal, Decimal] | None:
        return _raw_totals(order, "executed_volume", "executed_funds")

    def free_balances(self, balance: Order) -> dict[str, Decimal] | None:
        return _raw_free(balance.get("info"), "currency", "balance")  # "balance" is the free part

    def tick_follows_price(self, symbol: str) -> bool:
        return symbol.endswith("/KRW")

    def load_minimums(self, exchange: Any, symbol: str) -> None:
        """The market's minimum order value from /v1/orders/chance."""
        answer = exchange.privateGetOrdersChance({"market": exchange.market_id(symbol)})
        market = answer.get("market") or {}
        totals = [to_decimal((market.get(side) or {}).get("min_total")) for side in ("bid", "ask")]
        found = [t for t in totals if t is not None]
        if found:
            self.min_totals[symbol] = max(found)

    def rules(self, exchange: Any, symbol: str, price: Decimal | None) -> MarketRules:
        if not symbol.endswith("/KRW"):
            general = market_rules(exchange, symbol)
            minimum = self.min_totals.get(symbol, general.min_notional)
            return MarketRules(general.price_tick, general.qty_step, minimum, general.min_qty)
        exchange.market(symbol)  # an unknown symbol raises BadSymbol here, as elsewhere
        tick = upbit_krw_tick(price) if price is not None and price > 0 else Decimal(1)
        minimum = self.min_totals.get(symbol, UPBIT_KRW_MIN_TOTAL)
        return MarketRules(price_tick=tick, qty_step=UPBIT_QTY_STEP, min_notional=minimum)


def _raw_totals(order: Order, filled_key: str, cost_key: str) -> tuple[Decimal, Decimal] | None:
    info = order.get("info")
    if not isinstance(info, Mapping):
        return None
    filled, cost = to_decimal(info.get(filled_key)), to_decimal(info.get(cost_key))
    if filled is None or cost is None:
        return None
    return filled, cost


def _raw_free(rows: Any, asset_key: str, free_key: str) -> dict[str, Decimal] | None:
    if not isinstance(rows, list):
        return None
    free: dict[str, Decimal] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            return None
        amount = to_decimal(row.get(free_key))
        if row.get(asset_key) is None or amount is None:
            return None
        free[str(row[asset_key]).upper()] = amount
    return free


def dialect_for(exchange_id: str) -> OrderDialect:
    if exchange_id in ("binance", "binanceus"):
        return BinanceDialect()
    if exchange_id == "upbit":
        return UpbitDialect()
    return OrderDialect()
