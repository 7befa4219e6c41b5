"""Moves the simulated market on a timer: one price-model step, fresh books, resting orders matched."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from arbitrage.clock import Clock
from arbitrage.sim.exchange import SimVenue
from arbitrage.sim.market import LadderShape, PriceModel, build_ladder


class MarketDriver:
    def __init__(
        self,
        venues: Mapping[str, SimVenue],
        shapes: Mapping[str, LadderShape],
        model_settings: Mapping[str, float],
        assets: Mapping[str, float],
        seed: int,
        clock: Clock,
    ) -> None:
        self._venues = venues
        self._shapes = shapes
        self._settings = dict(model_settings)
        self._assets = dict(assets)
        self._seed = seed
        self._clock = clock
        self._rng = random.Random(seed)
        self.model = PriceModel(random.Random(seed), self._assets, **self._settings)

    def reset(self) -> None:
        """Back to the seeded start: same prices, same sequence of moves."""
        self._rng.seed(self._seed)
        self.model = PriceModel(random.Random(self._seed), self._assets, **self._settings)
        self.refresh()

    def now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def step(self) -> None:
        self.model.step()
        self.refresh()

    def refresh(self) -> None:
        """Rebuild every book that is not frozen from the model, then match resting orders."""
        now = self.now_ms()
        usdt_krw = self.model.usdt_krw()
        for name, venue in self._venues.items():
            shape = self._shapes[name]
            for book in venue.books.values():
                if book.frozen:
                    continue
                scale = 1.0 if book.market.quote == "USDT" else usdt_krw
                bids, asks = build_ladder(book.market, self.model.mid(book.market), shape, scale, self._rng)
                book.replace(bids, asks, now)
            venue.sweep(now)

    async def run(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            self.step()
