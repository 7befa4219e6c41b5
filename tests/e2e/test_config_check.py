"""`python -m arbitrage config check`: the effective config, secrets redacted, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from arbitrage.cli import main
from arbitrage.config import parse_config
from tests.e2e.runner import REPO, base_config, write_config

SECRETS = {
    "UPBIT_API_KEY": "upbit-key-Zq81xX",
    "UPBIT_API_SECRET": "upbit-secret-Pw77yY",
    "BINANCE_API_KEY": "binance-key-Lm42wW",
    "TELEGRAM_BOT_TOKEN": "123456:tg-token-Hh90vV",
    "TELEGRAM_CHAT_ID": "chat-31337",
}


def config_check(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "UPBIT_", "BINANCE_", "TELEGRAM_"))
    }
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "arbitrage", "config", "check", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def effective(stdout: str) -> dict[str, Any]:
    data = yaml.safe_load(stdout)
    assert isinstance(data, dict)
    return data


def test_default_config_is_valid_and_printed(tmp_path: Path) -> None:
    proc = config_check(tmp_path, "--config", str(REPO / "config" / "live.yml"))
    assert proc.returncode == 0, proc.stderr
    data = effective(proc.stdout)
    assert data["symbols"] == ["BTC", "ETH"]
    assert set(data["venues"]) == {"upbit", "binance"}
    assert proc.stdout.rstrip().splitlines()[-1].endswith("valid (mock mode, 2 venues, 2 assets)")
    # Effective: defaults the file leaves out are shown too.
    assert data["execution"]["leg_timeout_s"] == 10.0
    assert data["storage"]["synchronous"] == "FULL"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_printed_config_validates_to_the_same_config(tmp_path: Path) -> None:
    proc = config_check(tmp_path, "--config", str(REPO / "config" / "live.yml"))
    data = effective(proc.stdout)
    data.pop("secrets_from_environment")
    assert parse_config(data) == parse_config(base_config())


def test_secret_values_never_appear(tmp_path: Path) -> None:
    proc = config_check(tmp_path, "--config", str(REPO / "config" / "live.yml"), env=SECRETS)
    assert proc.returncode == 0, proc.stderr
    for value in SECRETS.values():
        assert value not in proc.stdout
        assert value not in proc.stderr
    secrets = effective(proc.stdout)["secrets_from_environment"]
    assert secrets == {
        "UPBIT_API_KEY": "***set***",
        "UPBIT_API_SECRET": "***set***",
        "BINANCE_API_KEY": "***set***",
        "BINANCE_API_SECRET": "(not set)",
        "TELEGRAM_BOT_TOKEN": "***set***",
        "TELEGRAM_CHAT_ID": "***set***",
    }


def test_custom_secret_variable_names_are_redacted_too(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"venues": {"upbit": {"api_key_env": "MY_UPBIT_KEY"}}, "alerts": {"telegram_token_env": "MY_TG"}},
    )
    proc = config_check(
        tmp_path, "--config", str(path), env={"MY_UPBIT_KEY": "mine-Qq11", "MY_TG": "tg-Rr22"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "mine-Qq11" not in proc.stdout and "tg-Rr22" not in proc.stdout
    secrets = effective(proc.stdout)["secrets_from_environment"]
    assert secrets["MY_UPBIT_KEY"] == "***set***"
    assert secrets["MY_TG"] == "***set***"


def test_mode_option_and_environment_override(tmp_path: Path) -> None:
    live = str(REPO / "config" / "live.yml")
    by_option = config_check(tmp_path, "--config", live, "--mode", "paper")
    by_env = config_check(tmp_path, "--config", live, env={"ARB_MODE": "paper"})
    for proc in (by_option, by_env):
        assert proc.returncode == 0, proc.stderr
        assert effective(proc.stdout)["mode"] == {"current": "paper"}
        assert "valid (paper mode" in proc.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"execution": {"max_unhedged_qty": "lots"}, "fx": {"venue": "kraken"}})
    proc = config_check(tmp_path, "--config", str(path))
    assert proc.returncode == 2
    assert "execution.max_unhedged_qty" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cross_reference_problem_names_its_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"fx": {"venue": "kraken"}})
    proc = config_check(tmp_path, "--config", str(path))
    assert proc.returncode == 2
    assert "fx.venue: expected one of the venues (upbit, binance), found 'kraken'" in proc.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    proc = config_check(tmp_path, "--config", "nowhere.yml")
    assert proc.returncode == 2
    assert "nowhere.yml does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        # A negative exit spread is a loss budget on the reverse trade, not a mistake.
        ({"exit": {"min_spread_pct": -2}}, ("exit", "min_spread_pct"), -2.0),
        # YAML ints where floats are expected stay accepted (and are shown as floats).
        ({"signal": {"max_notional": 4000000}}, ("signal", "max_notional"), 4_000_000.0),
        # Pairs may be equal; safety may exceed the rebalancer when the rebalancer does not reduce.
        ({"signal": {"min_notional": 5_000_000}}, ("signal", "min_notional"), 5_000_000.0),
        ({"sys_monitor": {"warn_threads": 200}}, ("sys_monitor", "warn_threads"), 200),
        (
            {"safety": {"max_exposure": 30_000_000}, "rebalancer": {"auto_reduce": False}},
            ("safety", "max_exposure"),
            30_000_000.0,
        ),
        ({"symbols": ["btc", "eth"]}, ("symbols",), ["BTC", "ETH"]),
        # Asset codes as keys are spelled as the venues spell them.
        (
            {"execution": {"max_unhedged_qty_by_asset": {"btc": 0.001}}},
            ("execution", "max_unhedged_qty_by_asset"),
            {"ETH": 0.002, "BTC": 0.001},
        ),
    ],
)
def test_limits_at_their_edges_stay_valid(
    tmp_path: Path, overrides: dict[str, Any], key: tuple[str, ...], value: Any
) -> None:
    # In process: what is checked here is validation and the printed config; the tests above run
    # the command itself.
    result = CliRunner().invoke(
        main, ["config", "check", "--config", str(write_config(tmp_path, overrides))], env={"ARB_MODE": None}
    )
    assert result.exit_code == 0, result.stderr
    node: Any = effective(result.stdout)
    for part in key:
        node = node[part]
    assert node == value
