"""ccxt.pro's watch_order_book against the simulator's WebSocket streams, and the stream faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.sim.urls import sim_options, sim_urls
from tests.sim.sim_clients import upbit_client
from tests.waiting import wait_until

VENUES = [("binance", "BTC/USDT"), ("upbit", "BTC/KRW")]


def pro_client(venue: str, base_url: str) -> Any:
    return getattr(ccxtpro, venue)({"urls": sim_urls(venue, base_url), "options": sim_options(venue)})


def run_with(venue: str, base_url: str, body: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        client = pro_client(venue, base_url)
        try:
            await asyncio.wait_for(body(client), timeout=60)  # an upper bound for a loaded machine
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_watch_order_book_receives_updates(sim_server: SimServer, venue: str, symbol: str) -> None:
    seen: list[tuple[Any, ...]] = []

    async def body(client: Any) -> None:
        # Until four different books: a pump that fell behind (a loaded machine) sends the book as it
        # is when it catches up, so two queued changes can arrive as the same book twice.
        while len(set(seen)) < 4:
            book = await client.watch_order_book(symbol)
            assert book["bids"][0][0] < book["asks"][0][0]
            seen.append((book["nonce"], book["timestamp"], book["bids"][0][0], book["asks"][0][0]))

    run_with(venue, sim_server.base_url, body)
    if venue == "upbit":  # whole books, stamped when the book last changed
        stamps = [s[1] for s in seen]
        assert stamps == sorted(stamps)  # never an older book after a newer one
    if venue == "binance":
        nonces = [s[0] for s in seen]
        assert nonces == sorted(nonces)  # applied diff by diff, in update-id order


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_dropped_stream_raises_and_a_new_watch_recovers(
    sim_server: SimServer, sim: SimControl, venue: str, symbol: str
) -> None:
    async def body(client: Any) -> None:
        loop = asyncio.get_running_loop()
        await client.watch_order_book(symbol)
        await loop.run_in_executor(None, sim.pause_streams, True, venue)  # so the next watch stays pending
        await asyncio.sleep(0.3)  # let any update already on the wire arrive first
        pending = asyncio.ensure_future(client.watch_order_book(symbol))
        dropped = await loop.run_in_executor(None, sim.drop_streams, venue)
        assert dropped >= 1
        with pytest.raises(ccxt.NetworkError):
            await pending
        await loop.run_in_executor(None, sim.pause_streams, False, venue)
        book = await client.watch_order_book(symbol)
        book = await client.watch_order_book(symbol)
        assert book["bids"]

    run_with(venue, sim_server.base_url, body)


def test_refused_connections_fail_the_watch_until_the_window_ends(
    sim_server: SimServer, sim: SimControl
) -> None:
    sim.refuse_streams(1.0, venue="upbit")

    async def body(client: Any) -> None:
        with pytest.raises(ccxt.NetworkError):
            await client.watch_order_book("BTC/KRW")
        await asyncio.sleep(1.2)
        assert (await client.watch_order_book("BTC/KRW"))["bids"]

    run_with("upbit", sim_server.base_url, body)


def test_paused_stream_goes_silent_and_resumes(sim_server: SimServer, sim: SimControl) -> None:
    async def body(client: Any) -> None:
        await client.watch_order_book("ETH/KRW")
        await asyncio.get_running_loop().run_in_executor(None, sim.pause_streams, True, "upbit")
        await asyncio.sleep(0.3)  # let any update already on the wire arrive first
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.watch_order_book("ETH/KRW"), timeout=0.8)
        await asyncio.get_running_loop().run_in_executor(None, sim.pause_streams, False, "upbit")
        assert (await client.watch_order_book("ETH/KRW"))["bids"]

    run_with("upbit", sim_server.base_url, body)


def test_frozen_book_keeps_its_old_exchange_timestamp(sim_server: SimServer, sim: SimControl) -> None:
    upbit = upbit_client(sim_server.base_url, "key-frozen")
    sim.freeze("upbit", "KRW-ETH")
    frozen_before = upbit.fetch_order_book("ETH/KRW")
    live_before = upbit.fetch_order_book("BTC/KRW")
    # Until the live market has ticked on: the frozen one must not have.
    wait_until(
        lambda: upbit.fetch_order_book("BTC/KRW")["timestamp"] > live_before["timestamp"], 30, "a market tick"
    )
    frozen_after = upbit.fetch_order_book("ETH/KRW")
    assert frozen_after["timestamp"] == frozen_before["timestamp"]
    assert frozen_after["bids"] == frozen_before["bids"]
    assert sim.book("upbit", "KRW-ETH")["frozen"] is True
