"""The Binance spot subset that ccxt 4.5.x uses, served under /binance: REST and diff-depth streams.

Field names, status strings and error codes follow Binance's API so that ccxt raises the same
exception classes it raises against the real venue (-2010 InvalidOrder or InsufficientFunds,
-2013 OrderNotFound, -1013 filter failures, 429/418 DDoSProtection). Signed endpoints accept any
signature but require X-MBX-APIKEY, `signature` and a `timestamp` inside `recvWindow`; the API
key picks the account. LIMIT orders only (GTC, IOC, FOK); newClientOrderId is unique among OPEN
orders, as on Binance: a filled or expired order's client id can be used again.
"""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from arbitrage.clock import Clock
from arbitrage.sim.binance_orders import BinanceOrderEndpoints
from arbitrage.sim.binance_wire import BinanceFailure, BinanceReplies, BinanceRequests, d8, replying
from arbitrage.sim.binance_ws import BinanceStreams
from arbitrage.sim.exchange import SimVenue
from arbitrage.sim.faults import FaultInjector, Handler
from arbitrage.sim.streams import StreamHub

PREFIX = "/binance"


class BinanceApi:
    def __init__(self, venue: SimVenue, faults: FaultInjector, hub: StreamHub, clock: Clock) -> None:
        self._venue = venue
        self._faults = faults
        self._wire = BinanceRequests(set(venue.markets), clock)
        self._orders = BinanceOrderEndpoints(venue, self._wire, faults)
        self._streams = BinanceStreams(venue, hub)

    def routes(self) -> list[web.RouteDef]:
        api = f"{PREFIX}/api/v3"
        orders = self._orders
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", f"{api}/ping", "time", self._ping),
            ("GET", f"{api}/time", "time", self._time),
            ("GET", f"{api}/exchangeInfo", "markets", self._exchange_info),
            ("GET", f"{api}/depth", "order_book", self._depth),
            ("GET", f"{api}/account", "balance", self._account),
            ("GET", f"{api}/account/commission", "fees", self._commission),
            ("GET", f"{PREFIX}/sapi/v1/asset/tradeFee", "fees", self._trade_fee),
            ("POST", f"{api}/order", "create_order", orders.create),
            ("POST", f"{api}/order/test", "test_order", orders.create_test),
            ("GET", f"{api}/order", "fetch_order", orders.fetch),
            ("DELETE", f"{api}/order", "cancel_order", orders.cancel),
            ("GET", f"{api}/openOrders", "open_orders", orders.open_orders),
            ("GET", f"{api}/allOrders", "closed_orders", orders.all_orders),
            ("GET", f"{api}/myTrades", "my_trades", orders.my_trades),
        ]
        replies = BinanceReplies()
        routes = [
            web.route(method, path, self._faults.guard("binance", op, replying(handler), replies))
            for method, path, op, handler in table
        ]
        return routes + self._streams.routes(PREFIX)

    # ----- public

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self._wire.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = []
        for m in self._venue.markets.values():
            tick = d8(m.tick_at(Decimal(1)))
            symbols.append(
                {
                    "symbol": m.market_id,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT"],
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": tick,
                            "maxPrice": "1000000.00000000",
                            "tickSize": tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": d8(m.min_qty),
                            "maxQty": "9000.00000000",
                            "stepSize": d8(m.step),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": d8(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                }
            )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self._wire.now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        params = await self._wire.params(request)
        market_id = self._wire.market_id(params)
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 100
        if not 1 <= limit <= 5000:
            raise BinanceFailure(400, -1100, "Illegal characters found in parameter 'limit'.")
        book = self._venue.books[market_id]
        bids, asks = book.top(limit)
        return web.json_response(
            {
                "lastUpdateId": book.update_id,
                "bids": [[d8(p), d8(q)] for p, q in bids],
                "asks": [[d8(p), d8(q)] for p, q in asks],
            }
        )

    # ----- account

    async def _account(self, request: web.Request) -> web.Response:
        key, _ = await self._wire.signed(request)
        wallet = self._venue.wallet(key)
        rate = d8(self._venue.fees.rate)
        assets = sorted(
            set(wallet.assets()) | {a for m in self._venue.markets.values() for a in (m.base, m.quote)}
        )
        balances = [
            {
                "asset": a,
                "free": d8(wallet.free.get(a, Decimal(0))),
                "locked": d8(wallet.locked.get(a, Decimal(0))),
            }
            for a in assets
        ]
        return web.json_response(
            {
                "makerCommission": int(self._venue.fees.rate * 10_000),
                "takerCommission": int(self._venue.fees.rate * 10_000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": rate,
                    "taker": rate,
                    "buyer": d8(Decimal(0)),
                    "seller": d8(Decimal(0)),
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self._wire.now_ms(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
            }
        )

    async def _commission(self, request: web.Request) -> web.Response:
        _, params = await self._wire.signed(request)
        market_id = self._wire.market_id(params)
        rate, zero = d8(self._venue.fees.rate), d8(Decimal(0))
        return web.json_response(
            {
                "symbol": market_id,
                "standardCommission": {"maker": rate, "taker": rate, "buyer": zero, "seller": zero},
                "taxCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
                "discount": {
                    "enabledForAccount": False,
                    "enabledForSymbol": False,
                    "discountAsset": "BNB",
                    "discount": zero,
                },
            }
        )

    async def _trade_fee(self, request: web.Request) -> web.Response:
        _, params = await self._wire.signed(request)
        market_id = self._wire.optional_market_id(params)
        rate = str(self._venue.fees.rate)
        ids = [market_id] if market_id else list(self._venue.markets)
        return web.json_response(
            [{"symbol": m, "makerCommission": rate, "takerCommission": rate} for m in ids]
        )
