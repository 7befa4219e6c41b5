"""`arb health`: the table of checks and its exit code (0 all pass, 1 a check failed, 2 bad config)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbitrage.sim.server import SimServer
from arbitrage.sim.urls import sim_options, sim_urls
from tests.e2e.ops_harness import bot_env, free_port
from tests.e2e.runner import write_config

REDIS_HINT = (
    'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
)
ROW = re.compile(r"^│ (?P<name>[\w ]+?) +│ (?P<status>OK|FAIL|SKIP) +│ (?P<detail>.*?) *│$")
CONTINUED = re.compile(r"^│ +│ +│ (?P<detail>.*?) *│$")


def arb_health(
    workdir: Path, overrides: dict[str, Any] | None = None, *args: str
) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Runs `python -m arbitrage health` in workdir; returns the exit code, rows by check name, stderr."""
    config = write_config(workdir, overrides)
    proc = subprocess.run(
        [sys.executable, "-m", "arbitrage", "health", "--config", str(config), *args],
        cwd=workdir,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows: dict[str, tuple[str, str]] = {}
    last = ""
    for line in proc.stdout.splitlines():
        if m := ROW.match(line):
            last = m["name"]
            rows[last] = (m["status"], m["detail"])
        elif last and (more := CONTINUED.match(line)):  # rich folds a long detail onto more lines
            rows[last] = (rows[last][0], f"{rows[last][1]} {more['detail']}")
    return proc.returncode, rows, proc.stdout + proc.stderr


def test_mock_mode_all_checks_pass(tmp_path: Path) -> None:
    code, rows, out = arb_health(tmp_path)
    assert code == 0, out
    assert list(rows) == [
        "config",
        "log dir",
        "ledger",
        "instance lock",
        "redis",
        "venue upbit",
        "venue binance",
    ], out
    assert rows["config"][0] == "OK" and "valid (mock mode, 2 venues, 2 assets)" in rows["config"][1]
    assert rows["log dir"] == ("OK", "logs writable")
    assert rows["ledger"][0] == "OK" and re.search(r"schema version \d+", rows["ledger"][1])
    assert rows["instance lock"] == ("OK", "free: no bot is running on this ledger and data dir")
    assert rows["redis"][0] == "SKIP"
    assert (
        rows["venue upbit"][0] == "OK"
        and "BTC/KRW" in rows["venue upbit"][1]
        and "USDT/KRW" in rows["venue upbit"][1]
    )
    assert rows["venue binance"][0] == "OK" and "ETH/USDT" in rows["venue binance"][1]
    assert "all checks passed" in out
    assert not list((tmp_path / "logs").iterdir())  # the writability probe cleans up after itself


def test_redis_enabled_at_a_closed_port_fails_with_exit_1(tmp_path: Path) -> None:
    port = free_port()
    code, rows, out = arb_health(tmp_path, {"redis": {"enabled": True, "url": f"redis://127.0.0.1:{port}/0"}})
    assert code == 1, out
    assert rows["redis"] == ("FAIL", f"no answer at 127.0.0.1:{port} db 0 within 0.2s")
    assert all(status == "OK" for name, (status, _) in rows.items() if name != "redis"), rows
    assert "1 check(s) failed: redis" in out
    assert "Traceback" not in out and "WARNING" not in out  # the table says it once, no log noise


def test_redis_enabled_and_running_passes(tmp_path: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.fail(f"Redis is not running on 127.0.0.1:6379; {REDIS_HINT}")
    code, rows, out = arb_health(tmp_path, {"redis": {"enabled": True, "url": "redis://127.0.0.1:6379/13"}})
    assert code == 0, out
    assert rows["redis"] == ("OK", "PING answered at 127.0.0.1:6379 db 13")


def test_an_unwritable_log_dir_and_ledger_fail(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the log directory should be\n", encoding="utf-8")
    (tmp_path / "data").write_text("a file where the data directory should be\n", encoding="utf-8")
    code, rows, out = arb_health(tmp_path)
    assert code == 1, out
    assert rows["log dir"][0] == "FAIL" and "logs is not writable" in rows["log dir"][1]
    assert rows["ledger"][0] == "FAIL" and rows["ledger"][1].startswith("sqlite data/ledger.sqlite3: ")
    assert rows["venue upbit"][0] == "OK"  # one failure does not stop the other checks
    assert "2 check(s) failed: log dir, ledger" in out


def test_an_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    code, rows, out = arb_health(tmp_path, {"loop": {"interval_s": -1}})
    assert code == 2, out
    assert rows == {}
    assert "loop.interval_s" in out


def test_live_mode_adds_the_static_guards(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    venues = {
        n: {"urls": sim_urls(n, closed), "options": sim_options(n), "timeout_ms": 1000}
        for n in ("upbit", "binance")
    }
    code, rows, out = arb_health(tmp_path, {"venues": venues}, "--mode", "live")
    assert code == 1, out
    status, detail = rows["live guards"]
    assert status == "FAIL" and "LIVE_TRADING" in detail and "CONFIRM_FILE" in detail and "API_KEYS" in detail


@pytest.fixture(scope="module")
def sim_base_url() -> Iterator[str]:
    server = SimServer(seed=11, tick_ms=100)
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


def _sim_venues(base_url: str) -> dict[str, Any]:
    return {
        name: {"urls": sim_urls(name, base_url), "options": sim_options(name), "timeout_ms": 5000}
        for name in ("upbit", "binance")
    }


def test_paper_mode_reads_books_from_the_loopback_exchanges(tmp_path: Path, sim_base_url: str) -> None:
    code, rows, out = arb_health(tmp_path, {"venues": _sim_venues(sim_base_url)}, "--mode", "paper")
    assert code == 0, out
    assert rows["venue upbit"][0] == "OK" and "BTC/KRW" in rows["venue upbit"][1], out
    assert rows["venue binance"][0] == "OK" and "BTC/USDT" in rows["venue binance"][1], out


def test_paper_mode_with_unreachable_venues_fails(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    venues = {
        n: {"urls": sim_urls(n, closed), "options": sim_options(n), "timeout_ms": 1000}
        for n in ("upbit", "binance")
    }
    code, rows, out = arb_health(tmp_path, {"venues": venues}, "--mode", "paper")
    assert code == 1, out
    assert rows["venues"][0] == "FAIL" and "upbit" in rows["venues"][1], out
