"""The Upbit subset that ccxt 4.5.x uses, served under /upbit/v1 (REST) and /upbit/websocket/v1.

As on Upbit: a KRW price off the tick table is refused as invalid_price_bid/_ask, an order under
5,000 KRW as under_min_total_bid/_ask; an `identifier` is spent by any attempt, even a refused
one, and can never be used again; POST /v1/orders answers with the order as accepted (state
"wait", nothing executed yet) and matching happens right after, so the outcome is read with
GET /v1/order (by uuid or identifier). POST /v1/orders/test validates without placing.
Refusal names Upbit documents are used as they are; for a reused identifier and an unknown
market the simulator answers `validation_error` (Upbit's exact name is not verified here).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from arbitrage.clock import Clock
from arbitrage.sim.exchange import OrderRefused, Refusal, SimVenue
from arbitrage.sim.faults import FaultInjector, Handler
from arbitrage.sim.matching import OrderStatus, SimOrder
from arbitrage.sim.streams import StreamHub
from arbitrage.sim.upbit_wire import UpbitFailure, UpbitReplies, api_key, kst, num, params, positive, replying
from arbitrage.sim.upbit_ws import UpbitStreams, orderbook_message

PREFIX = "/upbit"
_TIFS = {"ioc": "IOC", "fok": "FOK"}
_REFUSALS: dict[Refusal, tuple[str, str]] = {
    Refusal.UNKNOWN_MARKET: ("validation_error", "market does not exist"),
    Refusal.BAD_PRICE: ("invalid_price_{side}", "주문 가격 단위를 잘못 입력하셨습니다."),
    Refusal.BAD_QTY: ("invalid_volume_{side}", "주문 수량 단위를 잘못 입력하셨습니다."),
    Refusal.MIN_NOTIONAL: ("under_min_total_{side}", "최소주문금액 이상으로 주문해주세요."),
    Refusal.DUPLICATE_CLIENT_ID: ("validation_error", "identifier already used by an order of this account"),
    Refusal.INSUFFICIENT_FUNDS: ("insufficient_funds_{side}", "주문가능한 금액이 부족합니다."),
    Refusal.REJECTED: ("create_{side}_error", "주문 생성에 실패했습니다 (simulator reject fault)."),
}
_STATES = {
    OrderStatus.NEW: "wait",
    OrderStatus.PARTIALLY_FILLED: "wait",
    OrderStatus.FILLED: "done",
    OrderStatus.CANCELED: "cancel",
    OrderStatus.EXPIRED: "cancel",
}


def order_json(o: SimOrder, rate: Decimal, with_trades: bool = False) -> dict[str, Any]:
    bid = o.side == "buy"
    reserved_fee = o.price * o.qty * rate if bid else Decimal(0)
    body: dict[str, Any] = {
        "uuid": o.order_id,
        "side": "bid" if bid else "ask",
        "ord_type": "limit",
        "price": num(o.price),
        "state": _STATES[o.status],
        "market": o.market.market_id,
        "created_at": kst(o.created_ms),
        "volume": num(o.qty),
        "remaining_volume": num(o.remaining),
        "reserved_fee": num(reserved_fee),
        "remaining_fee": num(o.remaining * o.price * rate if bid and o.is_open else Decimal(0)),
        "paid_fee": num(o.fee),
        "locked": num(o.locked),
        "executed_volume": num(o.filled),
        "executed_funds": num(o.cost),
        "trades_count": len(o.fills),
    }
    if o.tif != "GTC":
        body["time_in_force"] = o.tif.lower()
    if o.client_id is not None:
        body["identifier"] = o.client_id
    if with_trades:
        body["trades"] = [
            {
                "market": o.market.market_id,
                "uuid": f"{o.order_id[:24]}{f.trade_id:012d}",
                "price": num(f.price),
                "volume": num(f.qty),
                "funds": num(f.quote_qty),
                "trend": "up" if bid else "down",
                "created_at": kst(f.ts_ms),
                "side": "bid" if bid else "ask",
            }
            for f in o.fills
        ]
    return body


class UpbitApi:
    def __init__(self, venue: SimVenue, faults: FaultInjector, hub: StreamHub, clock: Clock) -> None:
        self._venue = venue
        self._faults = faults
        self._clock = clock
        self._streams = UpbitStreams(venue, hub, clock)

    def routes(self) -> list[web.RouteDef]:
        v1 = f"{PREFIX}/v1"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", f"{v1}/market/all", "markets", self._markets),
            ("GET", f"{v1}/orderbook", "order_book", self._orderbook),
            ("GET", f"{v1}/accounts", "balance", self._accounts),
            ("GET", f"{v1}/orders/chance", "fees", self._chance),
            ("POST", f"{v1}/orders", "create_order", self._create),
            ("POST", f"{v1}/orders/test", "test_order", self._create_test),
            ("GET", f"{v1}/order", "fetch_order", self._fetch),
            ("DELETE", f"{v1}/order", "cancel_order", self._cancel),
            ("GET", f"{v1}/orders/open", "open_orders", self._open),
            ("GET", f"{v1}/orders/closed", "closed_orders", self._closed),
        ]
        replies = UpbitReplies()
        routes = [
            web.route(method, path, self._faults.guard("upbit", op, replying(handler), replies))
            for method, path, op, handler in table
        ]
        return [*routes, web.get(f"{PREFIX}/websocket/v1", self._streams.connect)]

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _rate(self) -> Decimal:
        return self._venue.fees.rate

    # ----- public

    async def _markets(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "market": m.market_id,
                    "korean_name": m.base,
                    "english_name": m.base,
                    "market_warning": "NONE",
                }
                for m in self._venue.markets.values()
            ]
        )

    async def _orderbook(self, request: web.Request) -> web.Response:
        found = await params(request)
        codes = [c for c in found.get("markets", "").split(",") if c]
        if not codes:
            raise UpbitFailure(400, "validation_error", "markets is missing")
        count = int(found["count"]) if found.get("count", "").isdigit() else 30
        unknown = [c for c in codes if c not in self._venue.markets]
        if unknown:
            raise UpbitFailure(404, "not_found", f"Code not found: {unknown}")
        books = [orderbook_message(self._venue.books[c], min(max(count, 1), 30)) for c in codes]
        return web.json_response(
            [{k: v for k, v in b.items() if k not in ("type", "stream_type")} for b in books]
        )

    # ----- account

    def _account_rows(self, key: str) -> list[dict[str, Any]]:
        wallet = self._venue.wallet(key)
        rows = []
        for asset in wallet.assets():
            free, locked = wallet.free.get(asset, Decimal(0)), wallet.locked.get(asset, Decimal(0))
            if free == 0 and locked == 0 and asset != "KRW":
                continue
            rows.append(
                {
                    "currency": asset,
                    "balance": num(free),
                    "locked": num(locked),
                    "avg_buy_price": "0",
                    "avg_buy_price_modified": False,
                    "unit_currency": "KRW",
                }
            )
        return rows

    async def _accounts(self, request: web.Request) -> web.Response:
        return web.json_response(self._account_rows(api_key(request)))

    async def _chance(self, request: web.Request) -> web.Response:
        key = api_key(request)
        market = self._venue.markets.get((await params(request)).get("market", ""))
        if market is None:
            raise UpbitFailure(400, "validation_error", "market does not exist")
        rows = {r["currency"]: r for r in self._account_rows(key)}
        rate = num(self._rate())

        def account(currency: str) -> dict[str, Any]:
            return rows.get(currency) or {
                "currency": currency,
                "balance": "0",
                "locked": "0",
                "avg_buy_price": "0",
                "avg_buy_price_modified": False,
                "unit_currency": "KRW",
            }

        minimum = num(market.min_notional)
        return web.json_response(
            {
                "bid_fee": rate,
                "ask_fee": rate,
                "maker_bid_fee": rate,
                "maker_ask_fee": rate,
                "market": {
                    "id": market.market_id,
                    "name": f"{market.base}/{market.quote}",
                    "order_types": ["limit"],
                    "ask_types": ["limit", "limit_ioc", "limit_fok"],
                    "bid_types": ["limit", "limit_ioc", "limit_fok"],
                    "order_sides": ["ask", "bid"],
                    "bid": {"currency": market.quote, "price_unit": None, "min_total": minimum},
                    "ask": {"currency": market.base, "price_unit": None, "min_total": minimum},
                    "max_total": "1000000000",
                    "state": "active",
                },
                "bid_account": account(market.quote),
                "ask_account": account(market.base),
            }
        )

    # ----- orders

    async def _create(self, request: web.Request) -> web.Response:
        return await self._new_order(request, test=False)

    async def _create_test(self, request: web.Request) -> web.Response:
        return await self._new_order(request, test=True)

    async def _new_order(self, request: web.Request, test: bool) -> web.Response:
        key = api_key(request)
        found = await params(request)
        side = {"bid": "buy", "ask": "sell"}.get(found.get("side", ""))
        if side is None:
            raise UpbitFailure(400, "validation_error", "side is missing, side does not have a valid value")
        if found.get("ord_type") != "limit":
            raise UpbitFailure(400, "validation_error", "ord_type: only limit orders are simulated")
        raw_tif = found.get("time_in_force")
        if raw_tif is not None and raw_tif not in _TIFS:
            raise UpbitFailure(400, "validation_error", "time_in_force does not have a valid value")
        tif = _TIFS.get(raw_tif or "", "GTC")
        volume, price = positive(found, "volume"), positive(found, "price")
        market_id, identifier = found.get("market", ""), found.get("identifier")
        now = self._now_ms()
        if test:
            return web.json_response(
                self._test_order(key, market_id, side, price, volume, tif, identifier, now)
            )
        rejected = self._faults.draw("upbit", "create_order", "reject") is not None
        partial = self._faults.draw("upbit", "create_order", "partial_fill")
        try:
            order = self._venue.accept(key, market_id, side, price, volume, tif, identifier, now, rejected)
        except OrderRefused as refused:
            raise self._failure(refused) from None
        accepted = order_json(order, self._rate())  # Upbit answers before the order is matched
        self._venue.execute(order, now, partial.fill_ratio if partial is not None else None)
        return web.json_response(accepted, status=201)

    def _test_order(
        self,
        key: str,
        market_id: str,
        side: str,
        price: Decimal,
        volume: Decimal,
        tif: str,
        identifier: str | None,
        now: int,
    ) -> dict[str, Any]:
        market = self._venue.markets.get(market_id)
        refusal = Refusal.UNKNOWN_MARKET if market is None else self._venue.check(market, price, volume)
        if refusal is not None or market is None:
            raise self._failure(OrderRefused(refusal or Refusal.UNKNOWN_MARKET, side))
        lock = self._venue.fees.lock_for(side, price, volume)
        probe = SimOrder(
            "upbit",
            key,
            self._venue.random_uuid(),
            identifier,
            market,
            side,
            price,
            volume,
            tif,
            now,
            now,
            lock,
            market.quote if side == "buy" else market.base,
        )
        return order_json(probe, self._rate())

    @staticmethod
    def _failure(refused: OrderRefused) -> UpbitFailure:
        name, message = _REFUSALS[refused.reason]
        return UpbitFailure(400, name.format(side="bid" if refused.side == "buy" else "ask"), message)

    async def _lookup(self, request: web.Request) -> tuple[str, SimOrder]:
        key = api_key(request)
        found = await params(request)
        uuid, identifier = found.get("uuid"), found.get("identifier")
        if not uuid and not identifier:
            raise UpbitFailure(400, "validation_error", "uuid or identifier is missing")
        order = self._venue.find(key, order_id=uuid or None, client_id=None if uuid else identifier)
        if order is None:
            raise UpbitFailure(404, "order_not_found", "주문을 찾지 못했습니다.")
        return key, order

    async def _fetch(self, request: web.Request) -> web.Response:
        _, order = await self._lookup(request)
        return web.json_response(order_json(order, self._rate(), with_trades=True))

    async def _cancel(self, request: web.Request) -> web.Response:
        _, order = await self._lookup(request)
        if not order.is_open:
            raise UpbitFailure(404, "order_not_found", "주문을 찾지 못했습니다.")
        answer = order_json(order, self._rate())  # Upbit answers with the order as it was (state "wait")
        self._venue.cancel(order, self._now_ms())
        return web.json_response(answer)

    async def _listing(self, request: web.Request, open_only: bool) -> list[SimOrder]:
        key = api_key(request)
        found = await params(request)
        market_id = found.get("market") or None
        limit = int(found["limit"]) if found.get("limit", "").isdigit() else 100
        orders = self._venue.orders_of(key, market_id, open_only=open_only)
        if not open_only:
            state = found.get("state")
            orders = [o for o in orders if not o.is_open and (state is None or _STATES[o.status] == state)]
        orders.sort(key=lambda o: o.created_ms, reverse=True)
        return orders[:limit]

    async def _open(self, request: web.Request) -> web.Response:
        return web.json_response([order_json(o, self._rate()) for o in await self._listing(request, True)])

    async def _closed(self, request: web.Request) -> web.Response:
        return web.json_response([order_json(o, self._rate()) for o in await self._listing(request, False)])
