"""State that survives anything: the live bot, trading against the exchange simulator, is killed
with SIGKILL at every point where a crash is hardest to recover from (one test per point, each on
its own ledger and a fresh simulator market, so parallel workers share the matrix out), and at
random moments several times on one ledger; each time it is restarted on the same ledger. The
simulator is the witness: no order placed twice, every fill in the ledger, every position
accounted for, the coins outside positions within execution.max_unhedged_qty.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from pathlib import Path

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.crash_harness import SIGKILLED, Audit, BotRun, CrashRig, KillPoint, audit, coins_away

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts

# Both legs of a pair go out at once in live mode, so the N-th order hit may be either leg. In a
# tick the entry's two legs go first, then the exit's: every position is exited in the tick that
# opened it (see crash_overrides).
REFUSE_SELL = ({"kind": "reject", "venue": "upbit", "ops": ["create_order"], "count": 1},)
REFUSE_SELL_3 = ({"kind": "reject", "venue": "upbit", "ops": ["create_order"], "count": 3},)
KP = KillPoint
KILL_POINTS = (
    KP("entry.orders_written:1", "both legs of the first entry written PENDING, nothing sent"),
    KP("order.sending:1", "an entry leg written PENDING, its venue about to be called"),
    KP("order.sending:2", "the other entry leg about to be called, the first maybe placed"),
    KP("order.sent:1", "the venue answered an entry leg, the ledger not updated"),
    KP("order.sent:2", "the venue answered the second entry leg, the ledger not updated"),
    KP("order.applied:1", "both entry legs answered, one applied, nothing committed"),
    KP("order.applied:2", "both entry legs applied, their commit not made"),
    KP("entry.before_booking:1", "the entry legs even, the legs and the position not committed"),
    KP("exit.orders_written:1", "both exit legs written PENDING, nothing sent"),
    KP("order.sending:3", "an exit leg written PENDING, about to be sent"),
    KP("order.sent:3", "the venue answered an exit leg, the ledger not updated"),
    KP("order.sent:4", "the venue answered the second exit leg, the ledger not updated"),
    KP("order.applied:3", "both exit legs answered, one applied, nothing committed"),
    KP("exit.before_booking:1", "the exit legs even, legs and close not committed"),
    KP("entry.orders_written:2", "the next tick's entry written PENDING, after a full round trip"),
    KP("entry.before_booking:2", "the next tick's entry hedged, not booked"),
    KP("exit.orders_written:2", "the next tick's exit written PENDING"),
    KP("exit.before_booking:2", "the next tick's exit hedged, not booked"),
    KP("repair.order_written:1", "Upbit refused the sell leg: its retry written PENDING", REFUSE_SELL),
    KP("order.sent:3", "Upbit refused the sell leg: the venue answered its retry", REFUSE_SELL),
    KP("repair.sent:1", "the retry of a refused sell leg filled, the pair not booked", REFUSE_SELL),
    KP("repair.sent:2", "the sell leg and both retries refused: before the unwind", REFUSE_SELL_3),
    KP("repair.order_written:3", "the sell leg and both retries refused: unwind written", REFUSE_SELL_3),
    KP(
        "residual.orders_written:1", "a leg left unhedged (sells refused, no coins to unwind): "
        "its residual unwind written PENDING", REFUSE_SELL_3, drain=("binance", "BTC"),
    ),
    # A crash while recovering from a crash: the restart is killed too, inside start-up recovery.
    KP(
        "entry.before_booking:1", "the entry not booked; again while recovery books it",
        in_recovery="entry.before_booking:1",
    ),
    KP(
        "repair.order_written:1", "a retry written; again once recovery's own repair was answered",
        REFUSE_SELL, in_recovery="order.sent:1",
    ),
    KP(
        "exit.orders_written:1", "both exit legs written; again while recovery books the exit",
        in_recovery="exit.before_booking:1",
    ),
)  # fmt: skip
KILL_LOOPS = 40  # a kill run stops at its failpoint, within its first ticks; a quiet tick is cheap
PREMIUM_PCT = 1.5  # Upbit's premium, and the mean it reverts to: an entry in every tick
RESTART_LOOPS = 1  # recovery runs before the first tick; the tick exits what recovery booked
RANDOM_KILLS = 3
SEED = 20_241_124


def _problems(report: Audit, after: BotRun) -> str:
    return f"after {after.label}:\n  " + "\n  ".join(report.problems[:20]) + "\n" + after.stdout[-3000:]


def _restart_and_audit(rig: CrashRig, sim: SimControl, label: str) -> BotRun:
    # Halted: no new entries, so a restart costs little more than its recovery (exits go on).
    run = rig.run(f"restart after {label}", RESTART_LOOPS, halted=True)
    assert run.code == 0, f"restart after {label} exited {run.code}:\n{run.stderr[-3000:]}"
    report = audit(sim, rig.ledger_url, rig.config)
    assert not report.problems, _problems(report, run)
    return run


def _kill(rig: CrashRig, sim: SimControl, point: KillPoint) -> str | None:
    """Run to the point (and, if it has one, restart to its recovery point); why it missed, if it did."""
    for fault in point.faults:
        sim.add_fault(**fault)
    with coins_away(sim, *point.drain) if point.drain else nullcontext():
        run = rig.run(f"kill at {point.spec}", KILL_LOOPS, failpoint=point.spec)
    sim.clear_faults()
    if run.code != SIGKILLED:
        return f"{point.spec} ({point.where}): exited {run.code} without reaching it"
    if point.in_recovery is None:
        return None
    again = rig.run(f"kill in recovery at {point.in_recovery}", RESTART_LOOPS, point.in_recovery, halted=True)
    if again.code != SIGKILLED or again.started_trading:
        return f"{point.spec}, then {point.in_recovery}: recovery never reached it (exit {again.code})"
    return None


def _kill_point_id(point: KillPoint) -> str:
    """A unique test id: the failpoint, the refusals of its run, and the recovery failpoint if any."""
    name = point.spec
    if point.faults:
        name += f"-refused{sum(int(f.get('count', 1)) for f in point.faults)}"
    if point.drain:
        name += "-drained"
    if point.in_recovery:
        name += f"-then-{point.in_recovery}"
    return name


@pytest.fixture
def rig(tmp_path: Path, sim_server: SimServer, sim: SimControl) -> CrashRig:
    """A fresh bot directory and ledger on a fresh simulator market that trades in every tick."""
    # At the simulator's default premium (0.8%) the net spread wanders near signal.min_spread_pct
    # and a few quiet seconds can pass without an entry; every kill point needs trades to reach.
    sim.steer(asset="BTC", premium_pct=PREMIUM_PCT, set_mean=True)
    return CrashRig(tmp_path / "bot", sim_server.base_url)


# One test per kill point, each on its own ledger and a reset simulator, so that parallel workers
# spread the matrix (about 60 runs of the real command in all).
@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=_kill_point_id)
def test_sigkill_at_a_failpoint_loses_no_fill_and_places_no_order_twice(
    rig: CrashRig, sim: SimControl, point: KillPoint
) -> None:

    miss = _kill(rig, sim, point)
    assert miss is None, f"failpoint never reached: {miss}"
    restart = _restart_and_audit(rig, sim, point.spec)
    assert restart.recovered(), f"nothing recovered after {point.spec}:\n{restart.stdout[-3000:]}"
    print("runs:\n  " + "\n  ".join(f"{r.label}: exit {r.code} in {r.seconds:.1f}s" for r in rig.runs))


@pytest.mark.slow
def test_sigkill_at_random_moments_on_one_ledger_keeps_it_whole(rig: CrashRig, sim: SimControl) -> None:
    rng = random.Random(SEED)
    for n in range(RANDOM_KILLS):
        delay = round(rng.uniform(1.5, 4.5), 2)
        run = rig.run(f"kill after {delay}s", 30, kill_after_s=delay)
        assert run.code in (SIGKILLED, 0), f"random kill {n} exited {run.code}:\n{run.stderr[-3000:]}"
        _restart_and_audit(rig, sim, f"a kill after {delay}s")

    final = rig.run("final clean run", 3)
    assert final.code == 0, final.stderr[-3000:]
    report = audit(sim, rig.ledger_url, rig.config)
    assert not report.problems, _problems(report, final)
    print("runs:\n  " + "\n  ".join(f"{r.label}: exit {r.code} in {r.seconds:.1f}s" for r in rig.runs))
    print(f"final: {report}")
    # The kills land anywhere; still, the runs between them trade.
    assert report.sim_orders >= 2 and report.positions >= 1
