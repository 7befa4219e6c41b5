"""build_engines: built-ins in config order, user engines by dotted path, readable load errors."""

from __future__ import annotations

import pytest

from arbitrage.engines.execution import ExecutionPlanner
from arbitrage.engines.position import PositionEngine
from arbitrage.engines.registry import build_engines, plugin_settings
from arbitrage.engines.safety import SafetyEngine
from arbitrage.engines.signal import SignalEngine
from arbitrage.engines.stoploss import ExitEngine
from arbitrage.errors import ConfigError
from tests.engines.factories import btc_books, ctx, make_config, opportunity, snapshot, state
from tests.engines.sample_user_engine import WideSpreadCounter

MODULE = "tests.engines.sample_user_engine"


def test_builtins_in_config_order():
    engines = build_engines(make_config())
    assert [(e.name, type(e)) for e in engines] == [
        ("signal", SignalEngine),
        ("safety", SafetyEngine),
        ("execution", ExecutionPlanner),
        ("stoploss", ExitEngine),
        ("position", PositionEngine),
    ]
    reordered = build_engines(make_config(engines=["position", "signal"]))
    assert [e.name for e in reordered] == ["position", "signal"]


@pytest.mark.parametrize("path", [f"{MODULE}:WideSpreadCounter", f"{MODULE}.WideSpreadCounter"])
def test_user_engine_by_dotted_path_reads_its_settings_and_runs(path):
    cfg = make_config(engines=["signal", path], plugins={path: {"threshold_pct": 0.58}})
    _signal, user = build_engines(cfg)
    assert isinstance(user, WideSpreadCounter)
    assert user.name == path and user.threshold_pct == 0.58
    tick = ctx(snapshot(btc_books()), state(cfg), signal=[opportunity(net_spread_pct=0.6), opportunity()])
    out = user.on_tick(tick)
    assert out.metrics == {"wide_spreads": 1.0}
    assert [n.message for n in out.notes] == ["wide spread BTC:binance>upbit 0.60%"]


def test_plugin_settings_default_and_read_only():
    cfg = make_config(plugins={"a.b:C": {"x": 1}})
    assert plugin_settings(cfg, "other.engine") == {}
    settings = plugin_settings(cfg, "a.b:C")
    assert settings == {"x": 1}
    with pytest.raises(TypeError):
        settings["x"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "nowhere.engines:Thing",
            "engines[1]: cannot load 'nowhere.engines:Thing': No module named 'nowhere'",
        ),
        (
            f"{MODULE}:Missing",
            f"engines[1]: cannot load '{MODULE}:Missing': module '{MODULE}' has no attribute",
        ),
        (
            f"{MODULE}.Missing",
            f"engines[1]: cannot load '{MODULE}.Missing': module '{MODULE}' has no attribute",
        ),
        (f"{MODULE}:NotAnEngine", f"engines[1]: cannot load '{MODULE}:NotAnEngine': it has no `name`"),
        (
            f"{MODULE}:Exploding",
            f"engines[1]: cannot load '{MODULE}:Exploding': ValueError: threshold_pct missing",
        ),
        ("mybot.", "engines[1]: cannot load 'mybot.': expected 'package.module.Class'"),
    ],
)
def test_load_failures_name_the_entry(entry, message):
    cfg = make_config(engines=["signal", entry])
    with pytest.raises(ConfigError) as err:
        build_engines(cfg)
    assert str(err.value).startswith(message)
