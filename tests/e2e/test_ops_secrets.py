"""No secret value in any log file, stdout or stderr of the real command
(see docs/ARCHITECTURE.md, Operations)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.ops_harness import bot_env, fake_telegram, run_clean
from tests.e2e.runner import BUSY_LOOP, REPO, Run, merge, write_config


@pytest.fixture
def fake_secrets() -> dict[str, str]:
    """Long, distinctive values: a partial match anywhere would be a real leak, not a coincidence."""
    return {
        "UPBIT_API_KEY": "upk" + secrets.token_hex(20),
        "UPBIT_API_SECRET": "ups" + secrets.token_urlsafe(32),
        "BINANCE_API_KEY": "bnk" + secrets.token_hex(24),
        "BINANCE_API_SECRET": "bns" + secrets.token_urlsafe(40),
        "TELEGRAM_BOT_TOKEN": f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(26)}",
        "TELEGRAM_CHAT_ID": str(10**12 + secrets.randbelow(10**12)),
    }


def _everything_written(run: Run) -> dict[str, str]:
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for path in sorted(run.workdir.rglob("*")):
        if path.is_file() and path.suffix != ".sqlite3" and path.name not in ("config.yml",):
            texts[str(path.relative_to(run.workdir))] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def _assert_no_secret(texts: dict[str, str], values: dict[str, str]) -> None:
    leaks = [
        (where, name) for where, text in texts.items() for name, value in values.items() if value in text
    ]
    assert not leaks, f"secret values found: {leaks}"


def test_a_run_with_alert_failures_never_shows_a_secret(tmp_path: Path, fake_secrets: dict[str, str]) -> None:
    with fake_telegram("error") as telegram:
        overrides = merge(
            BUSY_LOOP,
            {
                "alerts": {"telegram_base_url": telegram.url, "cooldown_s": 0},
                "mock": {"faults": {"one_leg_failure_rate": 1.0, "reject_rate": 0.3}},
                "logging": {"level": "DEBUG"},
            },
        )
        run = run_clean(
            tmp_path, "--mock", "--loops", "40", "--interval", "0", overrides=overrides, env=fake_secrets
        )
        calls = list(telegram.calls)
    assert run.code == 0, run.stderr
    assert calls and all(fake_secrets["TELEGRAM_BOT_TOKEN"] in c.path for c in calls)  # it did use them
    texts = _everything_written(run)
    assert {"logs/live_loop.log", "logs/execution.log", "logs/watchdog.log", "data/state.json"} <= set(texts)
    assert "telegram alert failed: HTTP 500" in texts["logs/live_loop.log"]
    _assert_no_secret(texts, fake_secrets)


def test_config_check_shows_that_secrets_are_set_but_not_their_values(fake_secrets: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arbitrage", "config", "check", "--config", str(REPO / "config" / "live.yml")],
        cwd=REPO,
        env=bot_env(fake_secrets),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "UPBIT_API_SECRET: '***set***'" in proc.stdout
    assert "TELEGRAM_BOT_TOKEN: '***set***'" in proc.stdout
    _assert_no_secret({"stdout": proc.stdout, "stderr": proc.stderr}, fake_secrets)


def test_an_engine_exception_carrying_a_secret_is_logged_redacted(
    tmp_path: Path, fake_secrets: dict[str, str]
) -> None:
    overrides = {
        "engines": [
            "signal",
            "safety",
            "execution",
            "stoploss",
            "position",
            "tests.e2e.ops_leaky_engine:LeakOnTick",
        ],
    }
    run = run_clean(
        tmp_path, "--mock", "--loops", "3", "--interval", "0", overrides=overrides, env=fake_secrets
    )
    assert run.code == 0, run.stderr
    texts = _everything_written(run)
    live = texts["logs/live_loop.log"]
    assert "engine tests.e2e.ops_leaky_engine:LeakOnTick raised; tick goes on without it" in live
    assert "PermissionError: venue refused the signature made with secret ***" in live
    assert "Traceback" in live  # the traceback is kept, only the value is masked
    _assert_no_secret(texts, fake_secrets)


def test_an_engine_that_fails_to_build_with_a_secret_exits_redacted(
    tmp_path: Path, fake_secrets: dict[str, str]
) -> None:
    overrides = {"engines": ["signal", "safety", "execution", "tests.e2e.ops_leaky_engine:LeakOnBuild"]}
    for debug in ((), ("--debug",)):
        workdir = tmp_path / ("debug" if debug else "plain")
        write_config(workdir, overrides)
        run = run_clean(workdir, "--mock", "--once", *debug, overrides=overrides, env=fake_secrets)
        assert run.code == 2, run.stderr
        assert "cannot load 'tests.e2e.ops_leaky_engine:LeakOnBuild'" in run.stderr
        assert "login failed for secret=***" in run.stderr
        _assert_no_secret(_everything_written(run), fake_secrets)
