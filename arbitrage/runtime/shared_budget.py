"""A worker's side of the fleet's one risk budget (store.risk_budget): each entry is reserved in
Redis right before its orders are written and sent, and its reservation follows the position:
balances are freed when the entry concludes, exposure and slot when the position closes.

Refusals are counted and logged like safety rejections: SHARED_BUDGET_EXHAUSTED when a shared limit
is reached, REDIS_HEARTBEAT_STALE when Redis cannot answer (no new entries; exits go on).
The fleet's realized PnL of the day is a Redis counter: seeded from the ledger's day row (which
every worker books into) when the day starts, then each worker adds what it books.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal

from arbitrage.domain.book import split_symbol
from arbitrage.domain.decisions import EntryIntent
from arbitrage.domain.money import ZERO
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.pair_kinds import WrittenPair
from arbitrage.runtime.state import BotState
from arbitrage.store.risk_budget import BalanceWant, BudgetUnreachable, EntryAsk, RiskBudget

safety_log = logging.getLogger("arbitrage.safety")
log = logging.getLogger("arbitrage.fleet")

EXHAUSTED = "SHARED_BUDGET_EXHAUSTED"
UNREACHABLE = "REDIS_HEARTBEAT_STALE"


class SharedBudget:
    """The entry gate of the intent executor and a tick hook. Redis is asked at most twice a
    tick: when entries are admitted (bringing this worker's reservations up to date in the same
    round trip) and after the tick, if anything changed since."""

    def __init__(self, budget: RiskBudget, state: BotState, day_total: Callable[[str], Decimal]) -> None:
        self.budget = budget
        self._state = state
        self._day_total = day_total  # the ledger's row for a day: what every worker booked into it
        self._by_intent: dict[int, str] = {}  # id(entry) -> reservation, between admit and write
        self._by_group: dict[str, str] = {}  # position id -> reservation (in flight or open)
        self._in_flight: set[str] = set()  # groups written, not yet concluded
        self._dirty = False  # a pair concluded since Redis was last told
        self._orders: list[str] = []  # venues of orders sent without a reservation, not yet told
        self._seq = 0
        self._run = uuid.uuid4().hex[:6]  # reservation ids of a restarted worker never meet its last run's
        self._kept: frozenset[str] | None = None  # the reservations Redis holds for this worker
        self._exposures: dict[str, float] = {}  # of those, the settled ones' exposure as Redis has it
        self._day = ""
        self._reseed = False  # Redis failed since the counter was seeded: seed it again if empty
        self._pushed = ZERO  # of the day's realized PnL, what is already in the fleet's counter

    def start(self) -> None:
        """After recovery: this worker's reservations are its open positions, as the ledger says."""
        positions = self._state.positions
        self._by_group = {pid: pid for pid in positions}
        try:
            self.budget.rebuild({pid: float(p.entry_cost) for pid, p in positions.items()})
            self._kept = frozenset(positions)
            self._exposures = {pid: float(p.entry_cost) for pid, p in positions.items()}
        except BudgetUnreachable as err:
            log.warning("reservations not rebuilt at start (%s); retried after the first tick", err)
        self.budget.start_lease()
        log.info(
            "fleet budget %s: %d open position(s) reserved for %s, lease %.1fs",
            self.budget.prefix, len(positions), self.budget.instance, self.budget.lease_ms / 1000.0,
        )  # fmt: skip

    # The entry gate --------------------------------------------------------------------------

    def admit(self, entries: Sequence[EntryIntent]) -> list[EntryIntent]:
        """The entries reserved in the fleet's budget, in order; the others are logged and counted."""
        asks = []
        for entry in entries:
            self._seq += 1
            asks.append(self._ask(entry, f"{entry.opportunity.asset}-{self._run}-{self._seq}"))
        keep, realized = self._keep(), self._realized()
        try:
            news, day = self._news(keep), self._state.day
            answers = self.budget.sync_and_reserve(news, self._orders, asks, day, realized)
        except BudgetUnreachable as err:
            self._lost_redis()
            answers = [(UNREACHABLE, str(err))] * len(entries)
        else:
            self._told(keep, realized)
            answers = [None if a is None else (EXHAUSTED, f"{a[0]}: {a[1]}") for a in answers]
        admitted = []
        for entry, ask, refusal in zip(entries, asks, answers, strict=True):
            if refusal is None:
                admitted.append(entry)
                self._by_intent[id(entry)] = ask.pair
                if self._kept is not None:
                    self._kept |= {ask.pair}
                continue
            code, detail = refusal
            counters = self._state.counters
            counters.safety_rejections += 1
            counters.rejections[code] += 1
            opp = entry.opportunity
            safety_log.info("rejected %s net=%.3f%% reason=%s: %s", opp.key, opp.net_spread_pct, code, detail)
        return admitted

    def _ask(self, entry: EntryIntent, reservation: str) -> EntryAsk:
        buy, sell, asset = entry.buy, entry.sell, entry.opportunity.asset
        quote = split_symbol(buy.symbol)[1]
        status = self._state.venues.get(buy.venue)
        spend = float(buy.qty * buy.price) * (1.0 + (status.taker_fee_pct if status else 0.0) / 100.0)
        wants = (
            BalanceWant(buy.venue, quote, spend, self._held(buy.venue, quote)),
            BalanceWant(sell.venue, asset, float(sell.qty), self._held(sell.venue, asset)),
        )
        return EntryAsk(reservation, entry.opportunity.notional, wants, (buy.venue, sell.venue))

    def _held(self, venue: str, asset: str) -> float:
        return float(self._state.balances.get(venue, {}).get(asset, ZERO))

    def written(self, pairs: Sequence[WrittenPair[EntryIntent]]) -> None:
        """The admitted entries are on disk: each reservation now belongs to its pair's position."""
        for pair in pairs:
            reservation = self._by_intent.pop(id(pair.intent), None)
            if reservation is not None:
                self._by_group[pair.group] = reservation
                self._in_flight.add(pair.group)
        self.unsent()

    def unsent(self) -> None:
        """Entries admitted but never written (the write failed): their reservations go back."""
        self._by_intent.clear()

    def concluded(self, group: str) -> None:
        """An entry is booked, withdrawn or failed: a position keeps its exposure and slot, with
        the exposure it actually took, and frees its balances; anything else gives it all back."""
        self._in_flight.discard(group)
        self._dirty = True

    def exits_done(self, venues: Sequence[str]) -> None:
        """Exits went out: they count against the venues' shared order rate (told with the next
        round trip, which also frees what the positions they closed held)."""
        self._orders.extend(venues)

    # The tick hook ---------------------------------------------------------------------------

    def after_tick(self, report: TickReport) -> int | None:
        keep, realized = self._keep(), self._realized()
        # The lease's key lives as long as the worker: the lease thread finding it gone means
        # Redis lost it (a restart, or an outage longer than the lease).
        lost = self.budget.take_lost()
        if lost:
            self._lost_redis()
            realized = self._realized()
        if lost or realized or self._orders or self._dirty or frozenset(keep) != self._kept:
            try:
                self.budget.sync(self._news(keep), self._orders, self._state.day, realized)
                self._told(keep, realized)
            except BudgetUnreachable:
                self._lost_redis()  # tried again at the next tick; meanwhile the lease runs
        return None

    def finish(self) -> None:
        """At the end of a run: release what the shutdown closed; the positions left open keep
        their slots and exposure in the fleet's budget until this worker starts again."""
        self._by_intent.clear()
        self._in_flight.clear()
        keep, realized = self._keep(), self._realized()
        with contextlib.suppress(BudgetUnreachable):
            self.budget.sync(keep, self._orders, self._state.day, realized)

    def _keep(self) -> dict[str, float | None]:
        """What Redis should hold for this worker: a reservation for each position open (its entry
        cost, no balances: its orders are done) or in flight (as reserved); a position closed by an
        exit, dust or a reduction is dropped here."""
        positions = self._state.positions
        for group in [g for g in self._by_group if g not in positions and g not in self._in_flight]:
            del self._by_group[group]
        keep: dict[str, float | None] = {}
        for group, reservation in self._by_group.items():
            position = positions.get(group)
            if group in self._in_flight or position is None:
                keep[reservation] = None
            else:
                keep[reservation] = float(position.entry_cost)
        keep.update((r, None) for r in self._by_intent.values())
        return keep

    def _news(self, keep: dict[str, float | None]) -> dict[str, float | None]:
        """`keep` as sent: a settled exposure Redis already has goes as None (unchanged), so a
        round trip writes only what changed, not every open position again."""
        told = self._exposures
        return {r: None if x is not None and told.get(r) == x else x for r, x in keep.items()}

    def _told(self, keep: dict[str, float | None], realized: Decimal) -> None:
        self._kept = frozenset(keep)
        self._exposures = {r: x for r, x in keep.items() if x is not None}
        self._dirty = False
        self._orders.clear()
        self._pushed += realized

    def _lost_redis(self) -> None:
        """Redis failed or lost this worker's keys: tell it everything again once it answers,
        the day's counter included (it may have restarted empty)."""
        self._kept = None
        self._exposures = {}
        self._reseed = True

    def _realized(self) -> Decimal:
        """What this worker realized today that the fleet's counter does not have yet (it goes
        with the next round trip). At a new day, or after Redis failed, the counter is seeded from
        the ledger's row for the day (every worker's bookings, this one's included) unless a
        worker already did."""
        state = self._state
        if not state.day:
            return ZERO
        new_day = state.day != self._day
        if new_day or self._reseed:
            try:
                seeded = self.budget.seed_day(state.day, self._day_total(state.day))
            except BudgetUnreachable:
                return ZERO  # seeded at the next try
            if new_day or seeded:
                # The counter starts from the ledger: this worker's bookings so far are in it (at
                # a new day, daily_realized is that row; after a Redis restart, ours set it).
                self._pushed = state.daily_realized
            self._day, self._reseed = state.day, False
        return state.daily_realized - self._pushed
