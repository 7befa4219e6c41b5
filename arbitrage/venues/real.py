"""The venues of paper and live mode: one ccxt client per venue, its book stream, the paper layer.

Imported by build_venues only in paper and live mode, so that a mock run never imports ccxt.
Paper venues read public market data only (no API keys are given to the client, so nothing
private, let alone an order, can be sent); live venues need both keys from the environment.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ccxt

from arbitrage.clock import Clock
from arbitrage.config import AppConfig, VenueConfig
from arbitrage.domain.book import BookListener
from arbitrage.errors import ConfigError, PermanentVenueError, TemporaryVenueError
from arbitrage.venues.base import AlertFn, Venue, Venues
from arbitrage.venues.ccxt_errors import reason
from arbitrage.venues.ccxt_venue import BookSource, CcxtVenue
from arbitrage.venues.paper import PaperVenue

log = logging.getLogger("arbitrage.venues")

NO_SANDBOX = ("upbit",)  # ccxt 4.5's set_sandbox_mode crashes for these: no test URLs


def build_real_venues(
    config: AppConfig,
    clock: Clock,
    env: Mapping[str, str],
    alert: AlertFn | None = None,
    listeners: Sequence[BookListener] = (),
    recorders: Sequence[BookListener] = (),
) -> Venues:
    """Every configured venue as a CcxtVenue (live) or a PaperVenue over one (paper); `listeners`
    are told of each streamed book, `recorders` of each book streamed or read over REST."""
    live = config.mode.current == "live"
    built: dict[str, Venue] = {}
    markets: list[CcxtVenue] = []
    streams: list[BookSource] = []
    try:
        for name, vc in config.venues.items():
            ccxt_config, secrets = client_config(name, vc, env, with_keys=live)
            exchange = create_exchange(name, vc, ccxt_config)
            symbols = venue_symbols(config, name)
            _check_symbols(name, vc, exchange, symbols)
            told = [*listeners, *recorders]
            stream = build_stream(config, name, vc, ccxt_config, symbols, clock, alert, told)
            market = CcxtVenue(
                name, vc, exchange, clock, stream, secrets=secrets, alert=alert, recorders=recorders
            )
            markets.append(market)
            if live:  # the fee endpoints are private: paper mode has no key and keeps the config's
                market.load_taker_fee(symbols[0])
            if stream is not None:
                streams.append(stream)
            built[name] = market if live else PaperVenue(name, vc, market, clock)
        for stream in streams:
            stream.start()  # started only once every venue could be built
    except BaseException:
        for market in markets:
            try:
                market.close()
            except Exception:  # closing must not hide why we are closing
                log.exception("closing venue %s failed", market.name)
        raise
    return Venues(built, concurrent_legs=True, remote_reads=True, signals_books=bool(streams))


def client_config(
    name: str, vc: VenueConfig, env: Mapping[str, str], with_keys: bool
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ccxt constructor config (also what the book stream gets) and the secrets in it."""
    options = copy.deepcopy(vc.options)
    retries = options.get("maxRetriesOnFailure", 0)
    if retries not in (0, None):
        raise ConfigError(
            f"venues.{name}.options.maxRetriesOnFailure: expected 0 (ccxt would resend orders whose "
            f"outcome is unknown), found {retries!r}"
        )
    options["maxRetriesOnFailure"] = 0
    options["maxRetriesOnFailureDelay"] = 0
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": vc.timeout_ms, "options": options}
    if vc.rate_limit_ms is not None:
        config["rateLimit"] = vc.rate_limit_ms
    if vc.urls:
        config["urls"] = copy.deepcopy(vc.urls)  # ccxt deep-merges them into its own
    secrets: tuple[str, ...] = ()
    if with_keys:
        key = _secret(name, "api_key_env", vc.api_key_env, env)
        secret = _secret(name, "api_secret_env", vc.api_secret_env, env)
        config.update(apiKey=key, secret=secret)
        secrets = (key, secret)
    return config, secrets


def _secret(venue: str, field: str, var: str | None, env: Mapping[str, str]) -> str:
    if not var:
        raise ConfigError(f"venues.{venue}.{field}: name the environment variable that holds it (live mode)")
    value = env.get(var, "").strip()
    if not value:
        raise ConfigError(f"venues.{venue}.{field}: set {var} in the environment (live mode needs it)")
    return value


def create_exchange(name: str, vc: VenueConfig, ccxt_config: dict[str, Any]) -> Any:
    """The ccxt client with its markets loaded, in sandbox mode when configured."""
    factory = getattr(ccxt, vc.exchange, None)
    if factory is None:
        raise ConfigError(f"venues.{name}.exchange: ccxt has no exchange {vc.exchange!r}")
    exchange = factory(ccxt_config)
    if vc.sandbox:
        if vc.exchange in NO_SANDBOX:
            raise ConfigError(
                f"venues.{name}.sandbox: {vc.exchange} has no ccxt sandbox; set it false and point "
                f"venues.{name}.urls at a test server instead"
            )
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise ConfigError(f"venues.{name}.sandbox: {vc.exchange} has no sandbox in ccxt") from None
    secrets = [str(v) for k, v in ccxt_config.items() if k in ("apiKey", "secret") and v]
    try:
        exchange.load_markets()
    except ccxt.AuthenticationError as err:
        raise PermanentVenueError(
            name, f"{vc.exchange} refused the API key while loading markets ({reason(err, secrets)})"
        ) from None
    except ccxt.BaseError as err:
        raise TemporaryVenueError(
            name, f"could not load {vc.exchange}'s markets ({reason(err, secrets)})"
        ) from None
    return exchange


def venue_symbols(config: AppConfig, venue: str) -> list[str]:
    """The markets the bot reads on `venue`: every asset in its quote, and the FX market if there."""
    symbols = [config.venue_symbol(venue, asset) for asset in config.symbols]
    if config.fx.source == "venue" and config.fx.venue == venue and config.fx.symbol not in symbols:
        symbols.append(config.fx.symbol)
    return symbols


def _check_symbols(name: str, vc: VenueConfig, exchange: Any, symbols: list[str]) -> None:
    missing = [s for s in symbols if s not in (exchange.markets or {})]
    if missing:
        raise ConfigError(
            f"venues.{name}: {vc.exchange} lists no market {', '.join(missing)} "
            f"(check symbols, venues.{name}.quote and fx.symbol)"
        )


def build_stream(
    config: AppConfig,
    name: str,
    vc: VenueConfig,
    ccxt_config: dict[str, Any],
    symbols: list[str],
    clock: Clock,
    alert: AlertFn | None,
    listeners: Sequence[BookListener] = (),
) -> BookSource | None:
    """The venue's WebSocket book stream, or None (REST polling) when off or not available."""
    if not config.market_data.use_websocket:
        log.warning(
            "venue %s (%s): books by REST polling (market_data.use_websocket is off)", name, vc.exchange
        )
        return None
    from arbitrage.venues.book_stream import BookStream  # imports ccxt.pro: only with the stream on

    stream = BookStream(
        name,
        vc.exchange,
        ccxt_config,
        symbols,
        config.loop.book_depth,
        config.market_data,
        clock,
        alert,
        listeners=listeners,
    )
    log.info("venue %s (%s): books from the WebSocket stream, REST when it fails", name, vc.exchange)
    return stream
