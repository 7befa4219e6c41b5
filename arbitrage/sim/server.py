"""The loopback exchange simulator: one aiohttp server on 127.0.0.1 serving both venues.

URL layout on one port (see arbitrage.sim.urls for the ccxt overrides that use it):
/binance/api/v3, /binance/sapi/v1, /binance/stream/ws (Binance spot), /upbit/v1,
/upbit/websocket/v1 (Upbit), /_sim (the control API). `SimServer.start()` runs it on a thread of
its own (tests); `serve()` runs it in the foreground until SIGINT or SIGTERM (`arb sim`).
State lives as long as the process: a bot that restarts finds its orders and balances again.
"""

from __future__ import annotations

import asyncio
import random
import signal
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal

from aiohttp import web

from arbitrage.clock import Clock, SystemClock
from arbitrage.sim.binance_api import BinanceApi
from arbitrage.sim.books import DepthChange
from arbitrage.sim.control_api import ControlApi
from arbitrage.sim.driver import MarketDriver
from arbitrage.sim.exchange import ClientIdScope, SimVenue
from arbitrage.sim.faults import FaultInjector
from arbitrage.sim.market import DEFAULT_ASSETS, LadderShape, binance_market, upbit_market
from arbitrage.sim.matching import FeeModel
from arbitrage.sim.streams import StreamHub
from arbitrage.sim.upbit_api import UpbitApi

Balances = Mapping[str, Mapping[str, float | str | Decimal]]


def default_balances(assets: Mapping[str, float]) -> dict[str, dict[str, Decimal]]:
    """About 100,000 USDT worth of each coin on each venue, plus quote money to buy as much."""
    coins = {a: (Decimal(100_000) / Decimal(repr(p))).quantize(Decimal("0.0001")) for a, p in assets.items()}
    return {
        "binance": {"USDT": Decimal(250_000), **coins},
        "upbit": {"KRW": Decimal(350_000_000), "USDT": Decimal(10_000), **coins},
    }


class SimServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 1,
        assets: Mapping[str, float] | None = None,
        balances: Balances | None = None,
        tick_ms: float = 200.0,
        fx_rate: float = 1380.0,
        premium_pct: float = 0.8,
        usdt_premium_pct: float = 1.0,
        binance_fee_pct: float = 0.1,
        upbit_fee_pct: float = 0.05,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self._want_port = port
        self.port = 0
        self._seed = seed
        self._tick_s = tick_ms / 1000.0
        self._clock = clock or SystemClock()
        coins = dict(assets or DEFAULT_ASSETS)
        start = default_balances(coins)
        for venue, amounts in (balances or {}).items():
            start[venue] = {a: Decimal(str(v)) for a, v in amounts.items()}
        self._rngs = {"binance": random.Random(seed + 1), "upbit": random.Random(seed + 2)}
        self._fault_rng = random.Random(seed + 3)
        self.hub = StreamHub(self._clock)
        self.faults = FaultInjector(self._fault_rng, self._clock)
        self.venues: dict[str, SimVenue] = {
            "binance": SimVenue(
                "binance",
                [binance_market(a, p) for a, p in coins.items()],
                FeeModel(
                    Decimal(repr(binance_fee_pct)) / 100, buy_fee_in_base=True, reserve_fee_on_buy=False
                ),
                start["binance"],
                ClientIdScope.OPEN,
                False,
                self._rngs["binance"],
                self._publish,
            ),
            "upbit": SimVenue(
                "upbit",
                [upbit_market(a) for a in [*coins, "USDT"]],
                FeeModel(Decimal(repr(upbit_fee_pct)) / 100, buy_fee_in_base=False, reserve_fee_on_buy=True),
                start["upbit"],
                ClientIdScope.FOREVER,
                True,
                self._rngs["upbit"],
                self._publish,
            ),
        }
        shapes = {"binance": LadderShape(levels=20), "upbit": LadderShape(levels=30, half_spread_bps=3.0)}
        settings = {"fx_rate": fx_rate, "premium_pct": premium_pct, "usdt_premium_pct": usdt_premium_pct}
        self.driver = MarketDriver(self.venues, shapes, settings, coins, seed, self._clock)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _publish(self, venue: str, change: DepthChange) -> None:
        self.hub.publish(venue, change)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(BinanceApi(self.venues["binance"], self.faults, self.hub, self._clock).routes())
        app.add_routes(UpbitApi(self.venues["upbit"], self.faults, self.hub, self._clock).routes())
        control = ControlApi(self.venues, self.faults, self.hub, self.driver, self.reset, self._seed)
        app.add_routes(control.routes())
        return app

    async def reset(self) -> None:
        """Back to the seeded start; open streams are cut because every book starts a new id sequence."""
        await self.hub.drop(None, abort=True)
        for name, venue in self.venues.items():
            self._rngs[name].seed(self._seed + (1 if name == "binance" else 2))
            venue.reset()
        self._fault_rng.seed(self._seed + 3)
        self.faults.clear()
        self.hub.reset()
        self.driver.reset()

    async def open(self) -> None:
        """Bind and start serving on the running loop."""
        self.driver.refresh()
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._want_port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ticker = asyncio.create_task(self.driver.run(self._tick_s))

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.hub.drop(None, abort=True)
        if self._runner is not None:
            await self._runner.cleanup()
        # requests still hanging on a timeout fault would outlive the loop otherwise
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def start(self) -> int:
        """Serve on a background thread; the bound port."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            stop = self._stop = asyncio.Event()
            try:
                loop.run_until_complete(self.open())
            except BaseException as error:  # reported to the caller of start()
                failed.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(stop.wait())
            finally:
                loop.run_until_complete(self.close())
                loop.close()

        self._thread = threading.Thread(target=run, name="arb-sim", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failed:
            self._thread = None
            raise failed[0]
        return self.port

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._thread = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in the foreground until SIGINT or SIGTERM."""

        async def main() -> None:
            await self.open()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if on_ready is not None:
                on_ready(self.base_url)
            try:
                await stop.wait()
            finally:
                await self.close()

        asyncio.run(main())


def announce(base_url: str) -> None:
    ws = base_url.replace("http", "ws", 1)
    print(
        f"exchange simulator on {base_url}\n"
        f"  binance  REST {base_url}/binance/api/v3   WS {ws}/binance/stream/ws\n"
        f"  upbit    REST {base_url}/upbit/v1          WS {ws}/upbit/websocket/v1\n"
        f"  control  {base_url}/_sim   (Ctrl-C stops)",
        flush=True,
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 1,
    assets: Mapping[str, float] | None = None,
    balances: Balances | None = None,
    tick_ms: float = 200.0,
    on_ready: Callable[[str], None] | None = announce,
) -> None:
    """Run the simulator in the foreground (the `arb sim` command) until SIGINT or SIGTERM."""
    SimServer(host, port, seed=seed, assets=assets, balances=balances, tick_ms=tick_ms).serve_forever(
        on_ready
    )
