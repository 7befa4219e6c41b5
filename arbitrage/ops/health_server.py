"""The health endpoint: GET /health, /health/detailed and /metrics from a daemon HTTP thread."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from arbitrage.ops.metrics import METRICS_CONTENT_TYPE, BotMetrics
from arbitrage.ops.watchdog import Level

log = logging.getLogger("arbitrage.health")

JSON_CONTENT_TYPE = "application/json"
PATHS = ("/health", "/health/detailed", "/metrics")


@dataclass(frozen=True)
class HealthStatus:
    """What the loop reports: the watchdog level and the detail for /health/detailed."""

    level: Level
    detailed: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait on a slow client

    def __init__(self, address: tuple[str, int], status: Callable[[], HealthStatus], metrics: BotMetrics):
        self.status = status
        self.metrics = metrics
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "arbitrage-health"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/health":
                status = self.server.status()
                code = 200 if status.level <= Level.WARN else 503
                self._json(code, {"status": status.level.name})
            elif path == "/health/detailed":
                status = self.server.status()
                self._json(200, {"status": status.level.name, **status.detailed})
            elif path == "/metrics":
                self._reply(200, METRICS_CONTENT_TYPE, self.server.metrics.render())
            else:
                self._json(404, {"error": f"not found: {path}", "paths": list(PATHS)})
        except Exception:
            # The loop's status callback failed: say so to the prober rather than hang or drop the line.
            log.exception("health request %s failed", path)
            self._json(500, {"status": "UNKNOWN", "error": "status unavailable"})

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._reply(code, JSON_CONTENT_TYPE, json.dumps(body, default=str).encode("utf-8"))

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # BaseHTTPRequestHandler writes to stderr; access lines belong in health.log.
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        status: Callable[[], HealthStatus],
        metrics: BotMetrics,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._status = status
        self._metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); the requested one before start()."""
        return self._server.server_address[1] if self._server else self._requested_port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("health server already started")
        self._server = _Server((self._host, self._requested_port), self._status, self._metrics)
        # A short poll interval so that stop() (which waits for the serve loop to notice) is prompt.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="health-server", daemon=True
        )
        self._thread.start()
        log.info("health endpoint listening on %s (/health, /health/detailed, /metrics)", self.url)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        log.info("health endpoint on %s stopped", self.url)
        self._server = None
        self._thread = None
