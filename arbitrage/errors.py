"""The bot's exception tree.

    ArbitrageError
    ├── ConfigError            invalid or missing configuration (exit 2)
    ├── LiveRefused            a live guard failed (exit 4)
    ├── AlreadyRunning         another bot holds this ledger or data dir (exit 2)
    ├── InvalidTransition      an order event that the state machine does not allow
    ├── LedgerError            the ledger failed or refused a read or write
    │   ├── LedgerUnavailable      cannot open it: bad URL, missing driver, server unreachable
    │   └── DuplicateOrder         an order with that client order id is already recorded
    └── VenueError             anything a venue said or failed to say
        ├── TemporaryVenueError    network, timeout, rate limit, 5xx: retry reads with backoff
        │   ├── RateLimited        429/418, with the venue's Retry-After when it gave one
        │   │   └── PausedByVenue      not sent: inside the venue's Retry-After window
        │   ├── VenueUnavailable   not sent (breaker open) or a failed probe: the breaker at work
        │   └── ReadTooLate        not answered within the tick's read budget: stale this tick
        ├── UnknownOrderOutcome    a create call whose result is unknown: never resend, look it up
        └── PermanentVenueError    insufficient funds, invalid order, bad key: never retried

A venue's refusal of an order is not an exception: it comes back as a REJECTED report, and the
order takes the domain event OrderRejected (arbitrage.domain.orders).
"""

from __future__ import annotations


class ArbitrageError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(ArbitrageError):
    """The configuration cannot be used; each line of the message names one problem."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class LiveRefused(ArbitrageError):
    """Live trading was refused; `failed` names every guard that did not hold."""

    def __init__(self, failed: list[str]) -> None:
        self.failed = list(failed)
        super().__init__("live trading refused: " + "; ".join(self.failed))


class AlreadyRunning(ArbitrageError):
    """Another bot runs on this ledger or data dir; the message names its pid and host."""


class InvalidTransition(ArbitrageError):
    """An order event that is not allowed from the order's current state."""


class VenueError(ArbitrageError):
    """A venue call failed."""

    def __init__(self, venue: str, message: str) -> None:
        self.venue = venue
        super().__init__(f"{venue}: {message}")


class TemporaryVenueError(VenueError):
    """Worth retrying later: network fault, timeout, 5xx, maintenance."""


class RateLimited(TemporaryVenueError):
    """The venue asked us to slow down; retry_after_s is its Retry-After when given."""

    def __init__(self, venue: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(venue, message)
        self.retry_after_s = retry_after_s


class VenueUnavailable(TemporaryVenueError):
    """The venue is known to be down: its circuit breaker refused the call (nothing was sent), or
    the half-open probe failed. The breaker at work, not a new fault: the caller skips the venue
    for now and does not count it as an error."""


class PausedByVenue(RateLimited, VenueUnavailable):
    """Not sent: the venue's Retry-After window is still running (calling inside it earns a ban)."""


class ReadTooLate(TemporaryVenueError):
    """A read the tick's budget had no time for, or whose answer did not come before the deadline:
    the book is stale for this tick. Not the venue's fault, and not an error of the bot."""


class UnknownOrderOutcome(VenueError):
    """A create-order call whose outcome is unknown: it may have executed. Look it up, never resend."""


class PermanentVenueError(VenueError):
    """Not worth retrying: insufficient funds, invalid order, authentication."""


class LedgerError(ArbitrageError):
    """A ledger read or write failed; the failed write left nothing behind."""


class LedgerUnavailable(LedgerError):
    """The ledger cannot be opened: bad URL, missing driver, unreachable server, newer schema."""


class DuplicateOrder(LedgerError):
    """An order with this client order id is already in the ledger (never place it twice)."""
