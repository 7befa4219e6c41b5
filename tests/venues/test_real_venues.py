"""build_real_venues: paper and live venues from the config, against the simulator; refusals by key."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.errors import ConfigError, TemporaryVenueError
from arbitrage.sim.server import SimServer
from arbitrage.sim.urls import sim_options, sim_urls
from arbitrage.venues.ccxt_venue import CcxtVenue
from arbitrage.venues.paper import PaperVenue
from arbitrage.venues.real import build_real_venues

SIM_SEED = 41

ENV = {
    "UP_KEY": "real-up-key",
    "UP_SECRET": "real-up-secret",
    "BN_KEY": "real-bn-key",
    "BN_SECRET": "real-bn-s",
}


def app_config(
    base_url: str, mode: str, websocket: bool = False, venue_extra: dict[str, dict[str, Any]] | None = None
) -> AppConfig:
    keys = {"upbit": ("UP_KEY", "UP_SECRET"), "binance": ("BN_KEY", "BN_SECRET")}
    venues: dict[str, Any] = {}
    for name, quote in (("upbit", "KRW"), ("binance", "USDT")):
        venues[name] = {
            "exchange": name, "quote": quote, "api_key_env": keys[name][0], "api_secret_env": keys[name][1],
            "urls": sim_urls(name, base_url), "options": sim_options(name), "balances": {quote: 1000.0},
            **(venue_extra or {}).get(name, {}),
        }  # fmt: skip
    return parse_config(
        {"mode": {"current": mode}, "venues": venues, "market_data": {"use_websocket": websocket}}
    )


def test_paper_venues_read_public_data_only(sim_server: SimServer) -> None:
    venues = build_real_venues(app_config(sim_server.base_url, "paper"), SystemClock(), ENV)
    try:
        assert venues.concurrent_legs
        upbit = venues.by_name["upbit"]
        assert isinstance(upbit, PaperVenue)
        assert upbit.describe()["feed"] == "paper" and not upbit.degraded
        assert upbit.order_book("BTC/KRW", 3).bids and upbit.balances() == {"KRW": 1000}
        market = upbit.describe()["market_data"]
        assert isinstance(market, dict) and market["feed"] == "rest"
    finally:
        venues.close()


def test_live_venues_trade_with_the_keys_from_the_environment(sim_server: SimServer) -> None:
    venues = build_real_venues(app_config(sim_server.base_url, "live"), SystemClock(), ENV)
    try:
        binance = venues.by_name["binance"]
        assert isinstance(binance, CcxtVenue)
        assert binance.balances()["USDT"] == 250_000  # the simulator's account for this key
        assert binance.orders_last_minute == 0 and binance.degraded is False
    finally:
        venues.close()


def test_live_venues_use_the_accounts_real_taker_fee(
    sim_server: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The config says 0.3% and 0.2%; the simulator's accounts pay 0.05% (Upbit) and 0.1% (Binance).
    extra = {"upbit": {"taker_fee_pct": 0.3}, "binance": {"taker_fee_pct": 0.2}}
    with caplog.at_level(logging.WARNING, logger="arbitrage.venues"):
        venues = build_real_venues(
            app_config(sim_server.base_url, "live", venue_extra=extra), SystemClock(), ENV
        )
    try:
        assert venues.by_name["upbit"].taker_fee_pct == pytest.approx(0.05)
        assert venues.by_name["binance"].taker_fee_pct == pytest.approx(0.1)
        assert sum("not the configured" in r.getMessage() for r in caplog.records) == 2
    finally:
        venues.close()
    paper = build_real_venues(app_config(sim_server.base_url, "paper", venue_extra=extra), SystemClock(), ENV)
    try:
        assert paper.by_name["upbit"].taker_fee_pct == pytest.approx(0.3)  # no key in paper mode
    finally:
        paper.close()


def test_websocket_books_come_from_the_stream_module(sim_server: SimServer) -> None:
    venues = build_real_venues(app_config(sim_server.base_url, "paper", websocket=True), SystemClock(), ENV)
    try:
        market = venues.by_name["binance"].describe()["market_data"]
        assert isinstance(market, dict) and market["feed"] in ("stream", "poll") and "stream" in market
        assert venues.by_name["binance"].order_book("BTC/USDT", 3).asks  # streamed or polled
    finally:
        venues.close()


@pytest.mark.parametrize(
    ("mode", "extra", "env", "key"),
    [
        ("paper", {"upbit": {"sandbox": True}}, ENV, "venues.upbit.sandbox"),
        ("paper", {"binance": {"options": {"maxRetriesOnFailure": 2}}}, ENV,
         "venues.binance.options.maxRetriesOnFailure"),
        ("live", {}, {k: v for k, v in ENV.items() if k != "UP_KEY"}, "UP_KEY"),
        ("live", {"binance": {"api_secret_env": None}}, ENV, "venues.binance.api_secret_env"),
    ],
)  # fmt: skip
def test_unusable_venue_settings_are_config_errors_naming_the_key(
    sim_server: SimServer, mode: str, extra: dict[str, dict[str, Any]], env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        build_real_venues(app_config(sim_server.base_url, mode, venue_extra=extra), SystemClock(), env)
    assert key in str(raised.value)
    assert not any(secret in str(raised.value) for secret in ENV.values())


def test_a_market_the_exchange_does_not_list_is_a_config_error(sim_server: SimServer) -> None:
    config = app_config(sim_server.base_url, "paper").model_copy(update={"symbols": ["BTC", "DOGE"]})
    with pytest.raises(ConfigError, match="lists no market DOGE/KRW"):
        build_real_venues(config, SystemClock(), ENV)


def test_an_unreachable_exchange_is_one_sentence_without_secrets() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = app_config(
        dead, "live", venue_extra={"upbit": {"timeout_ms": 500}, "binance": {"timeout_ms": 500}}
    )
    with pytest.raises(TemporaryVenueError, match="could not load upbit's markets") as raised:
        build_real_venues(config, SystemClock(), ENV)
    assert "\n" not in str(raised.value)
    assert not any(secret in str(raised.value) for secret in ENV.values())


def test_rate_limit_ms_sets_ccxts_own_limiter_and_unset_keeps_the_exchanges_default() -> None:
    import ccxt

    from arbitrage.config import VenueConfig
    from arbitrage.venues.real import client_config

    default = ccxt.binance().rateLimit
    for rate_limit_ms, expected in ((None, default), (7, 7), (0, 0)):
        vc = VenueConfig(exchange="binance", quote="USDT", rate_limit_ms=rate_limit_ms)
        config, _ = client_config("binance", vc, {}, with_keys=False)
        assert ccxt.binance(config).rateLimit == expected
