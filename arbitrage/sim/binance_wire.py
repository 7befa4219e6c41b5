"""Binance's wire conventions in the simulator: parameters, signed-request checks, error bodies.

Errors are {"code": -NNNN, "msg": ...} with the status Binance uses, so ccxt's binance error map
applies unchanged; 5xx answers carry no JSON so that ccxt raises ExchangeNotAvailable (or
RequestTimeout for 504), the class it raises for a real gateway error.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiohttp import web

from arbitrage.clock import Clock
from arbitrage.sim.faults import Handler, retry_after_header


class BinanceFailure(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        self.status, self.code, self.msg = status, code, msg
        super().__init__(msg)


def d8(value: Decimal) -> str:
    return f"{value:.8f}"


def missing(name: str) -> BinanceFailure:
    return BinanceFailure(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def replying(handler: Handler) -> Handler:
    """Turn a BinanceFailure raised by `handler` into Binance's error body."""

    async def reply(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BinanceFailure as failure:
            return web.json_response({"code": failure.code, "msg": failure.msg}, status=failure.status)

    return reply


class BinanceReplies:
    """How Binance answers faults: JSON codes for limits, a bare gateway page for 5xx."""

    def rate_limited(self, retry_after_s: float) -> web.Response:
        body = {"code": -1003, "msg": "Too many requests; please use the websocket for live updates."}
        return web.json_response(body, status=429, headers=retry_after_header(retry_after_s))

    def banned(self, retry_after_s: float) -> web.Response:
        body = {"code": -1003, "msg": "Way too many requests; IP banned. Please use the websocket."}
        return web.json_response(body, status=418, headers=retry_after_header(retry_after_s))

    def server_error(self, status: int) -> web.Response:
        return web.Response(status=status, text=f"<html><body><h1>{status} Server Error</h1></body></html>")


class BinanceRequests:
    """Reads a request the way Binance does."""

    def __init__(self, markets: set[str], clock: Clock) -> None:
        self._markets = markets
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    async def params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        return params

    async def signed(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """The account's API key and the parameters, after the signed-request checks."""
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise BinanceFailure(401, -2014, "API-key format invalid.")
        params = await self.params(request)
        if not params.get("signature"):
            raise missing("signature")
        if not params.get("timestamp", "").isdigit():
            raise missing("timestamp")
        window = int(params["recvWindow"]) if params.get("recvWindow", "").isdigit() else 5000
        skew = self.now_ms() - int(params["timestamp"])
        if skew < -1000 or skew > window:
            raise BinanceFailure(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return key, params

    def market_id(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise missing("symbol")
        if symbol not in self._markets:
            raise BinanceFailure(400, -1121, "Invalid symbol.")
        return symbol

    def optional_market_id(self, params: dict[str, str]) -> str | None:
        return self.market_id(params) if params.get("symbol") else None

    @staticmethod
    def positive(params: dict[str, str], name: str) -> Decimal:
        raw = params.get(name)
        if not raw:
            raise missing(name)
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = Decimal(0)
        if not value.is_finite() or value <= 0:
            raise BinanceFailure(400, -1100, f"Illegal characters found in parameter '{name}'.")
        return value
