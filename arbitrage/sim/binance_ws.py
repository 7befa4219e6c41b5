"""Binance market streams in the simulator: `<symbol>@depth[@100ms]` diff-depth events.

ccxt.pro connects to /binance/stream/ws/<n>, sends {"method": "SUBSCRIBE", "params": [...], "id"},
gets {"result": null, "id"}, then fetches the REST snapshot and applies the depthUpdate events
whose U/u follow its lastUpdateId. The server pings every 20 s like Binance; ccxt answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage.sim.binance_wire import d8
from arbitrage.sim.books import DepthChange
from arbitrage.sim.exchange import SimVenue
from arbitrage.sim.streams import StreamConn, StreamHub

PING_EVERY_S = 20.0


def depth_event(change: DepthChange) -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": change.ts_ms,
        "s": change.market_id,
        "U": change.first_id,
        "u": change.last_id,
        "b": [[d8(p), d8(q)] for p, q in change.bids],
        "a": [[d8(p), d8(q)] for p, q in change.asks],
    }


class BinanceStreams:
    def __init__(self, venue: SimVenue, hub: StreamHub) -> None:
        self._venue = venue
        self._hub = hub
        self._by_lower = {m.lower(): m for m in venue.markets}

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(f"{prefix}/stream/ws", self.connect),
            web.get(f"{prefix}/stream/ws/{{tail:.*}}", self.connect),
        ]

    async def connect(self, request: web.Request) -> web.StreamResponse:
        if not self._hub.admits("binance"):
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(heartbeat=PING_EVERY_S)
        await ws.prepare(request)
        conn = self._hub.open("binance", ws, request)
        # a raw stream URL (/ws/btcusdt@depth) subscribes on connect, as Binance's does
        self._subscribe(conn, [s for s in request.match_info.get("tail", "").split("/") if "@" in s])
        pump = asyncio.create_task(self._pump(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._command(conn, msg.data)
        finally:
            pump.cancel()
            self._hub.close(conn)
        return ws

    async def _pump(self, conn: StreamConn) -> None:
        while True:
            item = await conn.queue.get()
            if isinstance(item, DepthChange) and not conn.ws.closed:
                await conn.ws.send_str(json.dumps(depth_event(item)))

    def _market_of(self, stream: str) -> str | None:
        parts = stream.split("@")
        if len(parts) < 2 or parts[1] != "depth" or parts[2:] not in ([], ["100ms"], ["1000ms"]):
            return None
        return self._by_lower.get(parts[0])

    def _subscribe(self, conn: StreamConn, streams: list[str]) -> list[str]:
        """Subscribe what is known; the streams that are not."""
        unknown = []
        for stream in streams:
            market_id = self._market_of(stream)
            if market_id is None:
                unknown.append(stream)
            else:
                conn.markets.add(market_id)
        return unknown

    async def _command(self, conn: StreamConn, text: str) -> None:
        try:
            command = json.loads(text)
            method, params, request_id = command.get("method"), command.get("params", []), command.get("id")
        except (ValueError, AttributeError):
            await conn.ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return
        if method == "SUBSCRIBE":
            unknown = self._subscribe(conn, list(params))
            if unknown:
                reply: dict[str, Any] = {
                    "error": {"code": 2, "msg": f"Invalid request: unknown stream {unknown}"}
                }
            else:
                reply = {"result": None}
        elif method == "UNSUBSCRIBE":
            for stream in params:
                market_id = self._market_of(stream)
                if market_id is not None:
                    conn.markets.discard(market_id)
            reply = {"result": None}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": [f"{m.lower()}@depth@100ms" for m in sorted(conn.markets)]}
        else:
            reply = {"error": {"code": 1, "msg": f"Invalid request: unknown method {method!r}"}}
        reply["id"] = request_id
        await conn.ws.send_str(json.dumps(reply))
