"""The crash-test rig: the live bot against the exchange simulator, killed with SIGKILL (at a named
failpoint or after a delay) and restarted on the same ledger, and the audit that holds the ledger
up against the simulator's own orders and balances.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbitrage.config import DEFAULT_INSTANCE, AppConfig, load_config
from arbitrage.domain import ids
from arbitrage.domain.orders import Order
from arbitrage.domain.positions import PairPosition
from arbitrage.sim.control import SimControl
from arbitrage.sim.market import DEFAULT_ASSETS
from arbitrage.store.ledger import Ledger, open_ledger
from tests.e2e.ops_harness import bot_env
from tests.e2e.runner import SCRIPT, merge, write_config
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides, sim_totals, start_balances

ZERO = Decimal(0)
SIGKILLED = -signal.SIGKILL
# How each venue (and the adapter's own guard) words "that client order id was used already".
DUPLICATE_REFUSALS = ("identifier already used", "duplicate order sent", "duplicate client order id")


@dataclass(frozen=True)
class KillPoint:
    """One crash: `ARB_FAILPOINT=spec`, what it interrupts, and the simulator faults of that run."""

    spec: str
    where: str
    faults: tuple[dict[str, Any], ...] = ()
    in_recovery: str | None = None  # a second failpoint, for the restart: killed again while recovering
    drain: tuple[str, str] | None = None  # (venue, asset) whose free coins are away during the run


@dataclass
class BotRun:
    label: str
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def started_trading(self) -> bool:
        """Whether the bot got past start-up (recovery included) to its loop."""
        return " in live mode: " in self.stdout

    def recovered(self) -> list[str]:
        """What start-up recovery reported: one line per order looked up and per group finished."""
        return [
            line.split("] ", 2)[-1]
            for line in self.stdout.splitlines()
            if "recovered order" in line or "recovered group" in line
        ]


@contextmanager
def coins_away(sim: SimControl, venue: str, asset: str) -> Iterator[None]:
    """The account's free `asset` on `venue` taken away for the block and given back after it.

    What the block's orders do to the balance stays: the amount given back is what was taken, so
    the simulator's balances still say exactly what the bot's fills did.
    """
    key = API_KEYS[venue]

    def free() -> Decimal:
        wallet = sim.balances(venue=venue, api_key=key).get(venue, {}).get(key)
        if wallet is None:  # no request of this key yet: the account is still as it starts
            return start_balances()[venue].get(asset, ZERO)
        return Decimal(wallet.get(asset, {}).get("free", "0"))

    away = free()
    sim.set_balance(venue, key, asset, "0")
    try:
        yield
    finally:
        sim.set_balance(venue, key, asset, str(free() + away))


def crash_overrides(base_url: str) -> dict[str, Any]:
    """Both venues on the simulator; one asset; an exit right after every entry; no dry run."""
    return merge(
        sim_overrides(base_url),
        {
            "symbols": ["BTC"],  # one pair per tick keeps a tick within one second of REST calls
            "live_guards": {"dry_run_cycles": 0},
            # Take profit whenever the reverse trade nets at least -5%: every position is exited
            # in the tick that opened it, so every tick has both an entry and an exit to crash in.
            "exit": {"min_spread_pct": -5.0},
            # Each round trip loses the premium (~15,000 KRW): keep the kill switch out of the way (it
            # must stay below safety.max_exposure for the live guards).
            "safety": {"daily_loss_limit": 15_000_000},
        },
    )


class CrashRig:
    """One working directory (config, confirm file, logs, one SQLite ledger) shared by every run."""

    def __init__(self, workdir: Path, base_url: str, interval_s: float = 0.05) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
        self.config_path = write_config(workdir, crash_overrides(base_url))
        self.config: AppConfig = load_config(self.config_path, "live")
        self.interval_s = interval_s
        self.runs: list[BotRun] = []

    @property
    def ledger_path(self) -> Path:
        return self.workdir / "data" / "ledger.sqlite3"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.ledger_path}"

    def run(
        self,
        label: str,
        loops: int,
        failpoint: str | None = None,
        kill_after_s: float | None = None,
        halted: bool = False,
        timeout_s: float = 90.0,
    ) -> BotRun:
        """`scripts/run_live.py --mode live` to its end, to its failpoint, or until killed after a delay.

        `halted` runs it with the operator's halt file: no new entries, exits go on.
        """
        halt = self.workdir / self.config.safety.halt_file
        if halted:
            halt.touch()
        else:
            halt.unlink(missing_ok=True)
        env = dict(LIVE_ENV)
        if failpoint is not None:
            env["ARB_FAILPOINT"] = failpoint
        out_path, err_path = self.workdir / "stdout.txt", self.workdir / "stderr.txt"
        started = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable, str(SCRIPT), "--config", str(self.config_path), "--log-dir", "logs",
                    "--data-dir", "data", "--mode", "live", "--loops", str(loops),
                    "--interval", str(self.interval_s),
                ],
                cwd=self.workdir,
                env=bot_env(env),
                stdout=out,
                stderr=err,
            )  # fmt: skip
            try:
                if kill_after_s is not None:
                    try:
                        proc.wait(kill_after_s)
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)  # the bot this call started, by its pid
                proc.wait(timeout_s)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        run = BotRun(
            label,
            proc.returncode,
            out_path.read_text(encoding="utf-8", errors="replace"),
            err_path.read_text(encoding="utf-8", errors="replace"),
            time.monotonic() - started,
        )
        self.runs.append(run)
        return run


@dataclass
class Audit:
    problems: list[str] = field(default_factory=list)
    sim_orders: int = 0
    ledger_orders: int = 0
    positions: int = 0
    open_positions: int = 0
    unhedged: dict[str, Decimal] = field(default_factory=dict)  # asset -> net outside positions


def audit(
    sim: SimControl,
    ledger_url: str,
    config: AppConfig,
    instances: Sequence[str] = (DEFAULT_INSTANCE,),
    coins: Mapping[str, float] = DEFAULT_ASSETS,
) -> Audit:
    """Every check of the crash test, between runs (no bot running): problems, empty when all hold.

    The simulator is the witness. No client order id was placed twice; every order it has is in
    the ledger with the same filled quantity (no lost fill, no unknown fill); every ledger order
    is terminal and every group concluded; every filled entry became a position or a recorded
    unwind or residual; and the coins on both venues together, taken from the simulator's own
    balances, differ from the start by no more than the unhedged bound once positions are counted.

    `instances` are the workers that traded on the simulator's one account per venue (a fleet
    shares it): the ledger is read as each of them reads it, and their rows are checked together.
    `coins` is the simulator's market (what its accounts started with).
    """
    result = Audit()
    problems = result.problems
    placed = {venue: sim.orders(venue=venue, api_key=API_KEYS[venue]) for venue in VENUES}
    result.sim_orders = sum(len(orders) for orders in placed.values())
    ledgers = [open_ledger(ledger_url, instance=name) for name in instances]
    try:
        orders: dict[str, Order] = {}
        fills: dict[str, Decimal] = {}
        positions: dict[str, PairPosition] = {}
        hedged_groups: set[str] = set()
        entry_groups: dict[str, Ledger] = {}
        for ledger in ledgers:
            for order in ledger.orders():
                cid = order.client_order_id
                if cid in orders:
                    problems.append(f"ledger: {cid} written by two workers")
                orders[cid] = order
                fills[cid] = sum((Decimal(f["qty"]) for f in ledger.fills(cid)), ZERO)
                if order.purpose == "entry":
                    entry_groups[ids.group_of(cid)] = ledger
            problems += [f"ledger: {o.client_order_id} left {o.state.value}" for o in ledger.open_orders()]
            problems += [f"ledger: group {g} never concluded" for g in ledger.unconcluded_groups()]
            positions.update((p.position_id, p) for p in ledger.positions())
            hedges = ledger.hedge_events()
            hedged_groups |= {e["group_id"] for e in hedges if e["kind"] in ("unwind", "residual")}
        result.ledger_orders = len(orders)
        for venue, venue_orders in placed.items():
            counts = Counter(o["client_id"] for o in venue_orders)
            problems += [f"{venue}: {cid} placed {n} times" for cid, n in counts.items() if n > 1]
            for sim_order in venue_orders:
                cid, filled = sim_order["client_id"], Decimal(sim_order["filled"])
                mine = orders.get(cid)
                if mine is None:
                    status = sim_order["status"]
                    problems.append(f"{venue}: {cid} ({status}, filled {filled}) not in the ledger")
                elif mine.venue != venue or mine.filled_qty != filled:
                    problems.append(
                        f"{venue}: {cid} filled {filled} at the venue, {mine.filled_qty} on {mine.venue} "
                        f"in the ledger ({mine.state.value})"
                    )
                if sim_order["status"] in ("NEW", "PARTIALLY_FILLED"):
                    problems.append(f"{venue}: {cid} still open at the venue")
        # A venue that refuses an id as already used saw the bot try to place an order twice.
        problems += [
            f"ledger: {cid} refused as a duplicate ({o.reason})"
            for cid, o in orders.items()
            if any(text in (o.reason or "").lower() for text in DUPLICATE_REFUSALS)
        ]
        known = {(v, o["client_id"]) for v, venue_orders in placed.items() for o in venue_orders}
        for cid, order in orders.items():
            if order.filled_qty > 0 and (order.venue, cid) not in known:
                problems.append(f"ledger: {cid} filled {order.filled_qty}, but {order.venue} never had it")
            if fills[cid] != order.filled_qty:
                problems.append(f"ledger: {cid} filled {order.filled_qty}, its fills add up to {fills[cid]}")

        result.positions = len(positions)
        for group, ledger in sorted(entry_groups.items()):
            traded = any(o.filled_qty > 0 for o in ledger.group_orders(group))
            if traded and group not in positions and group not in hedged_groups:
                problems.append(f"ledger: entry {group} filled but has no position and no unwind or residual")

        # Per venue, what the simulator's balances moved must be what the ledger's orders say they
        # moved (a fee the venue took in the coin itself, on Binance buys, arrived short).
        start = start_balances(coins)
        held: dict[tuple[str, str], Decimal] = {}
        for order in orders.values():
            key = (order.venue, order.symbol.partition("/")[0])
            signed = order.net_qty if order.side == "buy" else -order.net_qty
            held[key] = held.get(key, ZERO) + signed
        open_positions = [p for p in positions.values() if p.qty > 0]
        result.open_positions = len(open_positions)
        traded_assets = {order.symbol.partition("/")[0] for order in orders.values()}
        for asset in sorted(traded_assets | set(config.symbols)):
            outside = ZERO
            for venue in VENUES:
                before = start[venue].get(asset, ZERO)
                moved = sim_totals(sim, venue, API_KEYS[venue]).get(asset, ZERO) - before
                if moved != held.get((venue, asset), ZERO):
                    problems.append(
                        f"{venue}: {asset} moved {moved} at the venue, the ledger's fills say "
                        f"{held.get((venue, asset), ZERO)}"
                    )
                # An open position is long its qty on its buy venue and short on its sell venue.
                in_positions = sum(
                    (
                        p.qty if p.buy_venue == venue else -p.qty
                        for p in open_positions
                        if p.asset == asset and venue in (p.buy_venue, p.sell_venue)
                    ),
                    ZERO,
                )
                outside += moved - in_positions
            result.unhedged[asset] = outside
            bound = Decimal(repr(config.execution.unhedged_limit(asset)))
            if abs(outside) > bound:
                problems.append(f"{asset}: {outside} unhedged over both venues, above the bound {bound}")
    finally:
        for ledger in ledgers:
            ledger.close()
    return result
