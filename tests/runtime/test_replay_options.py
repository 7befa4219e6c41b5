"""What `arb replay` makes of its options: time bounds, sweep grids, dotted config overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.config import apply_overrides, load_config
from arbitrage.errors import ConfigError
from arbitrage.runtime.replay import ReplayInputError, parse_when
from arbitrage.runtime.replay_sweep import parse_sweep, variant_name, variants

REPO = Path(__file__).resolve().parents[2]
DAY = 1_767_571_200.0  # 2026-01-05 00:00:00 UTC


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2026-01-05", False, DAY),
        ("2026-01-05", True, DAY + 86_400),  # --to a date includes the whole day
        ("2026-01-05T09:30", False, DAY + 9.5 * 3600),  # naive: UTC
        ("2026-01-05T09:30:00+09:00", True, DAY + 0.5 * 3600),
        (None, True, None),
    ],
)
def test_time_bounds(value: str | None, end: bool, expected: float | None) -> None:
    assert parse_when(value, "--from", end) == expected


def test_a_bad_time_names_the_option() -> None:
    with pytest.raises(ReplayInputError, match=r"--to 'yesterday': expected an ISO date"):
        parse_when("yesterday", "--to", True)


def test_sweeps_make_a_grid_of_yaml_values() -> None:
    axes = parse_sweep(["signal.min_spread_pct=0.2, 0.5", "exit.mode=reverse,none"])
    grid = variants(axes)
    assert [variant_name(v) for v in grid] == [
        "signal.min_spread_pct=0.2,exit.mode=reverse",
        "signal.min_spread_pct=0.2,exit.mode=none",
        "signal.min_spread_pct=0.5,exit.mode=reverse",
        "signal.min_spread_pct=0.5,exit.mode=none",
    ]
    assert grid[0]["signal.min_spread_pct"] == 0.2  # a number, as in the config file


@pytest.mark.parametrize("spec", ["signal.min_spread_pct", "=1,2", "a.b="])
def test_a_malformed_sweep_is_refused(spec: str) -> None:
    with pytest.raises(ReplayInputError, match="expected key=v1,v2"):
        parse_sweep([spec])


def test_overrides_are_validated_like_the_file() -> None:
    overrides = {"signal.min_spread_pct": 0.5, "replay.fill_latency_ms": 0}
    config = load_config(REPO / "config" / "live.yml", None, overrides=overrides)
    assert (config.signal.min_spread_pct, config.replay.fill_latency_ms) == (0.5, 0.0)
    with pytest.raises(ConfigError, match=r"signal\.min_spread_pct"):
        load_config(REPO / "config" / "live.yml", None, overrides={"signal.min_spread_pct": "wide"})
    with pytest.raises(ConfigError, match=r"signal\.nonsense"):
        load_config(REPO / "config" / "live.yml", None, overrides={"signal.nonsense": 1})
    with pytest.raises(ConfigError, match="instance is 'arb-1', not a section"):
        apply_overrides({"instance": "arb-1"}, {"instance.name": "x"})
