"""The health endpoint: GET /health, /health/detailed, /metrics and /state (the operator's console),
and the operator's control (POST /halt, /resume, /stop behind a bearer token), served by one thread.

One thread and a selector serve every connection, so clients cannot raise the process's thread
count (which the SysMonitor grades) whatever they do. Each connection has a deadline to send its
request and read the answer (`request_timeout_s`, slowloris included), and at most
`max_connections` are open at once: a new one over the cap closes the oldest still sending its
request, so idle sockets cannot starve a real probe.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from arbitrage.ops.metrics import METRICS_CONTENT_TYPE, BotMetrics
from arbitrage.ops.watchdog import Level

log = logging.getLogger("arbitrage.health")

JSON_CONTENT_TYPE = "application/json"
PATHS = ("/health", "/health/detailed", "/metrics", "/state")
CONTROL_PATHS = ("/halt", "/resume", "/stop")
MAX_REQUEST_HEAD = 8192  # a probe's request line and headers; more is not a health probe
CAP_WARNING_EVERY_S = 60.0  # the cap warning is repeated at most this often, with a count


@dataclass(frozen=True)
class HealthStatus:
    """What the loop reports: the watchdog level and the detail for /health/detailed."""

    level: Level
    detailed: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    deadline: float  # monotonic: past it, the connection is closed whatever its state
    received: bytearray = field(default_factory=bytearray)
    reply: memoryview | None = None  # set once the request is answered; written out as it drains


def _response(
    code: int, content_type: str, body: bytes, head_only: bool = False, extra_head: str = ""
) -> bytes:
    phrase = HTTPStatus(code).phrase
    head = (
        f"HTTP/1.1 {code} {phrase}\r\n"
        "Server: arbitrage-health\r\n"
        f"{extra_head}"
        f"Date: {formatdate(usegmt=True)}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else body)


def _json(code: int, body: Mapping[str, Any], head_only: bool = False, extra_head: str = "") -> bytes:
    data = json.dumps(body, default=str).encode("utf-8")
    return _response(code, JSON_CONTENT_TYPE, data, head_only, extra_head)


def _bearer(head: bytes) -> str | None:
    """The bearer token of a request head's Authorization header; None when there is none."""
    for line in head.decode("latin-1").split("\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


@dataclass(frozen=True)
class Control:
    """The operator's control endpoints: path -> action (given who asked, returns what it did).
    `token` empty means disabled: every request is refused, naming `token_env`."""

    actions: Mapping[str, Callable[[str], str]]
    token: str
    token_env: str


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        status: Callable[[], HealthStatus],
        metrics: BotMetrics,
        max_connections: int = 32,
        request_timeout_s: float = 5.0,
        state: Callable[[], Mapping[str, Any] | None] | None = None,
        control: Control | None = None,
    ) -> None:
        self._host = host
        self._state = state
        self._control = control
        self._requested_port = port
        self._status = status
        self._metrics = metrics
        self._max_connections = max_connections
        self._timeout_s = request_timeout_s
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._connections: dict[socket.socket, _Connection] = {}
        self._evicted = 0
        self._last_cap_warning = float("-inf")

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); the requested one before start()."""
        return int(self._listener.getsockname()[1]) if self._listener else self._requested_port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("health server already started")
        listener = socket.create_server((self._host, self._requested_port), reuse_port=False, backlog=128)
        listener.setblocking(False)
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="health-server", daemon=True)
        self._thread.start()
        control = "on" if self._control is not None and self._control.token else "off"
        log.info(
            "health endpoint listening on %s (/health, /health/detailed, /metrics, /state; control %s)",
            self.url,
            control,
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._listener is None:
            return
        url = self.url
        self._stopping.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout_s)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        log.info("health endpoint on %s stopped", url)
        self._listener = self._wake_r = self._wake_w = None
        self._thread = None

    # The serving thread --------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, "accept")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                soonest = min((c.deadline for c in self._connections.values()), default=now + 1.0)
                for key, _ in selector.select(max(0.0, soonest - now)):
                    if key.data == "accept":
                        self._accept(selector)
                    elif key.data == "wake":
                        return
                    elif key.fileobj in self._connections:
                        self._service(selector, key.data)
                self._expire(selector, time.monotonic())
        except Exception:
            log.exception("health endpoint failed; it no longer answers")
        finally:
            for conn in list(self._connections.values()):
                self._close(selector, conn)
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # out of file descriptors, say: the next round may do better
                log.warning("health endpoint could not accept a connection: %s", err)
                return
            sock.setblocking(False)
            if len(self._connections) >= self._max_connections and not self._evict_oldest_reader(selector):
                # Every slot is busy writing an answer: refuse at once rather than queue.
                with contextlib.suppress(OSError):
                    sock.send(_json(503, {"status": "UNKNOWN", "error": "too many connections"}))
                sock.close()
                continue
            conn = _Connection(sock, f"{address[0]}:{address[1]}", time.monotonic() + self._timeout_s)
            self._connections[sock] = conn
            selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_oldest_reader(self, selector: selectors.BaseSelector) -> bool:
        readers = [c for c in self._connections.values() if c.reply is None]
        if not readers:
            return False
        self._close(selector, min(readers, key=lambda c: c.deadline))
        self._evicted += 1
        now = time.monotonic()
        if now - self._last_cap_warning >= CAP_WARNING_EVERY_S:
            log.warning(
                "health endpoint at its cap of %d connections (health_server.max_connections): "
                "%d idle connection(s) closed to admit new ones",
                self._max_connections,
                self._evicted,
            )
            self._last_cap_warning = now
            self._evicted = 0
        return True

    def _service(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        try:
            if conn.reply is None:
                self._read(selector, conn)
            else:
                self._write(selector, conn)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:  # reset by the peer, say
            log.debug("%s connection dropped: %s", conn.peer, err)
            self._close(selector, conn)

    def _read(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        chunk = conn.sock.recv(4096)
        if not chunk:
            self._close(selector, conn)
            return
        conn.received += chunk
        end = conn.received.find(b"\r\n\r\n")
        if end < 0:
            end = conn.received.find(b"\n\n")
        if end < 0:
            if len(conn.received) > MAX_REQUEST_HEAD:
                self._answer(
                    selector, conn, "(request head too large)", _json(431, {"error": "request too large"})
                )
            return
        head = bytes(conn.received[:end])
        request_line = head.split(b"\n", 1)[0].decode("latin-1").strip()
        self._answer(selector, conn, request_line, self._respond(request_line, head, conn.peer))

    def _respond(self, request_line: str, head: bytes = b"", peer: str = "") -> bytes:
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _json(400, {"error": "bad request line"})
        method, target, _ = parts
        if method == "POST":
            return self._command(target.split("?", 1)[0], head, peer)
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"method {method} not allowed", "allowed": ["GET", "HEAD", "POST"]})
        head_only = method == "HEAD"
        path = target.split("?", 1)[0]
        try:
            if path == "/health":
                status = self._status()
                code = 200 if status.level <= Level.WARN else 503
                return _json(code, {"status": status.level.name}, head_only)
            if path == "/health/detailed":
                status = self._status()
                return _json(200, {"status": status.level.name, **status.detailed}, head_only)
            if path == "/metrics":
                return _response(200, METRICS_CONTENT_TYPE, self._metrics.render(), head_only)
            if path == "/state":
                document = self._state() if self._state is not None else None
                if document is None:
                    return _json(
                        503, {"error": "no console state yet: the bot has not finished a tick"}, head_only
                    )
                return _json(200, document, head_only)
            return _json(404, {"error": f"not found: {path}", "paths": list(PATHS)}, head_only)
        except Exception:
            # The loop's status callback failed: say so to the prober rather than hang or drop the line.
            log.exception("health request %s failed", path)
            return _json(500, {"status": "UNKNOWN", "error": "status unavailable"}, head_only)

    def _command(self, path: str, head: bytes, peer: str) -> bytes:
        """POST /halt, /resume, /stop: only with the right bearer token (compared in constant time,
        and never logged)."""
        control = self._control
        if path in PATHS:
            return _json(405, {"error": f"method POST not allowed on {path}", "allowed": ["GET", "HEAD"]})
        if path not in CONTROL_PATHS:
            return _json(404, {"error": f"not found: POST {path}", "paths": list(CONTROL_PATHS)})
        if control is None or not control.token:
            env = control.token_env if control is not None else "health_server.control_token_env"
            log.warning("refused POST %s from %s: control is disabled (%s is not set)", path, peer, env)
            return _json(403, {"error": f"control is disabled: set {env} in the bot's environment"})
        presented = _bearer(head)
        if presented is None or not hmac.compare_digest(presented.encode(), control.token.encode()):
            log.warning(
                "refused POST %s from %s: %s bearer token", path, peer, "no" if presented is None else "wrong"
            )
            return _json(
                401,
                {"error": "a valid 'Authorization: Bearer <token>' header is required"},
                extra_head='WWW-Authenticate: Bearer realm="arbitrage"\r\n',
            )
        try:
            result = control.actions[path](f"POST {path} from {peer}")
        except Exception:
            log.exception("POST %s failed", path)
            return _json(500, {"error": f"{path[1:]} failed; see the log"})
        log.warning("POST %s from %s: %s", path, peer, result)
        return _json(200, {"ok": True, "action": path[1:], "result": result})

    def _answer(
        self, selector: selectors.BaseSelector, conn: _Connection, request_line: str, reply: bytes
    ) -> None:
        # The access line belongs in health.log (at DEBUG), never on stderr.
        log.debug('%s "%s" %s %d', conn.peer, request_line, reply[9:12].decode("latin-1"), len(reply))
        conn.reply = memoryview(reply)
        conn.deadline = time.monotonic() + self._timeout_s  # as long again to read the answer
        selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(selector, conn)

    def _write(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        assert conn.reply is not None
        sent = conn.sock.send(conn.reply)
        conn.reply = conn.reply[sent:]
        if not conn.reply:
            self._close(selector, conn)

    def _expire(self, selector: selectors.BaseSelector, now: float) -> None:
        for conn in [c for c in self._connections.values() if c.deadline <= now]:
            log.debug(
                "%s timed out after %.1fs (health_server.request_timeout_s)", conn.peer, self._timeout_s
            )
            self._close(selector, conn)

    def _close(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        self._connections.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn.sock)
        conn.sock.close()
