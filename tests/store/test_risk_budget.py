"""The fleet's risk budget on the real Redis (a database and key prefix of its own): each shared
limit refuses the reservation that would pass it, across workers and within one batch; a settled
reservation frees its balances only; one left out of the keep list is released; a dead worker's
balances in flight lapse with its lease while its slots and exposure count until it restarts; a
dead Redis refuses entries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import redis

from arbitrage.clock import SystemClock
from arbitrage.store.risk_budget import BalanceWant, BudgetUnreachable, EntryAsk, Limits, RiskBudget
from tests.store.redis_server import PrivateRedisServer
from tests.waiting import wait_until

URL = "redis://127.0.0.1:6379/13"
LIMITS = Limits(max_exposure=1000.0, max_open_positions=3, daily_loss_limit=500.0, max_orders_per_minute=6)
DAY = "2026-12-03"

MakeBudget = Callable[..., RiskBudget]


@pytest.fixture
def make_budget() -> Iterator[MakeBudget]:
    prefix = f"rb-{uuid.uuid4().hex[:10]}"
    made: list[RiskBudget] = []

    def make(instance: str, lease_s: float = 30.0, limits: Limits = LIMITS, url: str = URL) -> RiskBudget:
        budget = RiskBudget(url, prefix, instance, lease_s, limits, SystemClock())
        made.append(budget)
        return budget

    yield make
    for budget in made:
        budget.close()
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def _want(amount: float = 10.0, held: float = 100.0) -> list[BalanceWant]:
    return [BalanceWant("upbit", "KRW", amount, held)]


def test_positions_and_exposure_are_shared_across_workers(make_budget: MakeBudget) -> None:
    a, b = make_budget("a"), make_budget("b")
    assert a.reserve("p1", 400.0, _want(), ["upbit", "binance"], DAY) is None
    assert b.reserve("p2", 400.0, _want(), ["upbit", "binance"], DAY) is None
    refused = a.reserve("p3", 300.0, _want(), ["upbit", "binance"], DAY)
    assert refused is not None and refused[0] == "exposure" and "800 + 300 > 1000" in refused[1]
    assert b.reserve("p3", 200.0, _want(), ["upbit", "binance"], DAY) is None
    refused = a.reserve("p4", 1.0, _want(), ["upbit", "binance"], DAY)
    assert refused is not None and refused[0] == "open positions"
    # a's position closes: its slot and exposure are free again for anyone (a holds nothing now).
    a.sync({})
    assert b.reserve("p4", 100.0, _want(), ["upbit", "binance"], DAY) is None
    assert [(w.instance, w.pairs, w.exposure) for w in b.workers()] == [("a", 0, 0.0), ("b", 3, 700.0)]


def test_balances_in_flight_are_shared_and_freed_when_the_entry_settles(make_budget: MakeBudget) -> None:
    a, b = make_budget("a"), make_budget("b")
    assert a.reserve("p1", 10.0, _want(60.0, 100.0), ["upbit"], DAY) is None
    refused = b.reserve("p2", 10.0, _want(50.0, 100.0), ["upbit"], DAY)
    assert refused is not None and refused[0] == "balance" and "upbit|KRW" in refused[1]
    a.sync({"p1": 12.0})  # a's orders are done: the venue's balance now says what they spent
    assert b.reserve("p2", 10.0, _want(50.0, 100.0), ["upbit"], DAY) is None
    assert [w.exposure for w in a.workers()] == [12.0, 10.0]


def test_a_batch_is_checked_entry_by_entry_after_the_sync(make_budget: MakeBudget) -> None:
    a = make_budget("a")
    assert a.reserve("old", 900.0, [], [], DAY) is None
    asks = [EntryAsk(f"n{i}", 400.0, _want(40.0), ["upbit"]) for i in range(3)]
    # "old" is released in the same round trip, before the batch: two fit, the third does not.
    answers = a.sync_and_reserve({}, [], asks, DAY)
    assert answers[:2] == [None, None] and answers[2] is not None and answers[2][0] == "exposure"
    assert [(w.pairs, w.exposure) for w in a.workers()] == [(2, 800.0)]
    answers = a.sync_and_reserve({"n0": None, "n1": None}, [], [EntryAsk("n3", 1.0, _want(40.0), [])], DAY)
    assert answers == [("balance", "upbit|KRW: 80 in flight + 40 > 100 held")]


def test_order_rate_is_shared_per_venue(make_budget: MakeBudget) -> None:
    big = Limits(1e12, 100, 1e12, 4)
    a, b = make_budget("a", limits=big), make_budget("b", limits=big)
    assert a.reserve("p1", 1.0, [], ["upbit", "binance"], DAY) is None
    b.sync({"p0": None}, ["upbit", "upbit", "upbit"])  # b's exits: not refused, but counted
    assert b.reserve("p2", 1.0, [], ["binance"], DAY) is None
    refused = a.reserve("p3", 1.0, [], ["upbit", "binance"], DAY)
    assert refused is not None and refused[0] == "order rate" and refused[1].startswith("upbit: 4 orders")
    assert a.reserve("p3", 1.0, [], ["binance"], DAY) is None


def test_the_daily_loss_is_the_fleets(make_budget: MakeBudget) -> None:
    a, b = make_budget("a"), make_budget("b")
    a.seed_day(DAY, Decimal("-300"))  # the ledger's row for the day, when a rolled into it
    b.seed_day(DAY, Decimal("-999"))  # b rolls later: the counter is kept, not overwritten
    b.sync({}, day=DAY, realized=Decimal("-150"))
    assert a.fleet_realized(DAY) == -450.0
    assert a.reserve("p1", 1.0, [], [], DAY) is None
    # What a worker realized goes in before its own entries are checked, in the same round trip.
    answers = a.sync_and_reserve({"p1": None}, [], [EntryAsk("p2", 1.0, [], [])], DAY, Decimal("-50"))
    assert answers == [("daily loss", "fleet realized pnl -500 <= -500")]
    assert b.reserve("p3", 1.0, [], [], DAY) == ("daily loss", "fleet realized pnl -500 <= -500")


def test_a_dead_workers_balances_lapse_with_its_lease_its_positions_count_until_it_restarts(
    make_budget: MakeBudget,
) -> None:
    dead = make_budget("dead", lease_s=1.0)
    assert dead.reserve("p1", 600.0, _want(60.0, 100.0), [], DAY) is None
    dead.sync({"p1": 600.0})  # p1 booked: a position
    assert dead.reserve("p2", 300.0, _want(60.0, 100.0), [], DAY) is None  # in flight when it dies
    live = make_budget("live")
    assert live.reserve("x", 10.0, _want(60.0, 100.0), [], DAY) == (
        "balance", "upbit|KRW: 60 in flight + 60 > 100 held"
    )  # fmt: skip
    # No renewal (as after SIGKILL): its balances in flight are freed within the lease...
    wait_until(lambda: live.reserve("x", 10.0, _want(60.0, 100.0), [], DAY) is None, 5.0, "the lease to end")
    live.sync({})
    # ...but not its slots and exposure: p1 is open in the ledger, and p2 may have filled before
    # it died; both count until the dead worker restarts.
    assert live.reserve("y", 200.0, [], [], DAY) == ("exposure", "fleet exposure 900 + 200 > 1000")
    assert [(w.instance, w.pairs, w.exposure, w.in_flight, w.lease_ms) for w in live.workers()] == [
        ("dead", 2, 900.0, 0, -2), ("live", 0, 0.0, 0, pytest.approx(30_000, abs=1_000))
    ]  # fmt: skip
    # Its restart rebuilds them from the ledger: p1 is still open, p2 never filled.
    again = make_budget("dead", lease_s=1.0)
    again.rebuild({"p1": 610.0})
    again.start_lease()
    assert live.reserve("y", 200.0, [], [], DAY) is None
    assert live.reserve("z", 300.0, [], [], DAY) == ("exposure", "fleet exposure 810 + 300 > 1000")
    client = redis.Redis.from_url(URL)
    try:
        # The lease thread keeps renewing it: still there after several lease lengths.
        for _ in range(3):
            wait_until(lambda: client.pttl(again.reservations_key) < 800, 5.0, "time to pass")
            wait_until(lambda: client.pttl(again.reservations_key) > 800, 5.0, "the lease to be renewed")
        assert not again.take_lost()  # it holds no entry in flight, and its lease's key is there
    finally:
        client.close()


def test_a_dead_redis_refuses_reservations_and_comes_back(
    make_budget: MakeBudget, private_server: PrivateRedisServer
) -> None:
    budget = make_budget("a", url=private_server.url)
    assert budget.reserve("p1", 1.0, [], [], DAY) is None
    private_server.kill()
    with pytest.raises(BudgetUnreachable):
        budget.reserve("p2", 1.0, [], [], DAY)
    with pytest.raises(BudgetUnreachable, match="backing off"):
        budget.reserve("p2", 1.0, [], [], DAY)  # no socket timeout per entry while it is down
    private_server.start()

    def reserved() -> bool:
        try:
            return budget.reserve("p2", 1.0, [], [], DAY) is None
        except BudgetUnreachable:
            return False

    wait_until(reserved, 10.0, "reservations to work again")
