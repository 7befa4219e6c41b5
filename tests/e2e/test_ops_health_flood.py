"""Idle connections to the health port of the real command cannot stop the bot (issue 10)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

from tests.e2e.ops_harness import bot_process, free_port
from tests.waiting import wait_until

LOOPS = 100


def _detail(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/health/detailed", timeout=5) as response:
        return json.loads(response.read())


def _connect(port: int) -> socket.socket:
    """A connection that sends nothing; a full accept queue is waited out, as a client's retry would."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_250_idle_health_connections_keep_the_bot_running_to_the_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    overrides = {
        # A long request timeout: what keeps the threads down must be the server's design, not
        # idle sockets timing out. The thread count is sampled five times a second.
        "health_server": {"enabled": True, "host": "127.0.0.1", "port": port, "request_timeout_s": 120},
        "sys_monitor": {"sample_interval_sec": 0.2, "warn_cpu_pct": 1000, "max_cpu_pct": 1000},
    }
    idle: list[socket.socket] = []
    with bot_process(
        tmp_path, "--mock", "--loops", str(LOOPS), "--interval", "0.1", overrides=overrides
    ) as bot:
        try:
            bot.wait_for(r"health endpoint listening on ")
            for _ in range(250):
                idle.append(_connect(port))
                time.sleep(0.005)  # at the pace the accept queue drains
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                assert response.status == 200
            # Ten ticks (five samples) later, with every idle socket still held open by this side.
            start_tick = _detail(base)["ticks"]
            detail = wait_until(
                lambda: (d := _detail(base))["ticks"] >= start_tick + 10 and d,
                30,
                "ten more ticks",
                every_s=0.05,
                proc=bot.proc,
                details=lambda: bot.stdout()[-300:],
            )
            assert detail["sys"]["threads"] < 50, detail["sys"]
            assert detail["watchdog"]["level"] in ("OK", "WARN"), detail["watchdog"]
            run = bot.finish(timeout=60)
        finally:
            for sock in idle:
                sock.close()
    assert run.code == 0, run.stderr
    assert len(run.metrics_lines()) == LOOPS
    assert "watchdog CRITICAL" not in (tmp_path / "logs" / "live_loop.log").read_text(encoding="utf-8")
    assert "threads=" not in (tmp_path / "logs" / "watchdog.log").read_text(encoding="utf-8")
    health_log = (tmp_path / "logs" / "health.log").read_text(encoding="utf-8")
    assert "at its cap of 32 connections (health_server.max_connections)" in health_log
