from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.ops.health_server import HealthServer, HealthStatus
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.watchdog import Level

DETAILED: dict[str, Any] = {
    "mode": "mock",
    "uptime_s": 12.5,
    "last_tick_age_s": 0.4,
    "watchdog": {"level": "OK", "per_metric": {"loop_latency_ms": "OK"}},
    "sys": {"cpu_pct": 1.5, "rss_mb": 80.0, "open_fds": 12, "threads": 4, "available": True},
    "venues": {"upbit": {"stream": "polling", "degraded": False}, "binance": {"stream": "websocket"}},
    "positions": [{"id": "p1", "symbol": "BTC", "qty": "0.01"}],
    "daily_pnl": "1234.5",
}


class LoopStatus:
    """What the loop would hand the server: a level it changes between requests."""

    def __init__(self) -> None:
        self.level = Level.OK
        self.broken = False

    def __call__(self) -> HealthStatus:
        if self.broken:
            raise RuntimeError("state not ready")
        return HealthStatus(self.level, dict(DETAILED))


@pytest.fixture
def loop_status() -> LoopStatus:
    return LoopStatus()


@pytest.fixture
def server(loop_status: LoopStatus) -> Iterator[HealthServer]:
    metrics = BotMetrics()
    metrics.update({"pnl": 1234.5, "trades_total": 2})
    srv = HealthServer("127.0.0.1", 0, loop_status, metrics)
    srv.start()
    yield srv
    srv.stop()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_binds_a_real_port_when_zero_is_asked(server: HealthServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("level", "code"),
    [(Level.OK, 200), (Level.WARN, 200), (Level.ERROR, 503), (Level.CRITICAL, 503)],
)
def test_health_follows_the_watchdog_level(
    server: HealthServer, loop_status: LoopStatus, level: Level, code: int
) -> None:
    loop_status.level = level
    status, ctype, body = get(f"{server.url}/health")
    assert status == code
    assert ctype == "application/json"
    assert json.loads(body) == {"status": level.name}


def test_detailed_returns_the_loops_detail(server: HealthServer, loop_status: LoopStatus) -> None:
    loop_status.level = Level.ERROR  # detailed answers 200 whatever the level: it is for reading
    status, ctype, body = get(f"{server.url}/health/detailed?pretty=1")
    assert status == 200
    assert ctype == "application/json"
    data = json.loads(body)
    assert data["status"] == "ERROR"
    assert {k: data[k] for k in DETAILED} == DETAILED


def test_metrics_are_prometheus_text(server: HealthServer) -> None:
    status, ctype, body = get(f"{server.url}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    text = body.decode()
    assert "arb_pnl 1234.5" in text
    assert "arb_trades_total 2.0" in text


@pytest.mark.parametrize("path", ["/", "/healthz", "/health/other", "/metrics/x"])
def test_unknown_paths_are_404(server: HealthServer, path: str) -> None:
    status, _, body = get(f"{server.url}{path}")
    assert status == 404
    assert "not found" in json.loads(body)["error"]


def test_a_failing_status_callback_is_a_500_not_a_hang(
    server: HealthServer, loop_status: LoopStatus, caplog: pytest.LogCaptureFixture
) -> None:
    loop_status.broken = True
    with caplog.at_level(logging.ERROR, logger="arbitrage.health"):
        status, _, body = get(f"{server.url}/health")
    assert status == 500
    assert json.loads(body)["status"] == "UNKNOWN"
    assert "state not ready" in caplog.text
    loop_status.broken = False
    assert get(f"{server.url}/health")[0] == 200


def test_access_lines_go_to_the_health_logger_not_stderr(
    server: HealthServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="arbitrage.health"):
        get(f"{server.url}/health")
        get(f"{server.url}/nope")
    access = [r for r in caplog.records if r.name == "arbitrage.health" and r.levelno == logging.DEBUG]
    assert any('"GET /health HTTP/1.1" 200' in r.getMessage() for r in access)
    assert any('"GET /nope HTTP/1.1" 404' in r.getMessage() for r in access)
    assert capfd.readouterr().err == ""


def test_stop_releases_the_port_and_start_twice_is_refused(loop_status: LoopStatus) -> None:
    srv = HealthServer("127.0.0.1", 0, loop_status, BotMetrics())
    srv.start()
    port = srv.port
    with pytest.raises(RuntimeError):
        srv.start()
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    # the same port can be bound again at once
    again = HealthServer("127.0.0.1", port, loop_status, BotMetrics())
    again.start()
    try:
        assert get(f"{again.url}/health")[0] == 200
    finally:
        again.stop()
