"""Alerts: always to the log, and to Telegram from a background thread when credentials are set.

send() never blocks and never raises: an alert channel must not be able to stall or break the loop.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from arbitrage.clock import Clock
from arbitrage.config import AlertsConfig
from arbitrage.ops.log_health import LogWriteHealth
from arbitrage.url_credentials import mask_url_credentials

log = logging.getLogger("arbitrage.alerts")

TELEGRAM_MAX_TEXT = 4096  # the Bot API rejects longer messages
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class Alerter(Protocol):
    def send(self, key: str, text: str, level: str = "ERROR") -> None:
        """Queue an alert; `key` identifies its kind for the cooldown. Never blocks, never raises."""

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what is queued within timeout_s, then stop."""


@dataclass(frozen=True)
class AlertStats:
    sent: int = 0
    dropped_cooldown: int = 0
    dropped_full: int = 0
    failed: int = 0


def _level_no(level: str) -> int:
    name = level.upper() if isinstance(level, str) else "ERROR"
    return logging.getLevelNamesMapping()[name if name in _LEVELS else "ERROR"]


class LogAlerter:
    """Alerts into the arbitrage.alerts logger (and so into the log files).

    While the log files cannot be written, an alert also goes to stderr: alerts are few, and
    without Telegram the log is their only channel.
    """

    def __init__(self, log_health: LogWriteHealth | None = None) -> None:
        self._sent = 0
        self._lock = threading.Lock()
        self._log_health = log_health

    @property
    def stats(self) -> AlertStats:
        return AlertStats(sent=self._sent)

    def send(self, key: str, text: str, level: str = "ERROR") -> None:
        try:
            log.log(_level_no(level), "ALERT [%s] %s", key, text)
            if self._log_health is not None and not self._log_health.status().ok:
                self._log_health.tell(f"ALERT [{level.upper()}] {key}: {text}")
            with self._lock:
                self._sent += 1
        except Exception:  # a broken handler must not reach the caller
            pass

    def close(self, timeout_s: float = 2.0) -> None:
        return None


class TelegramAlerter:
    """Posts alerts to the Telegram Bot API through a bounded queue drained by a daemon thread.

    A key sent less than cooldown_s ago is dropped (counted), a full queue drops the new alert
    (counted): under an alert storm the oldest queued alerts are the most useful ones. Every alert
    is also logged through a LogAlerter, so the log has them even when Telegram is down.
    """

    def __init__(
        self,
        token: str,
        chat_id: str,
        base_url: str,
        cooldown_s: float,
        queue_size: int,
        timeout_s: float,
        clock: Clock,
        log_health: LogWriteHealth | None = None,
    ) -> None:
        self._token = token
        self._chat_id = chat_id
        self._url = f"{base_url.rstrip('/')}/bot{token}/sendMessage"
        self._cooldown_s = cooldown_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._log = LogAlerter(log_health)
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._last_by_key: dict[str, float] = {}
        self._sent = self._dropped_cooldown = self._dropped_full = self._failed = 0
        self._closed = False
        self._abandoned = False  # close() gave up waiting: the worker stops after its current post
        self._worker = threading.Thread(target=self._drain, name="telegram-alerts", daemon=True)
        self._worker.start()

    @property
    def stats(self) -> AlertStats:
        with self._lock:
            return AlertStats(self._sent, self._dropped_cooldown, self._dropped_full, self._failed)

    def send(self, key: str, text: str, level: str = "ERROR") -> None:
        try:
            self._send(key, text, level)
        except Exception:
            log.exception("alert %s could not be queued", key)

    def _send(self, key: str, text: str, level: str) -> None:
        now = self._clock.monotonic()
        with self._lock:
            last = self._last_by_key.get(key)
            if last is not None and now - last < self._cooldown_s:
                self._dropped_cooldown += 1
                log.debug("ALERT [%s] suppressed (cooldown %.0fs): %s", key, self._cooldown_s, text)
                return
            if not self._closed:
                try:
                    # Telegram is outside the log's redaction: an error text may quote a URL.
                    message = mask_url_credentials(f"[{level.upper()}] {key}: {text}")
                    self._queue.put_nowait(message[:TELEGRAM_MAX_TEXT])
                    self._last_by_key[key] = now
                except queue.Full:
                    self._dropped_full += 1
                    log.warning("telegram alert queue full: alert %s not sent to telegram", key)
        # After close() the alert still reaches the log; only Telegram is gone.
        self._log.send(key, text, level)

    def close(self, timeout_s: float = 2.0) -> None:
        """Flush the queue within timeout_s; a hung Telegram is left to its daemon thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Join deadlines are real waits, so they use real time even when the cooldown clock is fake.
        deadline = time.monotonic() + timeout_s
        try:
            self._queue.put(None, timeout=max(timeout_s, 0.0))
        except queue.Full:
            self._abandoned = True
            log.warning("telegram alerts not delivered at close: %d still queued", self._queue.qsize())
            return
        self._worker.join(max(deadline - time.monotonic(), 0.0))
        if self._worker.is_alive():
            self._abandoned = True
            log.warning("telegram alert delivery did not finish within %.1fs", timeout_s)

    def _drain(self) -> None:
        while True:
            message = self._queue.get()
            if message is None or self._abandoned:
                return
            ok = self._post(message)
            with self._lock:
                if ok:
                    self._sent += 1
                else:
                    self._failed += 1

    def _post(self, message: str) -> bool:
        body = json.dumps({"chat_id": self._chat_id, "text": message}).encode("utf-8")
        request = urllib.request.Request(
            self._url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        # Error texts are built by hand: exceptions from urllib can carry the URL, and the URL the token.
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                response.read()
                return True
        except urllib.error.HTTPError as err:
            log.warning("telegram alert failed: HTTP %s", err.code)
        except urllib.error.URLError as err:
            log.warning("telegram alert failed: %s", self._scrub(str(err.reason)))
        except TimeoutError:
            log.warning("telegram alert failed: no answer within %.1fs", self._timeout_s)
        except Exception as err:
            log.warning("telegram alert failed: %s", type(err).__name__)
        return False

    def _scrub(self, text: str) -> str:
        return text.replace(self._url, "<telegram>").replace(self._token, "***")


class AlertFanout:
    """A run's alerts, to its alerter (the log, Telegram) and, with Redis, to the event stream.

    Passwords in URLs are masked first: Redis and Telegram are outside the log's redaction. Like
    the alerter it wraps, send() never blocks and never raises (a publish to a Redis that is away
    returns False, it does not raise).
    """

    def __init__(
        self, alerter: Alerter, publish: Callable[[str, Mapping[str, Any]], object] | None = None
    ) -> None:
        self.alerter = alerter
        self._publish = publish

    def send(self, key: str, text: str, level: str = "ERROR") -> None:
        text = mask_url_credentials(text)
        self.alerter.send(key, text, level)
        if self._publish is not None:
            self._publish("alert", {"key": key, "text": text, "level": level})

    def close(self, timeout_s: float = 2.0) -> None:
        self.alerter.close(timeout_s)


def build_alerter(
    config: AlertsConfig, env: Mapping[str, str], clock: Clock, log_health: LogWriteHealth | None = None
) -> Alerter:
    """Telegram when both its token and chat id are in the environment, else the log only."""
    token = env.get(config.telegram_token_env, "").strip()
    chat_id = env.get(config.telegram_chat_id_env, "").strip()
    if token and chat_id:
        log.info("alerts go to telegram and the log")
        return TelegramAlerter(
            token=token,
            chat_id=chat_id,
            base_url=config.telegram_base_url,
            cooldown_s=config.cooldown_s,
            queue_size=config.queue_size,
            timeout_s=config.timeout_s,
            clock=clock,
            log_health=log_health,
        )
    log.info(
        "alerts go to the log only (set %s and %s for telegram)",
        config.telegram_token_env,
        config.telegram_chat_id_env,
    )
    return LogAlerter(log_health)
