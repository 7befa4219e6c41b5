"""A user engine that raises, loaded by dotted path in the engine isolation tests.

`raise_every` (under plugins) picks the ticks it fails on: 1 is every tick, 2 every other one.
"""

from __future__ import annotations

from arbitrage.config import AppConfig
from arbitrage.engines.base import EngineOutput, Note, TickContext
from arbitrage.engines.registry import plugin_settings

ENTRY = "tests.e2e.raising_engine:RaisingEngine"
FAILURE = "raising engine failed on purpose"


class RaisingEngine:
    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self.every = int(plugin_settings(config, name).get("raise_every", 1))

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        if ctx.tick % self.every == 0:
            raise RuntimeError(f"{FAILURE} at tick {ctx.tick}")
        return EngineOutput(metrics={"calm": 1.0}, notes=[Note("INFO", f"calm at tick {ctx.tick}")])
