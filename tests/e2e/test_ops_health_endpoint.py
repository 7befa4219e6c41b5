"""The health endpoint of a running bot, probed with a real HTTP client
(see docs/ARCHITECTURE.md, Operations)."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.ops_harness import BotProcess, bot_process, free_port


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode("utf-8")


def _wait_until_serving(bot: BotProcess, base: str) -> None:
    bot.wait_for(r"health endpoint listening on ")
    bot.wait_for(r"(?s)\[LIVE\] \[METRICS\].*\[LIVE\] \[METRICS\]")  # two ticks: a watchdog report exists


def _health_overrides(port: int, **extra: Any) -> dict[str, Any]:
    return {"health_server": {"enabled": True, "host": "127.0.0.1", "port": port}, **extra}


def test_health_detailed_and_metrics_of_a_running_bot(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.1", overrides=_health_overrides(port)
    ) as bot:
        _wait_until_serving(bot, base)
        code, ctype, body = _get(f"{base}/health")
        assert code == 200 and ctype == "application/json"
        assert json.loads(body)["status"] in ("OK", "WARN")

        code, ctype, body = _get(f"{base}/health/detailed")
        assert code == 200 and ctype == "application/json"
        detail = json.loads(body)
        assert detail["mode"] == "mock"
        assert detail["uptime_s"] > 0
        assert 0 <= detail["last_tick_age_s"] < 5
        per_metric = detail["watchdog"]["per_metric"]
        assert {"loop_latency_ms", "safety_rejections_per_minute", "live_errors_per_minute"} <= set(
            per_metric
        )
        assert set(per_metric.values()) <= {"OK", "WARN", "ERROR", "CRITICAL"}
        assert detail["sys"]["available"] is True and detail["sys"]["rss_mb"] > 1
        assert set(detail["venues"]) == {"upbit", "binance"}
        assert all(v["feed"] == "simulated" for v in detail["venues"].values())
        assert isinstance(detail["positions"], list)
        assert {"day", "realized"} <= set(detail["daily_pnl"])

        code, ctype, text = _get(f"{base}/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        names = {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert {"arb_tick_count", "arb_loop_latency_ms", "arb_watchdog_level", "arb_open_positions"} <= names
        assert all(name.startswith("arb_") for name in names), names

        assert _get(f"{base}/nope")[0] == 404
        bot.send(signal.SIGTERM)
        run = bot.finish(timeout=30)
    assert run.code == 0, run.stderr
    health_log = (tmp_path / "logs" / "health.log").read_text(encoding="utf-8")
    assert f"health endpoint listening on {base}" in health_log
    assert f"health endpoint on {base} stopped" in health_log


def test_health_answers_503_while_the_watchdog_is_at_error(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    overrides = _health_overrides(
        port,
        watchdog={
            "warn_loop_latency_ms": 0.0001,
            "max_loop_latency_ms": 0.0002,
            "evaluate_every_s": 0,
            "critical_after_errors": 1000,
        },
    )
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.1", overrides=overrides
    ) as bot:
        _wait_until_serving(bot, base)
        code, _, body = _get(f"{base}/health")
        assert (code, json.loads(body)) == (503, {"status": "ERROR"})
        detail = json.loads(_get(f"{base}/health/detailed")[2])
        assert detail["status"] == "ERROR"
        assert detail["watchdog"]["per_metric"]["loop_latency_ms"] == "ERROR"
        assert any(b.startswith("loop_latency_ms=") for b in detail["watchdog"]["breaches"])
        metrics = _get(f"{base}/metrics")[2]
        assert "arb_watchdog_level 2.0" in metrics
        started = time.monotonic()
        bot.send(signal.SIGTERM)
        run = bot.finish(timeout=30)
    assert run.code == 0, run.stderr
    assert time.monotonic() - started < 10
