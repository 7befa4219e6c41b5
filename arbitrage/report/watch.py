"""`arb watch`: the dashboard of a running bot, refreshed live in the terminal.

It reads the bot's console state over HTTP (GET /state on the health server) or from Redis (the
console key), never the ledger of a running bot. Keys are read without blocking (cbreak mode and
select), q quits, a resize redraws at once, and a bot that cannot be read is said to be so.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from rich.console import Console, RenderableType
from rich.live import Live

from arbitrage.clock import SystemClock
from arbitrage.report.dashboard import dashboard, unreachable
from arbitrage.store.redis_state import RedisState

READ_TIMEOUT_S = 2.0


class StateUnavailable(Exception):
    """The console state could not be read; the message says why, in a few words."""


class StateSource(Protocol):
    where: str

    def read(self) -> Mapping[str, Any]:
        """The latest console state; StateUnavailable when there is none to be had."""


class HttpState:
    """GET <url>/state on the bot's health server."""

    def __init__(self, url: str, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.where = url.rstrip("/")
        self._timeout_s = timeout_s

    def read(self) -> Mapping[str, Any]:
        try:
            with urllib.request.urlopen(f"{self.where}/state", timeout=self._timeout_s) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as err:
            if err.code == 503:
                raise StateUnavailable("running, no tick finished yet") from None
            if err.code == 404:
                raise StateUnavailable("HTTP 404: a health server without /state, an older bot?") from None
            raise StateUnavailable(f"HTTP {err.code}") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, ConnectionRefusedError):
                raise StateUnavailable("connection refused") from None
            if isinstance(reason, TimeoutError):
                raise StateUnavailable(f"no answer within {self._timeout_s:.0f}s") from None
            raise StateUnavailable(str(reason)) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            raise StateUnavailable(type(err).__name__) from None
        except ValueError:
            raise StateUnavailable("the answer is not JSON") from None
        if not isinstance(document, dict):
            raise StateUnavailable("the answer is not a console state")
        return document


class RedisConsole:
    """The console key in Redis, written by the bot about once a second and expiring with its
    heartbeat TTL: a missing key means no bot there (or redis.enabled off)."""

    def __init__(self, url: str, key_prefix: str, instance: str) -> None:
        self._redis = RedisState(
            url,
            key_prefix,
            instance,
            heartbeat_ttl_s=10.0,
            stream_maxlen=1,
            socket_timeout_s=READ_TIMEOUT_S,
            clock=SystemClock(),
            reconnect_backoff_s=0.5,
        )
        self.where = f"{url} key {self._redis.console_key}"

    def read(self) -> Mapping[str, Any]:
        document = self._redis.load_console()
        if document is not None:
            return document
        if not self._redis.available:
            raise StateUnavailable("redis unreachable")
        raise StateUnavailable("no console state: is the bot running with redis.enabled?")


@contextlib.contextmanager
def keys_without_echo() -> Iterator[bool]:
    """cbreak mode on a terminal stdin (a key arrives without Enter and is not echoed); yields
    whether keys can be read at all."""
    if not sys.stdin.isatty():
        yield False
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(wait_s: float, keys: bool, woken: threading.Event) -> bool:
    """Wait up to wait_s for a key (or a resize); True when it was q."""
    if not keys:
        woken.wait(wait_s)
        return False
    deadline = time.monotonic() + wait_s
    while not woken.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            ready, _, _ = select.select([sys.stdin], [], [], min(left, 0.1))
        except InterruptedError:  # a signal (SIGWINCH) woke select
            continue
        if ready:
            key = os.read(sys.stdin.fileno(), 1)
            if key in (b"q", b"Q"):
                return True
    return False


class FleetSource(Protocol):
    def read(self) -> Mapping[str, Any]:
        """The fleet's document (report.fleet_watch); {"error": why} when it cannot be read."""


def watch(
    source: StateSource, refresh_s: float, console: Console | None = None, fleet: FleetSource | None = None
) -> int:
    """Redraw every refresh_s (at once on a resize) until q or Ctrl-C; returns the exit code 0.
    With `fleet`, the fleet's panel (every worker, the shared budget) is drawn too."""
    # RedisState reports outages through logging: that must not scribble over the screen.
    logging.getLogger("arbitrage").addHandler(logging.NullHandler())
    logging.getLogger("arbitrage").propagate = False
    if console is None:
        # COLUMNS and LINES (exported by some shells) would pin rich to one size: the terminal's
        # own size, read at each redraw, is what makes a resize redraw to fit.
        environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        console = Console(_environ=environ)
    resized = threading.Event()
    previous = signal.signal(signal.SIGWINCH, lambda *_: resized.set())
    last_seen: float | None = None
    try:
        with keys_without_echo() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                view: RenderableType
                try:
                    document = source.read()
                    last_seen = time.time()
                    view = dashboard(document, source.where, fleet=None if fleet is None else fleet.read())
                except StateUnavailable as err:
                    view = unreachable(source.where, str(err), last_seen)
                except (KeyError, TypeError, ValueError) as err:
                    # A bot of another version: say so rather than die on its first odd field.
                    problem = f"{type(err).__name__} {err}: a bot of another version?"
                    view = unreachable(
                        source.where, problem, last_seen, headline="cannot draw the state read"
                    )
                live.update(view, refresh=True)
                resized.clear()
                if _quit_pressed(refresh_s, keys, resized):
                    return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGWINCH, previous)
