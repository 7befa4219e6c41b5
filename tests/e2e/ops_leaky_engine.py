"""User engines that misbehave with a secret in hand, for the redaction tests (loaded by dotted path).

A plugin that captured an API secret and puts it in an exception message is the realistic leak:
the bot must still never print or log the value.
"""

from __future__ import annotations

import os

from arbitrage.config import AppConfig
from arbitrage.engines.base import EngineOutput, TickContext

SECRET_VAR = "UPBIT_API_SECRET"


class LeakOnTick:
    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._secret = os.environ.get(SECRET_VAR, "")

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        raise PermissionError(f"venue refused the signature made with secret {self._secret}")


class LeakOnBuild:
    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        raise RuntimeError(f"login failed for secret={os.environ.get(SECRET_VAR, '')}")

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        return EngineOutput()
