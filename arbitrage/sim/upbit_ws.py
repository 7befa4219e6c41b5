"""Upbit's public WebSocket in the simulator: `orderbook` snapshots for the subscribed codes.

A client sends a JSON array ([{"ticket": ...}, {"type": "orderbook", "codes": [...]}, ...]);
each message replaces the connection's subscriptions. Upbit sends whole books (15 units, or the
".N" suffix of a code): a SNAPSHOT right after subscribing, then a REALTIME book on each change,
as binary frames. A text "PING" gets {"status": "UP"}.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage.clock import Clock
from arbitrage.sim.books import DepthChange, SimBook
from arbitrage.sim.exchange import SimVenue
from arbitrage.sim.streams import SnapshotDue, StreamConn, StreamHub

DEFAULT_UNITS = 15


def orderbook_message(book: SimBook, units: int, stream_type: str = "SNAPSHOT") -> dict[str, Any]:
    bids, asks = book.top(units)
    rows = [
        {
            "ask_price": float(asks[i][0]) if i < len(asks) else None,
            "bid_price": float(bids[i][0]) if i < len(bids) else None,
            "ask_size": float(asks[i][1]) if i < len(asks) else None,
            "bid_size": float(bids[i][1]) if i < len(bids) else None,
        }
        for i in range(max(len(bids), len(asks)))
    ]
    return {
        "type": "orderbook",
        "code": book.market.market_id,
        "market": book.market.market_id,
        "timestamp": book.changed_ms,  # when the book last changed: a frozen book looks stale
        "total_ask_size": float(sum(q for _, q in asks)),
        "total_bid_size": float(sum(q for _, q in bids)),
        "orderbook_units": rows,
        "stream_type": stream_type,
        "level": 0,
    }


class UpbitStreams:
    def __init__(self, venue: SimVenue, hub: StreamHub, clock: Clock) -> None:
        self._venue = venue
        self._hub = hub
        self._clock = clock
        self._units: dict[StreamConn, dict[str, int]] = {}

    async def connect(self, request: web.Request) -> web.StreamResponse:
        if not self._hub.admits("upbit"):
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = self._hub.open("upbit", ws, request)
        self._units[conn] = {}
        pump = asyncio.create_task(self._pump(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data.strip() == "PING":
                    await ws.send_str(json.dumps({"status": "UP"}))
                elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._subscribe(conn, msg.data)
        finally:
            pump.cancel()
            self._units.pop(conn, None)
            self._hub.close(conn)
        return ws

    async def _pump(self, conn: StreamConn) -> None:
        while True:
            item = await conn.queue.get()
            units = self._units.get(conn, {})
            if conn.ws.closed or item.market_id not in units:
                continue
            book = self._venue.books[item.market_id]
            stream_type = "REALTIME" if isinstance(item, DepthChange) else "SNAPSHOT"
            message = orderbook_message(book, units[item.market_id], stream_type)
            await conn.ws.send_bytes(json.dumps(message).encode())

    async def _subscribe(self, conn: StreamConn, data: str | bytes) -> None:
        try:
            request = json.loads(data)
            wanted = [f for f in request if isinstance(f, dict) and f.get("type") == "orderbook"]
        except (ValueError, TypeError):
            await conn.ws.send_bytes(
                json.dumps({"error": {"name": "WRONG_FORMAT", "message": "bad request"}}).encode()
            )
            return
        units: dict[str, int] = {}
        realtime: set[str] = set()
        snapshots: list[str] = []
        unknown: list[str] = []
        for field in wanted:
            for raw in field.get("codes", []):
                code, _, count = str(raw).upper().partition(".")
                if code not in self._venue.markets:
                    unknown.append(str(raw))
                    continue
                units[code] = int(count) if count.isdigit() and 0 < int(count) <= 30 else DEFAULT_UNITS
                if not field.get("is_only_snapshot") and not field.get("isOnlySnapshot"):
                    realtime.add(code)
                if not field.get("is_only_realtime") and not field.get("isOnlyRealtime"):
                    snapshots.append(code)
        self._units[conn] = units
        conn.markets.clear()
        conn.markets.update(realtime)
        for code in snapshots:
            self._hub.offer(conn, SnapshotDue(code))
        if unknown:
            error = {"error": {"name": "INVALID_PARAM", "message": f"unknown codes {unknown}"}}
            await conn.ws.send_bytes(json.dumps(error).encode())
