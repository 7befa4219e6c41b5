from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis as redis_py

from arbitrage.clock import FakeClock, SystemClock
from arbitrage.config import AlertsConfig, RedisConfig
from arbitrage.ops.alerts import TELEGRAM_MAX_TEXT, AlertFanout, LogAlerter, TelegramAlerter, build_alerter
from arbitrage.store.redis_state import RedisState

TOKEN = "123456:AAE-fake_Token_value"
CHAT = "4242"
LOGGER = "arbitrage.alerts"


class FakeTelegram(ThreadingHTTPServer):
    """A loopback stand-in for api.telegram.org: records what it receives, can fail or hang."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TelegramHandler)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        self.status = 200
        self.hang = False
        self.release = threading.Event()  # ends a hang early so the test never waits 30 s

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= n, timeout), self.received
            return list(self.received)


class _TelegramHandler(BaseHTTPRequestHandler):
    server: FakeTelegram

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.arrived:
            self.server.received.append((self.path, body))
            self.server.arrived.notify_all()
        if self.server.hang:
            self.server.release.wait(30.0)
        payload = json.dumps({"ok": self.server.status == 200}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def alerter(base_url: str, clock: Any = None, **kw: Any) -> TelegramAlerter:
    args: dict[str, Any] = {"cooldown_s": 60.0, "queue_size": 100, "timeout_s": 5.0}
    args.update(kw)
    return TelegramAlerter(TOKEN, CHAT, base_url, clock=clock or FakeClock(), **args)


def test_delivers_to_the_bot_api_and_logs(telegram: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    a = alerter(telegram.base_url)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        a.send("one_leg", "binance leg unfilled, unwinding 0.01 BTC")
        a.send("daily_loss", "DAILY_LOSS_LIMIT reached", level="critical")
        received = telegram.wait_for(2)
        a.close()
    assert [path for path, _ in received] == [f"/bot{TOKEN}/sendMessage"] * 2
    assert received[0][1] == {
        "chat_id": CHAT,
        "text": "[ERROR] one_leg: binance leg unfilled, unwinding 0.01 BTC",
    }
    assert received[1][1]["text"] == "[CRITICAL] daily_loss: DAILY_LOSS_LIMIT reached"
    assert a.stats.sent == 2
    assert a.stats.failed == 0
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert (logging.ERROR, "ALERT [one_leg] binance leg unfilled, unwinding 0.01 BTC") in logged
    assert (logging.CRITICAL, "ALERT [daily_loss] DAILY_LOSS_LIMIT reached") in logged


def test_cooldown_drops_repeats_of_a_key(telegram: FakeTelegram) -> None:
    clock = FakeClock()
    a = alerter(telegram.base_url, clock=clock, cooldown_s=60.0)
    for _ in range(3):
        a.send("ws_down", "upbit stream fell back to REST")
    a.send("other", "a different key is not held back")
    clock.advance(59.0)
    a.send("ws_down", "still within the cooldown")
    clock.advance(1.0)
    a.send("ws_down", "cooldown over")
    texts = [body["text"] for _, body in telegram.wait_for(3)]
    a.close()
    assert texts == [
        "[ERROR] ws_down: upbit stream fell back to REST",
        "[ERROR] other: a different key is not held back",
        "[ERROR] ws_down: cooldown over",
    ]
    assert (a.stats.sent, a.stats.dropped_cooldown, a.stats.dropped_full) == (3, 3, 0)


def test_a_hung_telegram_never_blocks_send(telegram: FakeTelegram) -> None:
    telegram.hang = True
    a = alerter(telegram.base_url, clock=SystemClock(), queue_size=10, timeout_s=20.0)
    a.send("first", "the worker gets stuck posting this one")
    telegram.wait_for(1)  # the worker is now inside a request that will not answer
    started = time.perf_counter()
    for i in range(100):
        a.send(f"key{i}", f"alert {i}")
    elapsed = time.perf_counter() - started
    # Typically a few ms; the bound is generous for a loaded machine, far below any network wait.
    print(f"100 sends against a hung telegram: {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0, elapsed
    stats = a.stats
    assert stats.dropped_full == 90  # 10 fit in the queue, the new ones are dropped
    started = time.perf_counter()
    a.close(timeout_s=0.2)
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_http_errors_are_counted_and_logged_without_the_token(
    telegram: FakeTelegram, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.status = status
    a = alerter(telegram.base_url)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        a.send("k", "text")
        telegram.wait_for(1)
        a.close()
    assert (a.stats.sent, a.stats.failed) == (0, 1)
    failures = [r.getMessage() for r in caplog.records if "telegram alert failed" in r.getMessage()]
    assert failures == [f"telegram alert failed: HTTP {status}"]
    assert_no_credentials(caplog.text)


def test_a_timeout_is_a_failure_not_an_exception(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.hang = True
    a = alerter(telegram.base_url, timeout_s=0.3)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        a.send("k", "text")
        a.close(timeout_s=10.0)
    assert (a.stats.sent, a.stats.failed) == (0, 1)
    assert any("telegram alert failed" in r.getMessage() for r in caplog.records)
    assert_no_credentials(caplog.text)


def test_an_unreachable_telegram_is_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = alerter(f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        a.send("k", "text")
        a.close(timeout_s=10.0)
    assert a.stats.failed == 1
    assert "telegram alert failed" in caplog.text
    assert_no_credentials(caplog.text)


def assert_no_credentials(text: str) -> None:
    assert TOKEN not in text
    assert "sendMessage" not in text
    assert "/bot" not in text


def test_long_texts_are_cut_to_the_api_limit(telegram: FakeTelegram) -> None:
    a = alerter(telegram.base_url)
    a.send("big", "x" * 10_000)
    ((_, body),) = telegram.wait_for(1)
    a.close()
    assert len(body["text"]) == TELEGRAM_MAX_TEXT


def test_after_close_alerts_still_reach_the_log(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    a = alerter(telegram.base_url)
    a.close()
    a.close()  # twice is harmless
    with caplog.at_level(logging.INFO, logger=LOGGER):
        a.send("late", "after shutdown")
    assert "ALERT [late] after shutdown" in caplog.text
    assert telegram.received == []


def test_log_alerter_levels(caplog: pytest.LogCaptureFixture) -> None:
    a = LogAlerter()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        a.send("a", "warned", level="WARNING")
        a.send("b", "unknown level defaults to error", level="loud")
        a.send("c", "info", level="info")
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        (logging.WARNING, "ALERT [a] warned"),
        (logging.ERROR, "ALERT [b] unknown level defaults to error"),
        (logging.INFO, "ALERT [c] info"),
    ]
    assert a.stats.sent == 3
    a.close()


@pytest.mark.parametrize(
    ("env", "telegram_expected"),
    [
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT}, True),
        ({"TELEGRAM_BOT_TOKEN": TOKEN}, False),
        ({"TELEGRAM_CHAT_ID": CHAT}, False),
        ({"TELEGRAM_BOT_TOKEN": " ", "TELEGRAM_CHAT_ID": CHAT}, False),
        ({}, False),
    ],
)
def test_build_alerter_picks_telegram_only_with_both_credentials(
    env: dict[str, str], telegram_expected: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        a = build_alerter(AlertsConfig(telegram_base_url="http://127.0.0.1:9"), env, FakeClock())
    try:
        assert isinstance(a, TelegramAlerter) is telegram_expected
        assert isinstance(a, LogAlerter) is not telegram_expected
    finally:
        a.close(timeout_s=0.1)
    assert TOKEN not in caplog.text


def test_build_alerter_uses_the_config_values(telegram: FakeTelegram) -> None:
    config = AlertsConfig(
        telegram_token_env="MY_TOKEN",
        telegram_chat_id_env="MY_CHAT",
        telegram_base_url=telegram.base_url,
    )
    a = build_alerter(config, {"MY_TOKEN": TOKEN, "MY_CHAT": "77"}, FakeClock())
    a.send("k", "via config")
    ((path, body),) = telegram.wait_for(1)
    a.close()
    assert path == f"/bot{TOKEN}/sendMessage"
    assert body["chat_id"] == "77"


def test_url_passwords_never_reach_telegram(telegram: FakeTelegram) -> None:
    # Telegram is outside the log's redaction: an error text quoting a URL is masked before it goes.
    a = alerter(telegram.base_url)
    a.send("ledger", "ledger postgresql://arb:pw-Secret-9@db:5432/arb failed; redis://:rd-Secret-8@cache/0")
    ((_, body),) = telegram.wait_for(1)
    a.close()
    assert (
        body["text"] == "[ERROR] ledger: ledger postgresql://arb:***@db:5432/arb failed; redis://:***@cache/0"
    )


def test_the_fanout_sends_each_alert_to_telegram_and_the_redis_stream_passwords_masked(
    telegram: FakeTelegram,
) -> None:
    # A real Redis (db 12, a prefix of this test's own): the stream is outside the log's redaction.
    config = RedisConfig(
        enabled=True, url="redis://127.0.0.1:6379/12", key_prefix=f"test-fanout-{uuid.uuid4().hex[:12]}"
    )
    redis = RedisState.from_config(config, "main", SystemClock())
    fanout = AlertFanout(alerter(telegram.base_url), redis.publish)
    try:
        fanout.send("storage", "ledger postgresql://bot:s3cret@127.0.0.1/x unreachable", "CRITICAL")
        fanout.send("start", "main started in mock mode", "INFO")
        texts = [body["text"] for _, body in telegram.wait_for(2)]
        events = [(e["kind"], e["payload"]) for e in redis.events()]
    finally:
        fanout.close()
        redis.close()
        client = redis_py.Redis.from_url("redis://127.0.0.1:6379/12")
        client.delete(redis.events_key)
        client.close()
    assert texts == [
        "[CRITICAL] storage: ledger postgresql://bot:***@127.0.0.1/x unreachable",
        "[INFO] start: main started in mock mode",
    ]
    assert events == [
        ("alert", {"key": "storage", "text": "ledger postgresql://bot:***@127.0.0.1/x unreachable",
                   "level": "CRITICAL"}),
        ("alert", {"key": "start", "text": "main started in mock mode", "level": "INFO"}),
    ]  # fmt: skip
