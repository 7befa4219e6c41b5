from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from arbitrage.config import AppConfig, parse_config
from arbitrage.errors import ConfigError
from arbitrage.ops.live_guards import DryRunGate, check_live_guards, safety_problems

GUARDS = ("LIVE_TRADING", "CONFIRM_FILE", "API_KEYS", "SAFETY_CONFIG")
KEYS = {
    "UPBIT_API_KEY": "uk-1234",
    "UPBIT_API_SECRET": "us-1234",
    "BINANCE_API_KEY": "bk-1234",
    "BINANCE_API_SECRET": "bs-1234",
}


def make_config(**sections: Any) -> AppConfig:
    data: dict[str, Any] = {
        "mode": {"current": "live"},
        "venues": {
            "upbit": {
                "exchange": "upbit",
                "quote": "KRW",
                "api_key_env": "UPBIT_API_KEY",
                "api_secret_env": "UPBIT_API_SECRET",
            },
            "binance": {
                "exchange": "binance",
                "quote": "USDT",
                "api_key_env": "BINANCE_API_KEY",
                "api_secret_env": "BINANCE_API_SECRET",
            },
        },
    }
    data.update(sections)
    return parse_config(data)


def names(lines: list[str]) -> set[str]:
    return {line.split(":", 1)[0] for line in lines}


@pytest.mark.parametrize("fails", list(itertools.product([False, True], repeat=4)))
def test_every_combination_of_static_guards(tmp_path: Path, fails: tuple[bool, bool, bool, bool]) -> None:
    live_fails, confirm_fails, keys_fail, safety_fails = fails
    env = dict(KEYS)
    if not live_fails:
        env["LIVE_TRADING"] = "1"
    if keys_fail:
        del env["UPBIT_API_KEY"]
    if not confirm_fails:
        (tmp_path / ".live_trading_ok").write_text("yes\n")
    config = make_config(signal={"max_notional": 20_000_000.0}) if safety_fails else make_config()

    lines = check_live_guards(config, env, tmp_path)

    expected = {name for name, failed in zip(GUARDS, fails, strict=True) if failed}
    assert names(lines) == expected
    assert all(line.split(":", 1)[1].strip() for line in lines)  # each says what to do


@pytest.mark.parametrize(
    ("value", "found"),
    [(None, "found it unset"), ("0", "found '0'"), ("true", "found 'true'"), ("", "found ''")],
)
def test_live_trading_must_be_exactly_one(tmp_path: Path, value: str | None, found: str) -> None:
    env = dict(KEYS) if value is None else {**KEYS, "LIVE_TRADING": value}
    (tmp_path / ".live_trading_ok").touch()
    assert check_live_guards(make_config(), env, tmp_path) == [
        f"LIVE_TRADING: set LIVE_TRADING=1 in the environment ({found})"
    ]


def test_confirm_file_relative_to_cwd_or_absolute(tmp_path: Path) -> None:
    env = {**KEYS, "LIVE_TRADING": "1"}
    assert check_live_guards(make_config(), env, tmp_path) == [
        f"CONFIRM_FILE: create {tmp_path / '.live_trading_ok'} to confirm live trading"
    ]
    elsewhere = tmp_path / "conf" / "go-live"
    config = make_config(live_guards={"confirm_file": str(elsewhere)})
    assert names(check_live_guards(config, env, tmp_path)) == {"CONFIRM_FILE"}
    elsewhere.parent.mkdir()
    elsewhere.touch()
    assert check_live_guards(config, env, tmp_path / "unrelated") == []
    # a directory by that name does not count
    (tmp_path / ".live_trading_ok").mkdir()
    assert names(check_live_guards(make_config(), env, tmp_path)) == {"CONFIRM_FILE"}


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (["UPBIT_API_KEY"], ["API_KEYS: venue upbit has no API key (set UPBIT_API_KEY)"]),
        (["UPBIT_API_SECRET"], ["API_KEYS: venue upbit has no API secret (set UPBIT_API_SECRET)"]),
        (
            ["BINANCE_API_KEY", "BINANCE_API_SECRET"],
            [
                "API_KEYS: venue binance has no API key nor secret "
                "(set BINANCE_API_KEY; set BINANCE_API_SECRET)"
            ],
        ),
        (
            ["UPBIT_API_KEY", "BINANCE_API_SECRET"],
            [
                "API_KEYS: venue upbit has no API key (set UPBIT_API_KEY)",
                "API_KEYS: venue binance has no API secret (set BINANCE_API_SECRET)",
            ],
        ),
    ],
)
def test_api_keys_one_line_per_venue(tmp_path: Path, drop: list[str], expected: list[str]) -> None:
    (tmp_path / ".live_trading_ok").touch()
    env = {k: v for k, v in KEYS.items() if k not in drop} | {"LIVE_TRADING": "1"}
    assert check_live_guards(make_config(), env, tmp_path) == expected


def test_blank_key_counts_as_missing_and_unnamed_variables_are_explained(tmp_path: Path) -> None:
    (tmp_path / ".live_trading_ok").touch()
    env = {**KEYS, "LIVE_TRADING": "1", "UPBIT_API_KEY": "   "}
    config = make_config(
        venues={
            "upbit": {
                "exchange": "upbit",
                "quote": "KRW",
                "api_key_env": "UPBIT_API_KEY",
                "api_secret_env": "UPBIT_API_SECRET",
            },
            "binance": {"exchange": "binance", "quote": "USDT"},
        }
    )
    assert check_live_guards(config, env, tmp_path) == [
        "API_KEYS: venue upbit has no API key (set UPBIT_API_KEY)",
        "API_KEYS: venue binance has no API key nor secret (name its variable in venues.binance.api_key_env; "
        "name its variable in venues.binance.api_secret_env)",
    ]


def test_mock_venues_need_no_keys(tmp_path: Path) -> None:
    (tmp_path / ".live_trading_ok").touch()
    config = make_config(
        venues={
            "a": {"exchange": "mock", "quote": "KRW"},
            "b": {"exchange": "mock", "quote": "USDT"},
        },
        fx={"source": "fixed"},
    )
    assert check_live_guards(config, {"LIVE_TRADING": "1"}, tmp_path) == []


@pytest.mark.parametrize(
    ("sections", "fragment"),
    [
        (
            {"signal": {"max_notional": 20_000_000.0}},
            "signal.max_notional (2e+07) > safety.max_position_notional",
        ),
        (
            {"safety": {"max_position_notional": 40_000_000.0}, "signal": {"max_notional": 1_000_000.0}},
            "safety.max_position_notional (4e+07) > safety.max_exposure (2e+07)",
        ),
        (
            {"safety": {"daily_loss_limit": 30_000_000.0}},
            "safety.daily_loss_limit (3e+07) >= safety.max_exposure",
        ),
    ],
)
def test_safety_config_incoherences_are_named(sections: dict[str, Any], fragment: str) -> None:
    problems = safety_problems(make_config(**sections))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"signal": {"min_notional": 6_000_000.0}}, "signal.min_notional"),
        ({"safety": {"max_exposure": 28_000_000.0}}, "safety.max_exposure"),
        ({"signal": {"min_spread_pct": 0.0}}, "signal.min_spread_pct"),
        ({"signal": {"min_spread_pct": 6.0}}, "signal.min_spread_pct"),
        ({"safety": {"max_exposure": float("inf")}}, "safety.max_exposure"),
        ({"safety": {"daily_loss_limit": float("inf")}}, "safety.daily_loss_limit"),
    ],
)
def test_limits_that_lose_money_in_any_mode_are_config_errors(sections: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(**sections)
    assert [p.split(":")[0] for p in err.value.problems] == [key]


def test_default_safety_config_is_coherent() -> None:
    assert safety_problems(make_config()) == []


def test_safety_lines_are_prefixed_one_per_problem(tmp_path: Path) -> None:
    (tmp_path / ".live_trading_ok").touch()
    config = make_config(signal={"max_notional": 20_000_000.0}, safety={"daily_loss_limit": 30_000_000.0})
    lines = check_live_guards(config, {**KEYS, "LIVE_TRADING": "1"}, tmp_path)
    assert len(lines) == 2
    assert all(line.startswith("SAFETY_CONFIG: ") for line in lines)


@pytest.mark.parametrize(
    ("cycles", "ticks", "passed", "reasons"),
    [
        (0, [], True, []),
        (3, [[], []], False, []),
        (3, [[], [], []], True, []),
        (3, [[], ["STALE_DATA upbit BTC/KRW 9000ms"], [], []], False, ["STALE_DATA upbit BTC/KRW 9000ms"]),
        (3, [["a"], [], [], []], True, ["a"]),
        (2, [["a", "b"], ["b"], ["c"], [], []], True, ["a", "b", "c"]),
        (1, [[], ["late problem"]], True, []),  # once passed it stays passed
    ],
)
def test_dry_run_gate(cycles: int, ticks: list[list[str]], passed: bool, reasons: list[str]) -> None:
    gate = DryRunGate(cycles)
    for problems in ticks:
        gate.observe(problems)
    assert gate.passed is passed
    assert gate.failed_reasons == reasons


def test_dry_run_gate_counts_and_rejects_negative_cycles() -> None:
    gate = DryRunGate(2)
    gate.observe(["balances unreadable on binance"])
    gate.observe([])
    assert (gate.observed, gate.clean_streak, gate.passed) == (2, 1, False)
    with pytest.raises(ValueError):
        DryRunGate(-1)
