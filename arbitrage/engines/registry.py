"""Builds the engine chain from config.engines: built-in names and user engines by dotted path.

A user engine is any class with a `name` attribute and `on_tick(ctx) -> EngineOutput` (the
Engine protocol of engines/base.py), named in config.engines as "package.module.Class" or
"package.module:Class". It is constructed as `Class(name, config)`, where `name` is that entry
exactly as written; its own settings live under `plugins` in the config, keyed by the same
entry, and it reads them with `plugin_settings(config, name)`:

    engines: [signal, safety, "mybot.engines:SpreadLogger", execution]
    plugins:
      "mybot.engines:SpreadLogger": {every_n_ticks: 10}

    class SpreadLogger:
        def __init__(self, name: str, config: AppConfig) -> None:
            self.name = name
            self.every = int(plugin_settings(config, name).get("every_n_ticks", 1))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from arbitrage.config import AppConfig
from arbitrage.engines.base import Engine
from arbitrage.engines.execution import ExecutionPlanner
from arbitrage.engines.position import PositionEngine
from arbitrage.engines.safety import SafetyEngine
from arbitrage.engines.signal import SignalEngine
from arbitrage.engines.stoploss import ExitEngine
from arbitrage.errors import ConfigError

EngineFactory = Callable[[str, AppConfig], Engine]

BUILTIN: Mapping[str, EngineFactory] = MappingProxyType(
    {
        "signal": SignalEngine,
        "safety": SafetyEngine,
        "execution": ExecutionPlanner,
        "stoploss": ExitEngine,
        "position": PositionEngine,
    }
)


def plugin_settings(config: AppConfig, name: str) -> Mapping[str, Any]:
    """A user engine's own settings: config.plugins[name], read-only, empty when absent."""
    return MappingProxyType(dict(config.plugins.get(name, {})))


def load_factory(path: str) -> EngineFactory:
    """The class named by "pkg.mod.Class" or "pkg.mod:Class"; ImportError/AttributeError if absent."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImportError("expected 'package.module.Class' or 'package.module:Class'")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{attr} is not a class")
    factory: EngineFactory = target
    return factory


def build_engines(config: AppConfig) -> list[Engine]:
    """One engine per config.engines entry, in that order; ConfigError naming the entry otherwise."""
    engines: list[Engine] = []
    for i, entry in enumerate(config.engines):
        builtin = BUILTIN.get(entry)
        engines.append(builtin(entry, config) if builtin is not None else _user_engine(i, entry, config))
    return engines


def _user_engine(i: int, entry: str, config: AppConfig) -> Engine:
    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"engines[{i}]: cannot load {entry!r}: {reason}")

    try:
        factory = load_factory(entry)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise refuse(_reason(err)) from None
    try:
        engine = factory(entry, config)
    except Exception as err:  # a user's constructor may fail any way; it is still a config problem
        raise refuse(_reason(err)) from err
    if not isinstance(getattr(engine, "name", None), str) or not callable(getattr(engine, "on_tick", None)):
        raise refuse("it has no `name` string and `on_tick(ctx)` method")
    return engine


def _reason(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}" if not isinstance(err, ImportError | AttributeError) else text
