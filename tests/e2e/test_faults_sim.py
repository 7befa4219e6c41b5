"""Live mode against a misbehaving exchange: 5xx, 429 then 418, timeouts and failing reads, injected
into the simulator while the real command trades on it (see docs/ARCHITECTURE.md, The tick and Single legs).

The simulator is the witness. Nothing is placed twice and no create is ever resent; every order the
simulator holds is in the ledger as the simulator says; Retry-After is honoured; the circuit breaker
opens and closes again; no tick outlasts watchdog.max_loop_latency_ms; and after the run the coins
on both venues together are where they started, within execution.max_unhedged_qty.
"""

from __future__ import annotations

import signal
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.ops_harness import BotProcess, bot_process, free_port
from tests.e2e.runner import METRICS_RE, merge
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides, sim_totals, start_balances
from tests.e2e.sim_run_probe import health_detail, ticks
from tests.waiting import wait_until

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts

MAX_LOOP_MS = 2500.0
# The venues' request timeout. A tick can hold an entry, then one whose create timed out: the
# timeout, the lookups by client order id (about 1 s) and the retry of the leg must fit in MAX_LOOP_MS.
TIMEOUT_MS = 700
BAN_S = 3.0  # how long Binance bans the IP after the repeated 429s
HANG_S = 3.0  # a timed-out request hangs this long at the simulator, longer than TIMEOUT_MS
DEGRADED_UPBIT = "reason=VENUE_DEGRADED: upbit"
MAX_UNHEDGED = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.002")}  # config/live.yml's bounds
# The simulator's state for each ledger state; an IOC remainder is EXPIRED (CANCELED on Upbit's wire).
SIM_STATES = {
    "FILLED": {"FILLED"},
    "EXPIRED": {"EXPIRED", "CANCELED"},
    "CANCELLED": {"EXPIRED", "CANCELED"},
    "PARTIAL": {"PARTIALLY_FILLED"},
    "ACCEPTED": {"NEW"},
}


def fault_overrides(base_url: str, health_port: int) -> dict[str, Any]:
    return merge(
        sim_overrides(base_url),
        {
            "venues": {
                v: {"timeout_ms": TIMEOUT_MS, "circuit_failures": 3, "circuit_cooldown_s": 2} for v in VENUES
            },
            "market_data": {"use_websocket": True, "stale_after_s": 2, "recover_every_s": 2},
            "health_server": {"enabled": True, "host": "127.0.0.1", "port": health_port},
            # Every entry closes at once (inventory arbitrage), so trading goes on all run long.
            "exit": {"mode": "none"},
            "signal": {"max_notional": 500000},
            "safety": {"max_orders_per_minute": 5000},
            "watchdog": {
                "warn_loop_latency_ms": 2000,
                "max_loop_latency_ms": MAX_LOOP_MS,
                # A venue that fails for seconds on end is this test's point, not a reason to stop.
                "warn_live_errors_per_minute": 10000,
                "max_live_errors_per_minute": 100000,
            },
        },
    )


def fire(bot: BotProcess, sim: SimControl, kind: str, **rule: Any) -> None:
    """Add a one-shot fault, wait until a request has drawn it, then for two more ticks.

    One fault per tick: the next one meets the bot in a later tick, as separate incidents would.
    """
    rule_id = sim.add_fault(kind, count=1, **rule)
    wait_until(lambda: all(f["id"] != rule_id for f in sim.faults()), 30, f"{kind} {rule} to fire")
    done = len(bot.stdout().split("[METRICS]"))
    wait_until(lambda: len(bot.stdout().split("[METRICS]")) >= done + 2, 30, "two ticks after the fault")


def poke(base_url: str) -> int:
    """A client other than the bot on the same IP: Binance's ping, answered with its status."""
    try:
        with urllib.request.urlopen(f"{base_url}/binance/api/v3/ping", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def circuit(port: int, venue: str) -> dict[str, Any]:
    return dict(health_detail(port)["venues"][venue]["circuit"])


def ledger_orders(path: Path) -> list[dict[str, str]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("select * from orders order by rowid")]


def drive_faults(bot: BotProcess, sim: SimControl, base_url: str, port: int) -> dict[str, Any]:
    """Inject every fault in turn while the bot trades; what the test saw on the way."""
    seen: dict[str, Any] = {}
    bot.wait_for(r"trades=[1-9]", 60)  # past the live dry run, trading
    # (a) 5xx on create: placed anyway (the answer lost), and not placed at all
    for venue in VENUES:
        fire(bot, sim, "error", venue=venue, ops=["create_order"], status=503, place=True)
        fire(bot, sim, "error", venue=venue, ops=["create_order"], status=502)
    # (b) 429 with Retry-After on create; then another client earns the IP a 418 ban
    for venue in VENUES:
        fire(bot, sim, "rate_limit", venue=venue, ops=["create_order"], retry_after_s=1)
    sim.clear_faults()  # the 429 windows above end here: the ban below must be this rule's (3 s)
    sim.add_fault(
        "rate_limit", venue="binance", ops=["time"], count=1, retry_after_s=2, ban_after=2, ban_s=BAN_S
    )
    seen["ban_from"] = time.time()
    seen["pokes"] = [poke(base_url) for _ in range(3)]
    time.sleep(4.0)  # the bot lives through the ban, which the simulator times in real seconds
    # (c) create timeouts, longer than the venue's timeout: placed, and not placed
    for venue in VENUES:
        fire(bot, sim, "timeout", venue=venue, ops=["create_order"], hang_s=HANG_S, place=True)
        fire(bot, sim, "timeout", venue=venue, ops=["create_order"], hang_s=HANG_S)
    # (d) every read of one venue fails until the faults are cleared
    reads = ["order_book", "balance", "fetch_order", "my_trades", "fees", "open_orders", "closed_orders"]
    safety_log = bot.workdir / "logs" / "safety.log"
    degraded_before = safety_log.read_text(encoding="utf-8").count(DEGRADED_UPBIT)
    sim.add_fault("error", venue="upbit", ops=reads, status=503)
    wait_until(lambda: circuit(port, "upbit")["state"] == "open", 20, "upbit's breaker to open")
    wait_until(
        lambda: safety_log.read_text(encoding="utf-8").count(DEGRADED_UPBIT) > degraded_before,
        20,
        "entries rejected as VENUE_DEGRADED",
    )
    seen["open"] = circuit(port, "upbit")
    sim.clear_faults()
    cleared = time.time()
    wait_until(lambda: circuit(port, "upbit")["state"] == "closed", 20, "upbit's breaker to close")
    wait_until(
        lambda: any(o["created_ms"] / 1000.0 > cleared for o in sim.orders(venue="upbit")),
        30,
        "an order on upbit after the faults were cleared",
    )
    done = bot.stdout().count("[METRICS]")  # a few ticks more: orders of unknown outcome are looked up again
    wait_until(lambda: bot.stdout().count("[METRICS]") >= done + 5, 30, "five ticks after the close")
    seen["closed"] = circuit(port, "upbit")
    return seen


@pytest.mark.slow
def test_live_trading_through_5xx_429_418_timeouts_and_failing_reads(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    port = free_port()
    overrides = fault_overrides(sim_server.base_url, port)
    with bot_process(
        tmp_path, "--mode", "live", "--interval", "0.2", overrides=overrides, env=LIVE_ENV
    ) as bot:
        seen = drive_faults(bot, sim, sim_server.base_url, port)
        bot.send(signal.SIGINT)
        run = bot.finish(60)
    assert run.code == 0, run.stderr[-3000:]
    lines = run.metrics_lines()
    assert lines and all(METRICS_RE.search(line) and line.endswith("live=✅") for line in lines)

    # The loop never stalled: no tick longer than the watchdog's maximum, no long gap between ticks.
    seen_ticks = ticks(run.log_dir)
    slowest = max(t.loop_ms for t in seen_ticks)
    assert slowest < MAX_LOOP_MS, f"a tick took {slowest}ms"
    gaps = [b.ts - a.ts for a, b in pairwise(seen_ticks)]
    assert max(gaps) < MAX_LOOP_MS / 1000.0 + 0.5, max(gaps)

    requests = sim.requests(limit=100000)
    placed = {v: sim.orders(venue=v, api_key=API_KEYS[v]) for v in VENUES}
    orders = ledger_orders(run.ledger_path)
    check_nothing_placed_twice(requests, placed, orders)
    check_ledger_matches_the_simulator(placed, orders)
    check_retry_after_honoured(requests, seen)
    check_breaker(seen, run.log_dir)
    check_hedged(sim, placed)


def check_nothing_placed_twice(
    requests: list[dict[str, Any]], placed: dict[str, list[dict[str, Any]]], orders: list[dict[str, str]]
) -> None:
    for venue in VENUES:
        ids = Counter(o["client_id"] for o in placed[venue])
        assert all(n == 1 for n in ids.values()), f"{venue}: a client order id placed twice: {ids}"
        creates = Counter(r["status"] for r in requests if r["venue"] == venue and r["op"] == "create_order")
        # 2xx: placed; 502/503/504: the injected faults (2 of them placed anyway); 429: refused; 418:
        # Binance's ban, refused too, when the first of the bot's requests to meet it was a create
        # (check_retry_after_honoured: it meets the ban once). Anything else, such as Upbit's 400
        # for an identifier used before, means a resend.
        assert set(creates) <= {200, 201, 418, 429, 502, 503, 504}, creates
        assert creates[418] <= (1 if venue == "binance" else 0), creates
        assert creates[502] == 1 and creates[503] == 1 and creates[504] == 2 and creates[429] == 1, creates
        answered = creates[200] + creates[201]
        assert len(placed[venue]) == answered + 2, (venue, len(placed[venue]), creates)
    at_venue = {o["client_id"] for v in VENUES for o in placed[v]}
    sent_blind = [o for o in orders if o["client_order_id"] not in at_venue and o["state"] == "SUBMITTED"]
    # The four creates that got no answer and placed nothing stay unresolved (never resent).
    assert len(sent_blind) == 4, sent_blind
    never_placed = [o for o in orders if o["client_order_id"] not in at_venue]
    # REJECTED: refused on create. CANCELLED: written with the tick's other entries, then
    # withdrawn unsent when a venue degraded before its turn.
    assert {o["state"] for o in never_placed} <= {"SUBMITTED", "REJECTED", "CANCELLED"}, never_placed
    withdrawn = [o for o in never_placed if o["state"] == "CANCELLED"]
    assert all((o["reason"] or "").startswith("not sent:") for o in withdrawn), withdrawn
    assert all(Decimal(o["filled_qty"]) == 0 for o in never_placed)


def check_ledger_matches_the_simulator(
    placed: dict[str, list[dict[str, Any]]], orders: list[dict[str, str]]
) -> None:

    mine = {o["client_order_id"]: o for o in orders}
    for venue in VENUES:
        for sim_order in placed[venue]:
            ledger = mine.get(sim_order["client_id"])
            assert ledger is not None, f"{sim_order['client_id']} is at {venue} but not in the ledger"
            assert ledger["venue"] == venue
            assert sim_order["status"] in SIM_STATES.get(ledger["state"], set()), (ledger, sim_order)
            assert Decimal(ledger["filled_qty"]) == Decimal(sim_order["filled"]), (ledger, sim_order)


def check_retry_after_honoured(requests: list[dict[str, Any]], seen: dict[str, Any]) -> None:
    """After a 429 or 418 the bot sends nothing to that venue for at least the Retry-After (>= 1 s)."""
    assert 418 in seen["pokes"], seen["pokes"]  # the other client's repeated 429s earned the ban
    bots = [r for r in requests if r["op"] != "time"]
    for venue in VENUES:
        mine = [r for r in bots if r["venue"] == venue]
        refused = [r for r in mine if r["status"] in (429, 418)]
        for answer in refused:
            too_soon = [
                r for r in mine
                if answer["ts"] < r["ts"] - r["ms"] / 1000.0 < answer["ts"] + 0.9
            ]  # fmt: skip
            assert too_soon == [], (venue, answer, too_soon)
        # The bot met the ban once (its unresolved lookups call Binance every tick), then waited.
        bans = [r for r in refused if r["status"] == 418]
        assert len(bans) == (1 if venue == "binance" else 0), bans
        assert all(r["ts"] >= seen["ban_from"] for r in bans), bans
        for ban in bans:  # its Retry-After is the rest of the ban: nothing more until it ends
            early = [
                r for r in mine if ban["ts"] < r["ts"] - r["ms"] / 1000.0 < seen["ban_from"] + BAN_S - 0.1
            ]
            assert early == [], (ban, early)


def check_breaker(seen: dict[str, Any], log_dir: Path) -> None:
    assert seen["open"]["trips"] >= 1, seen["open"]
    assert seen["closed"]["state"] == "closed" and seen["closed"]["consecutive_failures"] == 0, seen["closed"]
    assert DEGRADED_UPBIT in (log_dir / "safety.log").read_text(encoding="utf-8")


def check_hedged(sim: SimControl, placed: dict[str, list[dict[str, Any]]]) -> None:
    """Each coin's total over both venues is back where it started, within the bound: the fees
    Binance took in the coin itself were made up for by buying that much more."""
    start = start_balances()
    zero = Decimal(0)
    for asset, bound in MAX_UNHEDGED.items():
        now = sum((sim_totals(sim, v, API_KEYS[v]).get(asset, zero) for v in VENUES), zero)
        before = sum((start[v].get(asset, zero) for v in VENUES), zero)
        assert abs(now - before) <= bound, (asset, now, before)
