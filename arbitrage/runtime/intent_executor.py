"""Carries out the intents an engine returned, right after it returned them (step 5 of the tick
in docs/ARCHITECTURE.md): exits first, never blocked by entry limits but held while a leg's venue is
degraded; dust exits closed into the residual book; then the entries still allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from arbitrage.clock import Clock
from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.decisions import EntryIntent, ExitIntent
from arbitrage.runtime.market_feed import MarketFeed
from arbitrage.runtime.pair_kinds import ENTRIES, EXITS, IntentT, PairKind, WrittenPair
from arbitrage.runtime.pair_trader import PairTrader
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger import Ledger

exec_log = logging.getLogger("arbitrage.execution")

# The log lines of a kind's pairs that were not written, and of one that failed.
EXIT_TEXTS = ("exits of %s not written", "exit of %s failed")
ENTRY_TEXTS = ("entries %s not written", "entry %s failed")


class EntryGate(Protocol):
    """What an entry must pass besides the engines, right before it is written and sent: the
    fleet's shared risk budget (runtime.shared_budget)."""

    def admit(self, entries: Sequence[EntryIntent]) -> list[EntryIntent]:
        """The entries that may go out; the others are logged and counted as rejections."""

    def written(self, pairs: Sequence[WrittenPair[EntryIntent]]) -> None: ...

    def unsent(self) -> None:
        """The admitted entries were not written."""

    def concluded(self, group: str) -> None:
        """An admitted entry was booked, withdrawn or failed."""

    def exits_done(self, venues: Sequence[str]) -> None: ...


class IntentExecutor:
    def __init__(
        self,
        max_book_age_ms: float,
        clock: Clock,
        feed: MarketFeed,
        trader: PairTrader,
        state: BotState,
        ledger: Ledger,
        stopping: Callable[[], bool],
        entry_gate: EntryGate | None = None,
    ) -> None:
        self._max_book_age_ms = max_book_age_ms
        self._clock = clock
        self._feed = feed
        self._trader = trader
        self._state = state
        self._ledger = ledger
        self._stopping = stopping
        self._gate = entry_gate

    def carry_out(self, intents: list[EntryIntent | ExitIntent], tick: int, snapshot: MarketSnapshot) -> int:
        """Execute intents; exits first (never blocked), entries only while entries are allowed.

        Each kind is written in one commit before its first order goes out (one fsync for the
        tick's pairs, not one each), then sent pair by pair; an entry that may no longer go
        out when its turn comes is withdrawn unsent. What the venues answer is booked pair by
        pair in one ledger batch: one commit, made before the entries are written and at the end.
        """
        with self._ledger.batch():
            return self._carry_out_batch(intents, tick, snapshot)

    def _carry_out_batch(
        self, intents: list[EntryIntent | ExitIntent], tick: int, snapshot: MarketSnapshot
    ) -> int:
        errors = 0
        exits: dict[str, ExitIntent] = {}
        for intent in intents:
            if isinstance(intent, ExitIntent) and intent.position_id not in exits:
                why = self._exit_blocked(intent)
                if why is None:
                    exits[intent.position_id] = intent
                else:
                    exec_log.debug("exit of %s held: %s", intent.position_id, why)
        for dust in [i for i in exits.values() if i.sell is None or i.buy is None]:
            # Below what the venues trade: closed into the residual book, no venue call.
            del exits[dust.position_id]
            try:
                self._trader.hedger.close_dust(dust)
            except Exception:
                errors += 1
                exec_log.exception("dust close of %s failed", dust.position_id)
        errors += self._trade(EXITS, list(exits.values()), tick, self._exit_blocked, _exit_name, EXIT_TEXTS)
        if self._gate is not None and exits:
            sent = [leg.venue for i in exits.values() for leg in (i.sell, i.buy) if leg is not None]
            self._gate.exits_done(sent)
        entries = []
        for entry in intents:
            if isinstance(entry, EntryIntent):
                why = self._held_back(entry, snapshot)
                if why is None:
                    entries.append(entry)
                else:
                    exec_log.info("entry %s skipped: %s", entry.opportunity.key, why)
        if self._gate is not None and entries:
            entries = self._gate.admit(entries)
        return errors + self._trade(
            ENTRIES,
            entries,
            tick,
            lambda entry: self._held_back(entry, snapshot),
            _entry_name,
            ENTRY_TEXTS,
            self._gate,
        )

    def _trade(
        self,
        kind: PairKind[IntentT],
        intents: list[IntentT],
        tick: int,
        held: Callable[[IntentT], str | None],
        name: Callable[[IntentT], str],
        texts: tuple[str, str],
        gate: EntryGate | None = None,
    ) -> int:
        """Write the pairs of one kind in one commit, then send them one by one (each withdrawn
        unsent if `held` says it may no longer go out); returns the live errors. `gate` (entries
        only) is told what was written and when each pair concluded."""
        if not intents:
            return 0
        try:
            written = self._trader.write(kind, intents, tick)
        except Exception:
            exec_log.exception(texts[0], ", ".join(name(i) for i in intents))
            if gate is not None:
                gate.unsent()
            return 1
        if gate is not None:
            gate.written(written)  # type: ignore[arg-type]  # entries only
        errors = 0
        for pair in written:
            # Asked again for each: the pairs before it may have taken seconds.
            why = held(pair.intent)
            try:
                if why is None:
                    self._trader.send(pair)
                else:
                    self._trader.withdraw(pair, why)
            except Exception:
                errors += 1
                exec_log.exception(texts[1], name(pair.intent))
            finally:
                if gate is not None:
                    gate.concluded(pair.group)
        return errors

    def _exit_blocked(self, intent: ExitIntent) -> str | None:
        """Why an exit must not go out now: a leg's venue is degraded, so only the other leg could
        fill, to be unwound at a cost and tried again. Exits are never held by entry limits."""
        statuses = self._feed.venue_statuses()
        venues = [leg.venue for leg in (intent.sell, intent.buy) if leg is not None]
        for venue in venues:
            status = statuses.get(venue)
            if status is not None and status.degraded:
                return f"{venue} is degraded (circuit breaker open or paused)"
        return None

    def _held_back(self, entry: EntryIntent, snapshot: MarketSnapshot) -> str | None:
        """Why an entry must not go out now (entries blocked, stopping, overtaken), or None."""
        if self._state.entries_blocked or self._stopping():
            return self._state.entries_blocked or "stopping"
        return self._overtaken(entry, snapshot)

    def _overtaken(self, entry: EntryIntent, snapshot: MarketSnapshot) -> str | None:
        """Why an entry approved at the start of the tick must not go out now, or None.

        The orders before it in this tick can take seconds (a create that timed out, its
        lookups, the repairs): meanwhile a venue may have opened its breaker or been told to
        pause (a 429), which would leave a single leg, and its books may have aged past what
        safety accepts.
        """
        legs = (entry.buy.venue, entry.sell.venue)
        statuses = self._feed.venue_statuses()
        for venue in legs:
            status = statuses.get(venue)
            if status is not None and status.degraded:
                return f"{venue} became degraded after the entry was approved"
        limit = self._max_book_age_ms
        now = self._clock.time()
        for venue in legs:
            book = snapshot.book(venue, entry.opportunity.asset)
            if book is not None and book.age_ms(now) > limit:
                return f"{venue} book now {book.age_ms(now):.0f}ms old > safety.max_book_age_ms {limit:.0f}"
        return None


def _exit_name(intent: ExitIntent) -> str:
    return intent.position_id


def _entry_name(intent: EntryIntent) -> str:
    return intent.opportunity.key
