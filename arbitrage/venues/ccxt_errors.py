"""ccxt's exceptions in the bot's words: what is worth retrying, what is a refusal, what is unknown.

ccxt's tree (4.5.x) splits into ExchangeError (the venue answered and said no: refusals, bad
symbol, authentication) and OperationFailed (no usable answer: network faults, timeouts, 5xx,
rate limits, unparseable replies). A read that failed temporarily may be retried; a create that
failed temporarily has an UNKNOWN outcome, except a rate limit, which the venue refused before
placing anything. Messages are scrubbed of secrets before they reach a log or the ledger.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC
from enum import Enum
from typing import Any

import ccxt

from arbitrage.errors import PermanentVenueError, RateLimited, TemporaryVenueError, VenueError

MAX_REASON_CHARS = 300
# Signed query strings and bearer tokens that ccxt quotes in its messages (the request URL).
_SIGNED = re.compile(r"(signature|apiKey|api_key|access_key|secret|token)=[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._\-]+")


class Failure(Enum):
    RATE_LIMIT = "rate_limit"  # 429/418: nothing done, wait for Retry-After
    TEMPORARY = "temporary"  # network, timeout, 5xx, bad reply: a read may be retried
    NOT_FOUND = "not_found"  # the order is not known to the venue
    AUTH = "auth"  # the key was refused: nothing will work until the operator fixes it
    REFUSED = "refused"  # any other answer that says no (funds, filters, duplicate id, bad symbol)
    UNEXPECTED = "unexpected"  # not a ccxt error at all


def classify(err: BaseException) -> Failure:
    if isinstance(err, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return Failure.RATE_LIMIT
    if isinstance(err, ccxt.OperationFailed):
        return Failure.TEMPORARY
    if isinstance(err, ccxt.OrderNotFound):
        return Failure.NOT_FOUND
    if isinstance(err, ccxt.AuthenticationError):
        return Failure.AUTH
    if isinstance(err, ccxt.BaseError):
        return Failure.REFUSED
    return Failure.UNEXPECTED


def retry_after_s(headers: Mapping[str, Any] | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent."""
    if not headers:
        return None
    raw = None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            raw = str(value).strip()
            break
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without signed parameters, bearer tokens or any of `secrets`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _SIGNED.sub(lambda m: f"{m.group(1)}=***", text)
    return _BEARER.sub("Bearer ***", text)


def reason(err: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line for a log or an order's reason: the error's class and message, scrubbed."""
    message = " ".join(str(err).split()) or "no message"
    text = scrub(f"{type(err).__name__}: {message}", secrets)
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def venue_error(
    venue: str, err: BaseException, retry_after: float | None, secrets: Iterable[str] = ()
) -> VenueError:
    """The bot's exception for a failed read, cancel or account call."""
    kind = classify(err)
    text = reason(err, secrets)
    if kind is Failure.RATE_LIMIT:
        return RateLimited(venue, text, retry_after)
    if kind in (Failure.TEMPORARY, Failure.UNEXPECTED):
        return TemporaryVenueError(venue, text)
    return PermanentVenueError(venue, text)
