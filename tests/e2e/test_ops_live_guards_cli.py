"""Live guards through the command line (see docs/ARCHITECTURE.md, Live guards): every
combination of the static guards.

The fifteen refusing combinations run in-process through click's CliRunner (they exit before
logging or venues are set up); the one where every static guard holds, and one refusing
combination, run the real command as a subprocess.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from arbitrage.cli import main
from arbitrage.sim.urls import sim_options, sim_urls
from tests.e2e.ops_harness import free_port, run_clean
from tests.e2e.runner import write_config

GUARDS = ("LIVE_TRADING", "CONFIRM_FILE", "API_KEYS", "SAFETY_CONFIG")
KEYS = {
    "UPBIT_API_KEY": "upbit-key-0123456789",
    "UPBIT_API_SECRET": "upbit-secret-0123456789",
    "BINANCE_API_KEY": "binance-key-0123456789",
    "BINANCE_API_SECRET": "binance-secret-0123456789",
}
INCOHERENT_SAFETY = {"signal": {"max_notional": 20_000_000.0}}  # above safety.max_position_notional
COMBINATIONS = [c for c in itertools.product([False, True], repeat=4) if any(c)]


def _case_id(fails: tuple[bool, ...]) -> str:
    return "fail-" + "+".join(g for g, f in zip(GUARDS, fails, strict=True) if f)


def _setup(
    workdir: Path, fails: tuple[bool, bool, bool, bool], **extra: Any
) -> tuple[Path, dict[str, str | None]]:
    live_fails, confirm_fails, keys_fail, safety_fails = fails
    overrides: dict[str, Any] = {"mode": {"current": "live"}, **extra}
    if safety_fails:
        overrides.update(INCOHERENT_SAFETY)
    config = write_config(workdir, overrides)
    if not confirm_fails:
        (workdir / ".live_trading_ok").write_text("I accept the risk\n", encoding="utf-8")
    env: dict[str, str | None] = {"LIVE_TRADING": None if live_fails else "1", "ARB_MODE": None, **KEYS}
    if keys_fail:
        env["BINANCE_API_SECRET"] = None
    return config, env


def _failed_guards(stderr: str) -> set[str]:
    lines = stderr.split("failed guards:", 1)[1].splitlines() if "failed guards:" in stderr else []
    return {line.strip().removeprefix("- ").split(":", 1)[0] for line in lines if line.strip()}


@pytest.mark.parametrize("fails", COMBINATIONS, ids=[_case_id(c) for c in COMBINATIONS])
def test_live_refused_with_exit_4_naming_exactly_the_failed_guards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: tuple[bool, bool, bool, bool]
) -> None:
    config, env = _setup(tmp_path, fails)
    monkeypatch.chdir(tmp_path)  # the confirm file is relative to the working directory
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--config",
            str(config),
            "--mode",
            "live",
            "--once",
            "--log-dir",
            "logs",
            "--data-dir",
            "data",
        ],
        env=env,
    )
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("live trading refused; failed guards:")
    expected = {g for g, failed in zip(GUARDS, fails, strict=True) if failed}
    assert _failed_guards(result.stderr) == expected
    assert result.stdout == ""
    assert not (tmp_path / "logs").exists() and not (tmp_path / "data").exists()  # refused before anything


def test_live_refused_through_the_real_command(tmp_path: Path) -> None:
    config, env = _setup(tmp_path, (True, True, True, True))
    run = run_clean(
        tmp_path, "--mode", "live", "--once", config=config, env={k: v for k, v in env.items() if v}
    )
    assert run.code == 4, run.stderr
    assert _failed_guards(run.stderr) == set(GUARDS)
    assert "BINANCE_API_SECRET" in run.stderr and "signal.max_notional" in run.stderr
    assert "Traceback" not in run.stderr


def test_every_static_guard_holding_is_not_refused_for_a_static_reason(tmp_path: Path) -> None:
    # Venues point at a loopback port where nothing listens: whatever the ccxt venues do with it,
    # nothing leaves this machine. The run then fails on the venues or the dry run, never on a guard.
    closed = f"http://127.0.0.1:{free_port()}"
    venues = {
        name: {"urls": sim_urls(name, closed), "options": sim_options(name), "timeout_ms": 1000}
        for name in ("upbit", "binance")
    }
    config, env = _setup(tmp_path, (False, False, False, False), venues=venues)
    run = run_clean(
        tmp_path,
        "--mode",
        "live",
        "--once",
        config=config,
        env={k: v for k, v in env.items() if v},
        timeout=120,
    )
    static = _failed_guards(run.stderr) & set(GUARDS)
    assert not static, run.stderr
    assert run.code != 0, "it cannot have traded live against a closed port"
    if run.code == 4:  # refused by the dry run: only DRY_RUN reasons
        assert _failed_guards(run.stderr) <= {"DRY_RUN"}, run.stderr
