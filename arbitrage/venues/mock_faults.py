"""Seeded fault injection for the mock venues: rejects, partial fills, one-leg failures, stale books, latency.

One injector is shared by every mock venue, so a one-leg failure is decided once per entry group
whichever venue sees its first leg. Each fault kind draws from its own seeded stream: enabling one
kind never shifts the decisions of another, and nothing depends on the wall clock.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict

from arbitrage.config import MockFaultsConfig
from arbitrage.domain.ids import group_of, leg_of
from arbitrage.domain.orders import OrderRequest

# Entry groups whose one-leg decision is remembered: far more than can be in flight at once.
REMEMBERED_GROUPS = 1024
ENTRY_LEGS = ("B", "S")


class MockFaults:
    """Decides, deterministically for a seed, which calls and orders a fault hits."""

    def __init__(self, config: MockFaultsConfig, seed: int) -> None:
        self._config = config
        self._reject_rng = random.Random(f"{seed}:mock-faults:reject")
        self._partial_rng = random.Random(f"{seed}:mock-faults:partial")
        self._leg_rng = random.Random(f"{seed}:mock-faults:leg")
        self._stale_rng = random.Random(f"{seed}:mock-faults:stale")
        self._latency_rng = random.Random(f"{seed}:mock-faults:latency")
        # group -> the leg ("B"/"S") that will fill nothing, or None when both legs may fill.
        self._failed_legs: OrderedDict[str, str | None] = OrderedDict()
        # Both legs of a group may arrive at once from two threads: one decision per group.
        self._legs_lock = threading.Lock()

    @property
    def config(self) -> MockFaultsConfig:
        return self._config

    @property
    def remembered_groups(self) -> int:
        """How many entry groups' one-leg decisions are kept (at most REMEMBERED_GROUPS)."""
        return len(self._failed_legs)

    def delay_s(self) -> float:
        """Seconds this venue call is held up (0.0 when the latency fault misses)."""
        if _hits(self._latency_rng, self._config.latency_rate):
            return self._config.latency_ms / 1000.0
        return 0.0

    def stale_age_s(self) -> float:
        """How old the served book pretends to be (0.0 when the stale-book fault misses)."""
        if _hits(self._stale_rng, self._config.stale_book_rate):
            return self._config.stale_book_age_ms / 1000.0
        return 0.0

    def rejects(self, request: OrderRequest) -> bool:
        """The venue refuses this order outright (the one fault an unwind is also exposed to)."""
        return _hits(self._reject_rng, self._config.reject_rate)

    def leg_fails(self, request: OrderRequest) -> bool:
        """This entry leg fills nothing because its group was picked for a one-leg failure."""
        if request.purpose != "entry" or self._config.one_leg_failure_rate <= 0.0:
            return False
        cid = request.client_order_id
        is_leg = "-" in cid
        group = request.group or (group_of(cid) if is_leg else "")
        if not group:
            return False
        with self._legs_lock:
            if group in self._failed_legs:
                failed = self._failed_legs[group]
            else:
                failed = None
                if _hits(self._leg_rng, self._config.one_leg_failure_rate):
                    failed = self._leg_rng.choice(ENTRY_LEGS)
                self._failed_legs[group] = failed
                if len(self._failed_legs) > REMEMBERED_GROUPS:
                    self._failed_legs.popitem(last=False)
        return failed is not None and is_leg and leg_of(cid) == failed

    def partial_fraction(self, request: OrderRequest) -> float | None:
        """The share (0.1-0.9) of the available fill to give, or None for a full fill.

        Unwinds are exempt: they must be able to flatten exposure.
        """
        if request.purpose == "unwind":
            return None
        if _hits(self._partial_rng, self._config.partial_fill_rate):
            return self._partial_rng.uniform(0.1, 0.9)
        return None


def _hits(rng: random.Random, rate: float) -> bool:
    # No draw at the extremes: a disabled fault costs nothing and consumes none of its stream.
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return rng.random() < rate
