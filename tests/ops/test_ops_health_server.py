from __future__ import annotations

import json
import logging
import select
import socket
import time
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


def _threads() -> int:
    import psutil

    return int(psutil.Process().num_threads())


def test_300_idle_connections_cost_no_thread_and_health_still_answers(loop_status: LoopStatus) -> None:
    # Before: one thread per connection, blocked reading a request that never comes; ~200 of
    # them took the process past sys_monitor.max_threads and the watchdog shut the bot down.
    srv = HealthServer("127.0.0.1", 0, loop_status, BotMetrics(), max_connections=16, request_timeout_s=30)
    srv.start()
    before = _threads()
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        # Accepted in order: once this answers, the server has taken in every idle socket before it.
        status, _, body = get(f"{srv.url}/health")
        assert (status, json.loads(body)) == (200, {"status": "OK"})
        assert _threads() <= before + 1, f"{_threads()} threads with 300 idle connections (was {before})"
        assert srv.open_connections <= 16
        assert get(f"{srv.url}/metrics")[0] == 200
    finally:
        for sock in idle:
            sock.close()
        srv.stop()


def test_a_slowloris_client_is_cut_off_at_the_request_timeout(loop_status: LoopStatus) -> None:
    srv = HealthServer("127.0.0.1", 0, loop_status, BotMetrics(), request_timeout_s=0.5)
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as slow:
            started = time.monotonic()
            closed = False
            # One byte every 50 ms of a request that would take 2 s to send: never finished in time.
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                readable, _, _ = select.select([slow], [], [], 0.05)
                if readable:
                    closed = slow.recv(100) == b""
                    break
            assert closed, "the server kept a trickling client"
            assert time.monotonic() - started < 2.0
        assert srv.open_connections == 0
        assert get(f"{srv.url}/health")[0] == 200
    finally:
        srv.stop()


def test_head_and_other_methods(server: HealthServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 405 ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _read_all(sock)
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\n")


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    return out
