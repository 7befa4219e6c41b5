"""A real exchange behind the Venue interface, through one synchronous ccxt client.

Every call passes the venue's circuit breaker (which also holds the venue's Retry-After), and
one call at a time reaches the ccxt client (it keeps per-request state such as the last response
headers). Reads are retried with backoff on temporary failures; a create never is: a create that
failed without an answer has an UNKNOWN outcome, looked up by client order id by the caller.
Orders are rounded to the venue's rules before they leave, and refused locally when under its
minimums. Books come from the attached stream while it is healthy, else from REST.

A tick's book reads carry its deadline: each request's timeout is capped to what is left of it,
and no retry is made that cannot finish in time (arbitrage.venues.read_deadline). The breaker's
transitions are logged and alerted here, where their cause is known: the opening once per
outage, every failed probe only logged, the closing once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import ccxt

from arbitrage.clock import Clock
from arbitrage.config import VenueConfig
from arbitrage.domain.book import BookListener, OrderBook
from arbitrage.domain.money import ZERO, MarketRules, dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState
from arbitrage.errors import (
    PausedByVenue,
    PermanentVenueError,
    RateLimited,
    ReadTooLate,
    UnknownOrderOutcome,
    VenueError,
    VenueUnavailable,
)
from arbitrage.venues.base import AlertFn
from arbitrage.venues.book_listeners import BookListeners
from arbitrage.venues.ccxt_dialects import Order, dialect_for
from arbitrage.venues.ccxt_errors import Failure, classify, reason, retry_after_s, venue_error
from arbitrage.venues.ccxt_reports import (
    base_fee,
    fees_of,
    fill_totals,
    order_report,
    quote_fee,
    to_decimal,
)
from arbitrage.venues.circuit import CircuitBreaker, Outcome
from arbitrage.venues.fills import DUPLICATE_ID, coin_fee, malformed
from arbitrage.venues.order_rate import OrderRateLimiter
from arbitrage.venues.read_deadline import attempt_timeout_s, smoothed

log = logging.getLogger("arbitrage.venues")

T = TypeVar("T")

READ_DELAYS_S = (0.1, 0.3, 0.9)  # before each retry of a read
READBACK_DELAYS_S = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # reading back an order answered before matching
DEFAULT_RATE_LIMIT_PAUSE_S = 1.0  # a 429 without Retry-After
ORDER_RATE_WAIT_S = 0.5


class BookSource(Protocol):
    """A venue's book stream (arbitrage.venues.book_stream.BookStream)."""

    @property
    def state(self) -> str: ...

    def latest(self, symbol: str) -> OrderBook | None: ...

    def note_rest_fallback(self, symbol: str) -> None: ...

    def ws_lag_ms(self) -> float | None: ...

    def describe(self) -> dict[str, object]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class CcxtVenue:
    """One ccxt exchange as a Venue; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: VenueConfig,
        exchange: Any,
        clock: Clock,
        stream: BookSource | None = None,
        *,
        secrets: Sequence[str] = (),
        read_delays_s: Sequence[float] = READ_DELAYS_S,
        readback_delays_s: Sequence[float] = READBACK_DELAYS_S,
        alert: AlertFn | None = None,
        recorders: Sequence[BookListener] = (),
    ) -> None:
        self.name = name
        self.quote = config.quote
        self.taker_fee_pct = config.taker_fee_pct
        self.exchange_id = str(exchange.id)
        self._fee_rate = dec(config.taker_fee_pct) / 100
        # Where a buy's fee is expected (venues.<name>.buy_fee_in): it sizes buys (MarketRules);
        # what each fill reports is what the bot books.
        self._buy_fee_in_base = config.buy_fee_in_base
        self._fee_place_warned = False
        self._exchange = exchange
        self._clock = clock
        self._stream = stream
        # Told of each book read over REST in the stream's stead (a stream tells them of its own).
        self._recorders = BookListeners(recorders, f"{name} REST books")
        self._secrets = tuple(s for s in secrets if s)
        self._read_delays = tuple(read_delays_s)
        self._readback_delays = tuple(readback_delays_s)
        self._dialect = dialect_for(self.exchange_id)
        self._breaker = CircuitBreaker(config.circuit_failures, config.circuit_cooldown_s, clock)
        self._cooldown_s = config.circuit_cooldown_s
        self._alert = alert
        self._timeout_s = float(exchange.timeout) / 1000.0  # the venue's own request timeout
        self._read_s: float | None = None  # smoothed duration of recent successful reads
        self._limiter = OrderRateLimiter(config.max_orders_per_s, clock, ORDER_RATE_WAIT_S)
        self._call_lock = threading.RLock()  # one request at a time on the ccxt client
        self._state_lock = threading.Lock()
        self._requested: dict[str, Decimal] = {}  # client order id -> quantity sent (this run)
        self._mids: dict[str, Decimal] = {}
        self._minimums_loaded: set[str] = set()
        self.orders_sent = 0
        self.errors = 0
        self.late_reads = 0  # reads given up at the tick's deadline
        self.last_error: str | None = None

    # Health ----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while the circuit breaker is open or half-open, or the venue's Retry-After runs."""
        return self._breaker.degraded

    @property
    def orders_last_minute(self) -> int:
        return self._limiter.orders_last_minute

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def ws_lag_ms(self) -> float | None:
        return self._stream.ws_lag_ms() if self._stream is not None else None

    def describe(self) -> dict[str, object]:
        detail: dict[str, object] = {
            "exchange": self.exchange_id,
            "feed": self._stream.state if self._stream is not None else "rest",
            "circuit": self._breaker.describe(),
            "degraded": self.degraded,
            "orders_sent": self.orders_sent,
            "orders_last_minute": self.orders_last_minute,
            "errors": self.errors,
            "late_reads": self.late_reads,
            "last_error": self.last_error,
        }
        if self._stream is not None:
            detail["stream"] = self._stream.describe()
        return detail

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        self._exchange.close()

    # Market data -----------------------------------------------------------------------------

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        streamed = self._stream.latest(symbol) if self._stream is not None else None
        if streamed is not None:
            self._note_mid(streamed)
            if not self._breaker.probe_due:
                return _trimmed(streamed, depth)
            # The breaker waits for a probe, and a healthy stream would leave it waiting for
            # ever (nothing else may call): this read goes over REST and is the probe.
            try:
                return self._rest_book(symbol, depth, deadline)
            except VenueError:
                return _trimmed(streamed, depth)
        if self._stream is not None:
            self._stream.note_rest_fallback(symbol)
        book = self._rest_book(symbol, depth, deadline)
        if self._recorders:
            self._recorders.tell(book)
        return book

    def _rest_book(self, symbol: str, depth: int, deadline: float | None) -> OrderBook:
        raw = self._read(
            "order_book", lambda: self._exchange.fetch_order_book(symbol, depth), deadline=deadline
        )
        received = self._clock.time()
        stamp = raw.get("timestamp")
        book = OrderBook(
            venue=self.name,
            symbol=symbol,
            bids=_levels(raw.get("bids"), depth),
            asks=_levels(raw.get("asks"), depth),
            exchange_ts=float(stamp) / 1000.0 if stamp else received,
            received_ts=received,
        )
        self._note_mid(book)
        return book

    def balances(self) -> dict[str, Decimal]:
        raw = self._read("balance", self._exchange.fetch_balance)
        exact = self._dialect.free_balances(raw)
        if exact is not None:
            return exact
        free = raw.get("free") or {}
        found = {str(asset): to_decimal(amount) for asset, amount in free.items()}
        return {asset: amount for asset, amount in found.items() if amount is not None}

    def load_taker_fee(self, symbol: str) -> float:
        """Use the account's real taker fee on `symbol` (Upbit orders/chance, Binance tradeFee).

        The configured taker_fee_pct stays when the venue cannot tell (no key, an error): the
        bot then warns once, since a fee it underestimates turns profitable-looking spreads into
        losses.
        """
        configured = self.taker_fee_pct
        try:
            fee = self._read("fetch_trading_fee", lambda: self._exchange.fetch_trading_fee(symbol))
            taker = float(fee["taker"]) * 100.0
        except (VenueError, KeyError, TypeError, ValueError) as err:
            log.warning(
                "%s: taker fee not read from the exchange (%s); using taker_fee_pct %.4g%% from the config",
                self.name,
                err,
                configured,
            )
            return configured
        if abs(taker - configured) > 1e-9:
            log.warning(
                "%s: the account's taker fee on %s is %.4g%%, not the configured %.4g%%; using %.4g%%",
                self.name,
                symbol,
                taker,
                configured,
                taker,
            )
        else:
            log.info("%s: taker fee %.4g%% confirmed by the exchange", self.name, taker)
        self.taker_fee_pct = taker
        self._fee_rate = dec(taker) / 100
        return taker

    def rules(self, symbol: str) -> MarketRules:
        price = None
        if self._dialect.tick_follows_price(symbol):
            price = self._mids.get(symbol)
            if price is None:
                self.order_book(symbol, 1)
                price = self._mids.get(symbol)
        return self.rules_at(symbol, price)

    def rules_at(self, symbol: str, price: Decimal | None) -> MarketRules:
        """The rules for an order at `price` (Upbit's KRW tick depends on the price itself)."""
        with self._state_lock:
            load = self._dialect.loads_minimums and bool(self._exchange.apiKey)
            load = load and symbol not in self._minimums_loaded
            self._minimums_loaded.add(symbol)
        if load:
            try:
                self._read("minimums", lambda: self._dialect.load_minimums(self._exchange, symbol))
            except VenueError as err:
                log.warning("%s: minimums of %s unreadable (%s); using the defaults", self.name, symbol, err)
        try:
            rules = self._dialect.rules(self._exchange, symbol, price)
        except Exception as err:
            raise venue_error(self.name, err, None, self._secrets) from None
        if self._buy_fee_in_base:
            rules = replace(rules, buy_fee_in_base=self._fee_rate)
        return rules

    # Orders ----------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> OrderReport:
        cid, symbol, side = request.client_order_id, request.symbol, request.side
        with self._state_lock:
            if cid in self._requested:
                return OrderReport(cid, OrderState.REJECTED, reason=DUPLICATE_ID)
            self._requested[cid] = request.qty  # spent even if refused, as an Upbit identifier is
        problem = malformed(request)
        if problem is None and symbol not in (self._exchange.markets or {}):
            problem = f"unknown market {symbol!r} on {self.exchange_id}"
        if problem is not None:
            return OrderReport(cid, OrderState.REJECTED, reason=problem)
        rules = self.rules_at(symbol, request.price)
        price = rules.round_price(request.price, side)
        qty = rules.round_qty(request.qty)
        problem = rules.check(qty, price) if price > 0 else f"price {price} is not positive"
        if problem is not None:
            return OrderReport(cid, OrderState.REJECTED, reason=f"refused before sending: {problem}")
        if not self._limiter.acquire():
            raise RateLimited(self.name, "order rate above venues.max_orders_per_s; not sent")
        params = self._dialect.create_params(cid)

        def create() -> Any:
            with self._state_lock:
                self.orders_sent += 1  # counted once the request is really made
            return self._exchange.create_order(symbol, "limit", side, float(qty), float(price), params)

        try:
            created = self._call("create_order", create)
        except VenueError:
            raise  # refused by the breaker or a Retry-After pause: never sent
        except Exception as err:
            return self._create_failed(cid, err)
        order: Order = dict(created)
        if self._dialect.reads_back or order.get("status") in ("open", None):
            order = self._read_back(symbol, cid, order)
        return self._report(symbol, cid, order)

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        order = self._read(
            "fetch_order",
            lambda: self._dialect.find(self._exchange, symbol, client_order_id),
            missing_ok=True,
        )
        return None if order is None else self._report(symbol, client_order_id, order)

    def cancel(self, symbol: str, client_order_id: str) -> OrderReport | None:
        order = self._read(
            "fetch_order",
            lambda: self._dialect.find(self._exchange, symbol, client_order_id),
            missing_ok=True,
        )
        if order is None:
            return None
        if order.get("status") not in ("open", None):
            return self._report(symbol, client_order_id, order)
        found = order
        # Not found on cancel means it finished meanwhile: the read below says how.
        self._read(
            "cancel_order", lambda: self._dialect.cancel(self._exchange, symbol, found), missing_ok=True
        )
        order = self._read("fetch_order", lambda: self._dialect.refetch(self._exchange, symbol, found))
        return self._report(symbol, client_order_id, order, cancelled_by_us=True)

    # Calls -----------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None, read: bool = False) -> T:
        """One request through the breaker; ccxt's exception comes out unchanged after bookkeeping.

        `timeout_s` below the venue's own timeout caps this request (a tick's deadline): if it
        runs out, the venue is not blamed (the breaker learns nothing) and ReadTooLate is raised.
        A `read` that fails while the breaker is open (the probe) raises VenueUnavailable: the
        outage was already counted when it began. A create never does: its outcome is unknown.
        """
        refusal = self._breaker.admit()
        if refusal is not None:
            text = f"{what} not sent: {refusal.text}"
            if refusal.rate_limited:
                raise PausedByVenue(self.name, text, refusal.wait_s)
            raise VenueUnavailable(self.name, text)
        capped = timeout_s is not None and timeout_s < self._timeout_s
        with self._call_lock:
            if capped:
                assert timeout_s is not None
                self._exchange.timeout = max(1, int(timeout_s * 1000.0))
            try:
                result = fn()
            except Exception as err:
                kind = classify(err)
                if capped and isinstance(err, ccxt.RequestTimeout):
                    self._breaker.abandoned()
                    with self._state_lock:
                        self.late_reads += 1
                    raise ReadTooLate(
                        self.name, f"{what}: no answer within the tick's read budget ({timeout_s:.3f}s left)"
                    ) from None
                wait = None
                if kind is Failure.RATE_LIMIT:
                    wait = retry_after_s(self._exchange.last_response_headers, self._clock.time())
                outcome = self._failed(what, err, kind, wait)
                if read and outcome is Outcome.STILL_OPEN:
                    raise VenueUnavailable(
                        self.name,
                        f"{what} failed while the circuit breaker is open ({reason(err, self._secrets)}); "
                        f"next probe in {self._cooldown_s:g}s",
                    ) from None
                raise
            finally:
                if capped:
                    self._exchange.timeout = int(self._timeout_s * 1000.0)
        if self._breaker.succeeded() is Outcome.RECOVERED:
            self._announce_closed(what)
        return result

    def _failed(self, what: str, err: Exception, kind: Failure, wait: float | None) -> Outcome:
        if kind is not Failure.NOT_FOUND:  # "no such order" answers a lookup; it is no fault
            text = reason(err, self._secrets)
            with self._state_lock:
                self.errors += 1
                self.last_error = f"{what}: {text}"
        if kind in (Failure.RATE_LIMIT, Failure.TEMPORARY, Failure.UNEXPECTED):
            outcome = self._breaker.failed()
        else:
            outcome = self._breaker.succeeded()  # the venue answered: it is up, it just said no
            if outcome is Outcome.RECOVERED:
                self._announce_closed(what)
        if kind is Failure.RATE_LIMIT:
            self._breaker.pause(wait if wait is not None else DEFAULT_RATE_LIMIT_PAUSE_S)
        if kind is Failure.UNEXPECTED:
            log.error("%s %s failed unexpectedly: %s", self.name, what, self.last_error, exc_info=err)
        if outcome is Outcome.OPENED:
            self._announce_open()
        elif outcome is Outcome.STILL_OPEN:
            log.info(
                "%s: %s failed while the circuit breaker is open (%s); next probe in %gs",
                self.name,
                what,
                reason(err, self._secrets),
                self._cooldown_s,
            )
        return outcome

    def _announce_open(self) -> None:
        text = (
            f"{self.name}: circuit breaker OPEN after {self._breaker.consecutive_failures} consecutive "
            f"failures (last: {self.last_error}); no new entries on {self.name} (VENUE_DEGRADED), "
            f"exits held, a probe every {self._cooldown_s:g}s"
        )
        log.warning(text)
        self._send_alert(f"circuit-open:{self.name}", text, "WARNING")

    def _announce_closed(self, what: str) -> None:
        text = (
            f"{self.name}: circuit breaker closed, {what} answered again after an outage of "
            f"{self._breaker.last_outage_s:.1f}s; trading on {self.name} resumes"
        )
        log.warning(text)
        self._send_alert(f"circuit-closed:{self.name}", text, "INFO")

    def _send_alert(self, key: str, text: str, level: str) -> None:
        if self._alert is None:
            return
        try:
            self._alert(key, text, level)
        except Exception:  # an alert channel must never break a venue call
            log.exception("%s: alert %s failed", self.name, key)

    def _read(
        self, what: str, fn: Callable[[], T], missing_ok: bool = False, deadline: float | None = None
    ) -> Any:
        """A read (or an idempotent cancel), retried with backoff on temporary failures.

        With a deadline (a tick's book reads), each request's timeout is capped to what is left
        of it, and a retry is skipped when it could not finish in time.
        """
        attempts = (0.0, *self._read_delays)
        expected = self._read_s or 0.0
        timeout = attempt_timeout_s(self._clock.monotonic(), deadline, 0.0, self._timeout_s, expected, False)
        for attempt, delay in enumerate(attempts):
            if timeout is None:
                raise ReadTooLate(self.name, f"{what} not sent: the tick's read budget is spent")
            self._clock.sleep(delay)
            started = self._clock.monotonic()
            try:
                result = self._call(what, fn, timeout if deadline is not None else None, read=True)
            except VenueError:
                raise  # refused by the breaker or a Retry-After pause, or too late: fail fast
            except Exception as err:
                kind = classify(err)
                if kind is Failure.NOT_FOUND and missing_ok:
                    return None
                # A retry the breaker would refuse only sleeps: once it opened, fail now. So does
                # one that could not finish before the deadline.
                retry = kind is Failure.TEMPORARY and attempt + 1 < len(attempts)
                if retry and not self._breaker.degraded:
                    now = self._clock.monotonic()
                    timeout = attempt_timeout_s(
                        now, deadline, attempts[attempt + 1], self._timeout_s, expected, True
                    )
                    if timeout is not None:
                        log.info("%s %s failed (%s); retrying", self.name, what, reason(err, self._secrets))
                        continue
                wait = self._breaker.paused_for_s() if kind is Failure.RATE_LIMIT else None
                raise venue_error(self.name, err, wait, self._secrets) from None
            self._read_s = smoothed(self._read_s, self._clock.monotonic() - started)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _create_failed(self, cid: str, err: Exception) -> OrderReport:
        kind = classify(err)
        text = reason(err, self._secrets)
        if kind is Failure.RATE_LIMIT:
            raise RateLimited(
                self.name, f"create of {cid} refused: {text}", self._breaker.paused_for_s()
            ) from None
        if kind in (Failure.TEMPORARY, Failure.UNEXPECTED):
            raise UnknownOrderOutcome(
                self.name, f"create of {cid} got no answer ({text}); look it up"
            ) from None
        if kind is Failure.AUTH:
            raise PermanentVenueError(self.name, f"API key refused on create of {cid}: {text}") from None
        return OrderReport(cid, OrderState.REJECTED, reason=text)

    def _read_back(self, symbol: str, cid: str, order: Order) -> Order:
        """The outcome of an order answered before matching: poll it, cancel a leftover IOC rest."""
        placed = order
        seen: Order | None = None
        for delay in self._readback_delays:
            self._clock.sleep(delay)
            try:
                seen = self._call(
                    "fetch_order", lambda: self._dialect.refetch(self._exchange, symbol, placed)
                )
            except Exception:
                if self._breaker.degraded:
                    break  # every further poll would be refused: the caller looks it up later
                continue  # counted by the breaker; keep polling within the budget
            if seen.get("status") not in ("open", None):
                return seen
        if seen is None:
            raise UnknownOrderOutcome(
                self.name, f"{cid} was placed as {placed.get('id')} but its outcome could not be read back"
            )
        try:
            self._read(
                "cancel_order", lambda: self._dialect.cancel(self._exchange, symbol, placed), missing_ok=True
            )
            return dict(
                self._read("fetch_order", lambda: self._dialect.refetch(self._exchange, symbol, placed))
            )
        except VenueError as err:
            log.warning("%s: %s still open after its read-back and not cancelled: %s", self.name, cid, err)
            return seen

    # Reports -----------------------------------------------------------------------

    def _report(self, symbol: str, cid: str, order: Order, cancelled_by_us: bool = False) -> OrderReport:
        filled, avg = fill_totals(order, self._dialect.totals(order), self._qty_step(symbol))
        fee = fee_base = ZERO
        if filled > 0:
            fees = fees_of(order)
            if fees is None:  # Binance's order query carries no fees: its trades do
                fees = self._trade_fees(symbol, order)
            fee = quote_fee(fees, symbol, avg, filled * avg, self._fee_rate)
            fee_base = self._coin_fee(order, symbol, filled, fees)
        with self._state_lock:
            requested = self._requested.get(cid)
        return order_report(order, cid, requested, filled, avg, fee, cancelled_by_us, fee_base)

    def _coin_fee(self, order: Order, symbol: str, filled: Decimal, fees: list[Any] | None) -> Decimal:
        """The fee taken in the coin itself, as the venue reported it; estimated when it did not say."""
        found = base_fee(fees, symbol)
        coin_fee_expected = self._buy_fee_in_base and order.get("side") == "buy"
        if found is None:
            return coin_fee(filled, self._fee_rate) if coin_fee_expected else ZERO
        if coin_fee_expected != (found > 0) and order.get("side") == "buy" and not self._fee_place_warned:
            self._fee_place_warned = True
            log.warning(
                "%s: a buy's fee was %s the coin bought, not as venues.%s.buy_fee_in expects; "
                "what arrived is booked as reported, and buys are sized by the setting",
                self.name,
                "taken from" if found > 0 else "not taken from",
                self.name,
            )
        return found

    def _qty_step(self, symbol: str) -> Decimal | None:
        """The market's quantity step from what ccxt loaded (no request); None if unknown."""
        try:
            return self._dialect.rules(self._exchange, symbol, None).qty_step
        except Exception:
            return None  # the report keeps the venue's own figure

    def _trade_fees(self, symbol: str, order: Order) -> list[Any] | None:
        try:
            trades = self._read("fee_trades", lambda: self._dialect.fee_trades(self._exchange, symbol, order))
        except VenueError as err:
            log.warning("%s: fees of order %s unreadable (%s); estimated", self.name, order.get("id"), err)
            return None
        return [fee for trade in trades or [] for fee in (fees_of(trade) or [])] or None

    def _note_mid(self, book: OrderBook) -> None:
        if book.best_bid is not None and book.best_ask is not None:
            self._mids[book.symbol] = dec((book.best_bid + book.best_ask) / 2)


def _levels(raw: Any, depth: int) -> tuple[tuple[float, float], ...]:
    # Upbit pairs bids and asks in one row per level, so a side shorter than the other comes
    # back padded with empty levels: drop them.
    levels = ((level[0], level[1]) for level in raw or () if len(level) >= 2)
    return tuple((float(p), float(q)) for p, q in levels if p and q and p > 0 and q > 0)[:depth]


def _trimmed(book: OrderBook, depth: int) -> OrderBook:
    if len(book.bids) <= depth and len(book.asks) <= depth:
        return book
    return OrderBook(
        book.venue, book.symbol, book.bids[:depth], book.asks[:depth], book.exchange_ts, book.received_ts
    )
