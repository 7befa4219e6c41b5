"""The simulator's live WebSocket connections: book-change fan-out and the stream faults.

Each connection has a bounded queue; a client that cannot keep up is cut off, as the real venues
do. Faults: drop every connection now (a close frame, or an abrupt abort), refuse new connections
for a while (the upgrade gets HTTP 503), pause a venue's streams (connections stay open but go
silent, the stale-stream case; Binance clients see a gap in update ids when it resumes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from arbitrage.clock import Clock
from arbitrage.sim.books import DepthChange


@dataclass(frozen=True, slots=True)
class SnapshotDue:
    """Tell a connection to send a full book (Upbit's first message after a subscription)."""

    market_id: str


StreamItem = DepthChange | SnapshotDue


@dataclass(eq=False, slots=True)
class StreamConn:
    venue: str
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[StreamItem]
    markets: set[str] = field(default_factory=set)


class StreamHub:
    def __init__(self, clock: Clock, queue_size: int = 5000) -> None:
        self._clock = clock
        self._queue_size = queue_size
        self._conns: dict[str, set[StreamConn]] = {}
        self._refuse_until: dict[str, float] = {}
        self.paused: set[str] = set()

    def admits(self, venue: str) -> bool:
        return self._refuse_until.get(venue, 0.0) <= self._clock.monotonic()

    def refuse(self, venue: str, seconds: float) -> None:
        self._refuse_until[venue] = self._clock.monotonic() + seconds

    def open(self, venue: str, ws: web.WebSocketResponse, request: web.Request) -> StreamConn:
        conn = StreamConn(venue, ws, request, asyncio.Queue(self._queue_size))
        self._conns.setdefault(venue, set()).add(conn)
        return conn

    def close(self, conn: StreamConn) -> None:
        self._conns.get(conn.venue, set()).discard(conn)
        conn.markets.clear()

    def count(self, venue: str) -> int:
        return len(self._conns.get(venue, ()))

    def pause(self, venue: str, paused: bool) -> None:
        """Silence (or resume) a venue's streams; what was queued and not yet sent is lost."""
        if not paused:
            self.paused.discard(venue)
            return
        self.paused.add(venue)
        for conn in self._conns.get(venue, ()):
            while not conn.queue.empty():
                conn.queue.get_nowait()

    def publish(self, venue: str, change: DepthChange) -> None:
        if venue in self.paused:
            return
        for conn in list(self._conns.get(venue, ())):
            if change.market_id in conn.markets:
                self.offer(conn, change)

    def offer(self, conn: StreamConn, item: StreamItem) -> None:
        try:
            conn.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._abort(conn)

    async def drop(self, venue: str | None, abort: bool) -> int:
        """Cut every connection of `venue` (all venues if None); how many were cut."""
        conns = [c for v, cs in self._conns.items() if venue in (None, v) for c in cs]
        for conn in conns:
            self.close(conn)
            if abort:
                self._abort(conn)
            else:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"simulator dropped the stream")
        return len(conns)

    def _abort(self, conn: StreamConn) -> None:
        self.close(conn)
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    def reset(self) -> None:
        self._refuse_until.clear()
        self.paused.clear()
