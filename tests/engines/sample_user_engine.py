"""An example user engine, loaded by dotted path in the registry tests.

Counts the signal engine's opportunities above its own threshold, read from config.plugins.
"""

from __future__ import annotations

from arbitrage.config import AppConfig
from arbitrage.domain.opportunity import Opportunity
from arbitrage.engines.base import EngineOutput, Note, TickContext
from arbitrage.engines.registry import plugin_settings


class WideSpreadCounter:
    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self.threshold_pct = float(plugin_settings(config, name).get("threshold_pct", 1.0))

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        wide = [
            o
            for o in ctx.decided("signal")
            if isinstance(o, Opportunity) and o.net_spread_pct >= self.threshold_pct
        ]
        notes = [Note("INFO", f"wide spread {o.key} {o.net_spread_pct:.2f}%") for o in wide]
        return EngineOutput(metrics={"wide_spreads": float(len(wide))}, notes=notes)


class NotAnEngine:
    def __init__(self, name: str, config: AppConfig) -> None:
        self.label = name


class Exploding:
    def __init__(self, name: str, config: AppConfig) -> None:
        raise ValueError("threshold_pct missing")
