"""BookStream against the real loopback simulator: real ccxt.pro clients over real WebSockets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from arbitrage.clock import SystemClock
from arbitrage.config import MarketDataConfig
from arbitrage.errors import ConfigError
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.sim.urls import sim_options, sim_urls
from arbitrage.venues.book_stream import BookStream
from tests.waiting import wait_until

SIM_SEED = 11

VENUES = [("binance", "BTC/USDT"), ("upbit", "BTC/KRW")]
FAST = MarketDataConfig(stale_after_s=1.0, recover_every_s=1.0, ws_error_threshold=3)
LOGGER = "arbitrage.venues.stream"


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, key: str, text: str) -> None:
        with self._lock:
            self.sent.append((key, text))


@pytest.fixture
def make_stream(sim_server: SimServer) -> Iterator[Callable[..., tuple[BookStream, Alerts]]]:
    made: list[BookStream] = []

    def make(venue: str, symbols: list[str], config: MarketDataConfig = FAST) -> tuple[BookStream, Alerts]:
        alerts = Alerts()
        ccxt_config: dict[str, Any] = {
            "urls": sim_urls(venue, sim_server.base_url),
            "options": sim_options(venue),
            "timeout": 3000,
            "enableRateLimit": False,
        }
        stream = BookStream(venue, venue, ccxt_config, symbols, 10, config, SystemClock(), alerts)
        made.append(stream)
        return stream, alerts

    yield make
    for stream in made:
        stream.stop()


def healthy(stream: BookStream, symbol: str) -> Callable[[], bool]:
    return lambda: stream.state == "stream" and stream.latest(symbol) is not None


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_streams_books_in_the_domain_shape(
    make_stream: Callable[..., tuple[BookStream, Alerts]], venue: str, symbol: str
) -> None:
    stream, alerts = make_stream(venue, [symbol])
    assert stream.latest(symbol) is None  # nothing before start
    stream.start()
    wait_until(healthy(stream, symbol), 30, "a first book")
    wait_until(lambda: stream.ws_lag_ms() is not None, 30, "a timestamped update")

    book = stream.latest(symbol)
    assert book is not None
    assert (book.venue, book.symbol) == (venue, symbol)
    assert 0 < len(book.bids) <= 10 and 0 < len(book.asks) <= 10
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    assert book.best_bid is not None and book.best_ask is not None and book.best_bid < book.best_ask
    assert all(isinstance(x, float) and x > 0 for level in book.bids + book.asks for x in level)
    assert abs(book.received_ts - time.time()) < 5
    assert book.exchange_ts <= book.received_ts + 1
    lag = stream.ws_lag_ms()
    assert lag is not None and 0 <= lag < 2000
    assert stream.latest("ETH/NOPE") is None

    first = book
    wait_until(lambda: stream.latest(symbol) is not first, 15, "a newer book")

    info = stream.describe()
    assert info["state"] == "stream" and info["venue"] == venue
    assert info["errors"] == 0 and info["reconnects"] == 0 and info["rest_fallbacks"] == 0
    ages = info["last_update_age_s"]
    assert isinstance(ages, dict) and ages[symbol] is not None and ages[symbol] < 5
    stream.note_rest_fallback(symbol)
    assert stream.describe()["rest_fallbacks"] == 1
    assert alerts.sent == []


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_dropped_and_refused_stream_falls_back_to_poll_then_restores(
    make_stream: Callable[..., tuple[BookStream, Alerts]],
    sim: SimControl,
    caplog: pytest.LogCaptureFixture,
    venue: str,
    symbol: str,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    stream, alerts = make_stream(venue, [symbol])
    stream.start()
    wait_until(healthy(stream, symbol), 30, "a first book")

    sim.refuse_streams(2.5, venue=venue)  # the reconnects that follow the drop are refused too
    assert sim.drop_streams(venue, abort=True) >= 1
    wait_until(lambda: stream.state == "poll", 30, "the fallback to poll")
    assert stream.latest(symbol) is None
    assert stream.ws_lag_ms() is None
    assert [key for key, _ in alerts.sent] == [f"market-data:{venue}"]
    assert venue in alerts.sent[0][1]

    # restore attempts every recover_every_s; the first after the refusal window succeeds
    wait_until(healthy(stream, symbol), 30, "the stream restored")
    assert stream.latest(symbol) is not None
    info = stream.describe()
    assert info["errors"] >= 1 and info["reconnects"] >= 1
    assert info["fallbacks"] == 1 and info["restores"] == 1
    assert len(alerts.sent) == 1  # one alert for the whole episode, none for the failed attempts
    # The stream thread logs the restore just after its first book lands: wait for the line too.
    wait_until(
        lambda: any("stream restored" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO),
        30,
        "the restore logged",
    )
    assert len(warnings_of(caplog)) == 1


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_silent_stream_goes_stale_to_poll_and_resumes(
    make_stream: Callable[..., tuple[BookStream, Alerts]], sim: SimControl, venue: str, symbol: str
) -> None:
    stream, alerts = make_stream(venue, [symbol])
    stream.start()
    wait_until(healthy(stream, symbol), 30, "a first book")

    sim.pause_streams(True, venue=venue)  # connections stay open but nothing arrives
    wait_until(lambda: stream.state == "poll", 30, "the stale stream to fall back")
    assert stream.latest(symbol) is None
    assert "no book update" in str(stream.describe()["last_fallback_reason"])
    # Restore attempts during the silence must not bring the stream back: wait until one has run
    # its course (the session after it started), however slowly a loaded machine gets there.
    wait_until(lambda: stream.describe()["reconnects"] >= 3, 30, "a failed restore attempt in the silence")
    assert stream.state == "poll"

    sim.pause_streams(False, venue=venue)
    wait_until(healthy(stream, symbol), 30, "the stream restored after the silence")
    assert len(alerts.sent) == 1
    assert stream.describe()["reconnects"] >= 2


def test_a_frozen_market_is_stale_on_its_own_while_the_venue_streams(
    make_stream: Callable[..., tuple[BookStream, Alerts]], sim: SimControl
) -> None:
    stream, alerts = make_stream("upbit", ["BTC/KRW", "ETH/KRW"])
    stream.start()
    wait_until(
        lambda: healthy(stream, "BTC/KRW")() and stream.latest("ETH/KRW") is not None, 30, "both books"
    )

    sim.freeze("upbit", "KRW-ETH")
    wait_until(lambda: stream.latest("ETH/KRW") is None, 30, "the frozen book to go stale")
    assert stream.state == "stream"
    assert stream.latest("BTC/KRW") is not None
    ages = stream.describe()["last_update_age_s"]
    assert isinstance(ages, dict) and ages["ETH/KRW"] >= FAST.stale_after_s - 0.01  # ages are rounded
    assert alerts.sent == []

    sim.freeze("upbit", "KRW-ETH", frozen=False)
    wait_until(lambda: stream.latest("ETH/KRW") is not None, 30, "the thawed book")


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_stop_closes_everything_and_is_idempotent(
    make_stream: Callable[..., tuple[BookStream, Alerts]], venue: str, symbol: str
) -> None:
    before = set(threading.enumerate())
    stream, _ = make_stream(venue, [symbol])
    stream.stop()  # before start: nothing to stop
    stream, _ = make_stream(venue, [symbol])
    stream.start()
    stream.start()  # a second start does not start a second thread
    wait_until(healthy(stream, symbol), 30, "a first book")
    assert [t.name for t in threading.enumerate() if t.name == f"book-stream-{venue}"] == [
        f"book-stream-{venue}"
    ]

    started = time.monotonic()
    stream.stop()
    assert time.monotonic() - started < 5
    assert [t for t in threading.enumerate() if t not in before] == []
    stream.stop()
    with pytest.raises(RuntimeError):
        stream.start()


def test_websocket_off_means_poll_without_a_thread(
    make_stream: Callable[..., tuple[BookStream, Alerts]],
) -> None:
    before = set(threading.enumerate())
    stream, alerts = make_stream("upbit", ["BTC/KRW"], MarketDataConfig(use_websocket=False))
    stream.start()
    assert stream.state == "poll"
    assert stream.latest("BTC/KRW") is None and stream.ws_lag_ms() is None
    assert [t for t in threading.enumerate() if t not in before] == []
    assert alerts.sent == []
    stream.stop()


def test_rejects_what_it_cannot_stream() -> None:
    with pytest.raises(ConfigError):
        BookStream("x", "no-such-exchange", {}, ["BTC/USDT"], 10, FAST, SystemClock())
    with pytest.raises(ConfigError):
        BookStream("binance", "binance", {}, [], 10, FAST, SystemClock())
