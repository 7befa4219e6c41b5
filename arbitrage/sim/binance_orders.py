"""Binance's order endpoints in the simulator: new, test, query, cancel, open, all, my trades.

Responses carry Binance's fields (status NEW / PARTIALLY_FILLED / FILLED / CANCELED / EXPIRED,
executedQty, cummulativeQuoteQty, fills with commission). A LIMIT IOC remainder is EXPIRED.
A cancel answers with a fresh clientOrderId and the original one in origClientOrderId, as
Binance does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from arbitrage.sim.binance_wire import BinanceFailure, BinanceRequests, d8, missing
from arbitrage.sim.exchange import OrderRefused, Refusal, SimVenue
from arbitrage.sim.faults import FaultInjector
from arbitrage.sim.matching import SimOrder

TIFS = ("GTC", "IOC", "FOK")
ZERO = d8(Decimal(0))
_REFUSALS: dict[Refusal, tuple[int, str]] = {
    Refusal.UNKNOWN_MARKET: (-1121, "Invalid symbol."),
    Refusal.BAD_PRICE: (-1013, "Filter failure: PRICE_FILTER"),
    Refusal.BAD_QTY: (-1013, "Filter failure: LOT_SIZE"),
    Refusal.MIN_NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
    Refusal.DUPLICATE_CLIENT_ID: (-2010, "Duplicate order sent."),
    Refusal.INSUFFICIENT_FUNDS: (-2010, "Account has insufficient balance for requested action."),
    Refusal.REJECTED: (-2010, "Order rejected (simulator reject fault)."),
}


def _core(o: SimOrder) -> dict[str, Any]:
    return {
        "symbol": o.market.market_id,
        "orderId": int(o.order_id),
        "orderListId": -1,
        "clientOrderId": o.client_id,
        "price": d8(o.price),
        "origQty": d8(o.qty),
        "executedQty": d8(o.filled),
        "cummulativeQuoteQty": d8(o.cost),
        "status": o.status.value,
        "timeInForce": o.tif,
        "type": "LIMIT",
        "side": o.side.upper(),
    }


def order_result(o: SimOrder, resp_type: str) -> dict[str, Any]:
    """The answer to a new order: ACK, RESULT or FULL (with fills)."""
    if resp_type == "ACK":
        return {
            "symbol": o.market.market_id,
            "orderId": int(o.order_id),
            "orderListId": -1,
            "clientOrderId": o.client_id,
            "transactTime": o.created_ms,
        }
    result = _core(o) | {
        "transactTime": o.created_ms,
        "workingTime": o.created_ms,
        "origQuoteOrderQty": ZERO,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if resp_type == "FULL":
        result["fills"] = [
            {
                "price": d8(f.price),
                "qty": d8(f.qty),
                "commission": d8(f.fee),
                "commissionAsset": f.fee_asset,
                "tradeId": f.trade_id,
            }
            for f in o.fills
        ]
    return result


def order_query(o: SimOrder) -> dict[str, Any]:
    """An order as GET /order, /openOrders and /allOrders show it."""
    return _core(o) | {
        "stopPrice": ZERO,
        "icebergQty": ZERO,
        "time": o.created_ms,
        "updateTime": o.updated_ms,
        "isWorking": True,
        "workingTime": o.created_ms,
        "origQuoteOrderQty": ZERO,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


class BinanceOrderEndpoints:
    def __init__(self, venue: SimVenue, wire: BinanceRequests, faults: FaultInjector) -> None:
        self._venue = venue
        self._wire = wire
        self._faults = faults

    async def create(self, request: web.Request) -> web.Response:
        return await self._new_order(request, test=False)

    async def create_test(self, request: web.Request) -> web.Response:
        return await self._new_order(request, test=True)

    async def _new_order(self, request: web.Request, test: bool) -> web.Response:
        key, params = await self._wire.signed(request)
        market_id = self._wire.market_id(params)
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise BinanceFailure(400, -1117, "Invalid side.")
        if params.get("type") != "LIMIT":
            raise BinanceFailure(400, -1116, "Invalid orderType.")
        tif = params.get("timeInForce")
        if not tif:
            raise missing("timeInForce")
        if tif not in TIFS:
            raise BinanceFailure(400, -1115, "Invalid timeInForce.")
        qty = self._wire.positive(params, "quantity")
        price = self._wire.positive(params, "price")
        resp_type = params.get("newOrderRespType", "FULL")
        client_id = params.get("newClientOrderId") or self._venue.random_token(22)
        now = self._wire.now_ms()
        if test:
            refusal = self._venue.check(self._venue.markets[market_id], price, qty)
            if refusal is not None:
                code, msg = _REFUSALS[refusal]
                raise BinanceFailure(400, code, msg)
            return web.json_response({})
        rejected = self._faults.draw("binance", "create_order", "reject") is not None
        partial = self._faults.draw("binance", "create_order", "partial_fill")
        try:
            order = self._venue.accept(
                key, market_id, side.lower(), price, qty, tif, client_id, now, rejected
            )
        except OrderRefused as refused:
            code, msg = _REFUSALS[refused.reason]
            raise BinanceFailure(400, code, msg) from None
        self._venue.execute(order, now, partial.fill_ratio if partial is not None else None)
        return web.json_response(order_result(order, resp_type))

    def _lookup(self, key: str, params: dict[str, str]) -> SimOrder:
        market_id = self._wire.market_id(params)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceFailure(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        order = self._venue.find(key, order_id=order_id or None, client_id=None if order_id else client_id)
        if order is None or order.market.market_id != market_id:
            raise BinanceFailure(400, -2013, "Order does not exist.")
        return order

    async def fetch(self, request: web.Request) -> web.Response:
        key, params = await self._wire.signed(request)
        return web.json_response(order_query(self._lookup(key, params)))

    async def cancel(self, request: web.Request) -> web.Response:
        key, params = await self._wire.signed(request)
        try:
            order = self._lookup(key, params)
        except BinanceFailure as failure:
            if failure.code == -2013:
                raise BinanceFailure(400, -2011, "Unknown order sent.") from None
            raise
        if not order.is_open:
            raise BinanceFailure(400, -2011, "Unknown order sent.")
        now = self._wire.now_ms()
        self._venue.cancel(order, now)
        body = _core(order) | {
            "origClientOrderId": order.client_id,
            "clientOrderId": params.get("newClientOrderId") or self._venue.random_token(22),
            "transactTime": now,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        return web.json_response(body)

    async def open_orders(self, request: web.Request) -> web.Response:
        key, params = await self._wire.signed(request)
        market_id = self._wire.optional_market_id(params)
        orders = self._venue.orders_of(key, market_id, open_only=True)
        return web.json_response([order_query(o) for o in orders])

    async def all_orders(self, request: web.Request) -> web.Response:
        key, params = await self._wire.signed(request)
        market_id = self._wire.market_id(params)
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 500
        orders = self._venue.orders_of(key, market_id)[-limit:]
        return web.json_response([order_query(o) for o in orders])

    async def my_trades(self, request: web.Request) -> web.Response:
        key, params = await self._wire.signed(request)
        market_id = self._wire.market_id(params)
        only = params.get("orderId")
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 500
        fills = sorted(
            (
                (o, f)
                for o in self._venue.orders_of(key, market_id)
                if only in (None, o.order_id)
                for f in o.fills
            ),
            key=lambda pair: pair[1].trade_id,
        )
        trades = [
            {
                "symbol": market_id,
                "id": f.trade_id,
                "orderId": int(o.order_id),
                "orderListId": -1,
                "price": d8(f.price),
                "qty": d8(f.qty),
                "quoteQty": d8(f.quote_qty),
                "commission": d8(f.fee),
                "commissionAsset": f.fee_asset,
                "time": f.ts_ms,
                "isBuyer": o.side == "buy",
                "isMaker": False,
                "isBestMatch": True,
            }
            for o, f in fills
        ]
        return web.json_response(trades[-limit:])
