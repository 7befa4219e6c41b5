"""`arb replay`, the real command: a recording of the mock market (scripts/make_recording.py) and
one of the exchange simulator's books read through ccxt, replayed into ledgers that are the same
run after run and whose figures the command prints to the unit."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from arbitrage.recording.batch_writer import BatchWriter
from arbitrage.sim.server import SimServer
from tests.e2e.runner import REPO, base_config, merge
from tests.venues.venue_rigs import ccxt_venue

SECONDS = 300  # five minutes of data: 300 ticks at loop.interval_s 1
START = "2026-01-05T00:00:00"
T0 = 1_767_571_200.0


def arb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbitrage", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def write_config(path: Path, overrides: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(merge(base_config(), overrides or {})), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Five minutes of the mock market, one book a second per market, and the config it trades."""
    root = tmp_path_factory.mktemp("replay")
    config = write_config(root / "config.yml", {"mode": {"current": "mock"}})
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_recording.py"), "--config", str(config),
         "--out", str(root / "rec"), "--seconds", str(SECONDS), "--start", START],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root, config


def dump(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger) as conn:
        return list(conn.iterdump())


def ledger_sums(ledger: Path) -> dict[str, Decimal | int]:
    with sqlite3.connect(ledger) as conn:
        positions = conn.execute("SELECT realized_pnl, entry_fees, exit_fees FROM positions").fetchall()
        hedges = [Decimal(c) for (c,) in conn.execute("SELECT cost FROM hedge_events")]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return {
        "pnl": sum((Decimal(p[0]) for p in positions), Decimal(0)) + sum(hedges, Decimal(0)),
        "trades": len(positions),
        "fees": sum((Decimal(p[1]) + Decimal(p[2]) for p in positions), Decimal(0)),
        "orders": orders,
    }


def table_rows(stdout: str) -> list[list[str]]:
    """The comparison table's data rows, cells stripped."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


def money(cell: str) -> Decimal:
    return Decimal(cell.replace(",", ""))


def test_a_replay_is_the_same_each_time_and_reports_its_ledger(recording: tuple[Path, Path]) -> None:
    root, config = recording
    first = arb("replay", "--data", "rec", "--config", str(config), "--out", "a", cwd=root)
    second = arb("replay", "--data", "rec", "--config", str(config), "--out", "b", cwd=root)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert f"{SECONDS:,} ticks a run" in first.stdout
    ledger = root / "a" / "ledger.sqlite3"
    assert dump(ledger) == dump(root / "b" / "ledger.sqlite3")  # the same ledger, row for row
    sums = ledger_sums(ledger)
    assert sums["trades"] > 0, "the recorded premium should have opened positions"
    [row] = table_rows(first.stdout)
    variant, pnl, trades, _win, fees, _dd, orders, code, where = row
    assert (variant, code, where) == ("(config)", "0", "a/ledger.sqlite3")
    cent = Decimal("0.01")
    assert money(pnl) == Decimal(sums["pnl"]).quantize(cent)
    assert money(fees) == Decimal(sums["fees"]).quantize(cent)
    assert (int(trades), int(orders)) == (sums["trades"], sums["orders"])
    # The clock followed the data: the first order is stamped in the recording's time, not today's.
    with sqlite3.connect(ledger) as conn:
        first_ts, last_ts = conn.execute("SELECT min(created_at), max(created_at) FROM orders").fetchone()
    assert T0 <= first_ts <= last_ts <= T0 + SECONDS
    lines = (root / "a" / "logs" / "live_loop.log").read_text(encoding="utf-8").count("[METRICS]")
    assert lines == SECONDS // 60  # a metrics line a minute of data time: ticks 1, 61, ...


def test_from_and_to_replay_only_their_window(recording: tuple[Path, Path]) -> None:
    root, config = recording
    done = arb("replay", "--data", "rec", "--config", str(config), "--out", "window",
               "--from", "2026-01-05T00:01:00", "--to", "2026-01-05T00:02:00", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2026-01-05 00:01:00 UTC .. 2026-01-05 00:02:00 UTC, 61 ticks a run" in done.stdout
    with sqlite3.connect(root / "window" / "ledger.sqlite3") as conn:
        stamps = [ts for (ts,) in conn.execute("SELECT created_at FROM orders")]
    assert all(T0 + 60 <= ts <= T0 + 120 for ts in stamps)


def test_a_sweep_replays_each_value_in_its_own_ledger(recording: tuple[Path, Path]) -> None:
    root, config = recording
    done = arb("replay", "--data", "rec", "--config", str(config), "--out", "sweep",
               "--sweep", "signal.min_spread_pct=0.3,1.5", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row[0]: row for row in table_rows(done.stdout)}
    assert set(rows) == {"signal.min_spread_pct=0.3", "signal.min_spread_pct=1.5"}
    for name, folder in (("signal.min_spread_pct=0.3", "v1"), ("signal.min_spread_pct=1.5", "v2")):
        sums = ledger_sums(root / "sweep" / folder / "ledger.sqlite3")
        assert int(rows[name][2]) == sums["trades"]
        assert money(rows[name][1]) == Decimal(sums["pnl"]).quantize(Decimal("0.01"))
    # A higher bar for the net spread trades less on the same data.
    assert int(rows["signal.min_spread_pct=1.5"][2]) < int(rows["signal.min_spread_pct=0.3"][2])


def test_what_a_replay_refuses(recording: tuple[Path, Path]) -> None:
    root, config = recording
    done = arb("replay", "--data", "rec", "--config", str(config), "--out", "again",
               "--to", "2026-01-05T00:00:05", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = arb("replay", "--data", "rec", "--config", str(config), "--out", "again", cwd=root)
    assert again.returncode == 2
    assert "already holds a ledger" in again.stderr
    xrp = write_config(root / "xrp.yml", {"mode": {"current": "mock"}, "symbols": ["BTC", "ETH", "XRP"],
                                          "mock": {"assets": {"XRP": {"price": 800}}}})  # fmt: skip
    missing = arb("replay", "--data", "rec", "--config", str(xrp), "--out", "xrp", cwd=root)
    assert missing.returncode == 2
    assert "error: --data rec has no recording of " in missing.stderr
    assert "XRP/KRW on upbit" in missing.stderr and "XRP/USDT on binance" in missing.stderr
    nothing = arb("replay", "--data", "nowhere", "--config", str(config), "--out", "n", cwd=root)
    assert (nothing.returncode, nothing.stderr.strip()) == (2, "error: --data nowhere: no such directory")
    bad = arb("replay", "--data", "rec", "--config", str(config), "--sweep", "signal.min_spread_pct=-1",
              cwd=root)  # fmt: skip
    assert bad.returncode == 2
    assert "signal.min_spread_pct" in bad.stderr


def test_a_recording_of_the_simulator_through_ccxt_replays(
    sim_server: SimServer, tmp_path: Path
) -> None:
    """The simulator's books as the bot reads them (ccxt over a real socket), written as a recording
    by a fixture writer (arb record's files have the same format), then replayed in paper mode."""
    venues = {name: ccxt_venue(name, sim_server.base_url, None) for name in ("upbit", "binance")}
    markets = [("upbit", "BTC/KRW"), ("upbit", "ETH/KRW"), ("upbit", "USDT/KRW"),
               ("binance", "BTC/USDT"), ("binance", "ETH/USDT")]  # fmt: skip
    writer = BatchWriter(tmp_path / "rec", 10, "paper", {"upbit": "upbit", "binance": "binance"})
    began = time.time()
    try:
        while time.time() - began < 6.0:
            writer.write(venues[v].order_book(s, 10) for v, s in markets)
    finally:
        for venue in venues.values():
            venue.close()
    files = writer.close()
    assert {f.parent.name for f in files} == {"upbit", "binance"}
    config = write_config(tmp_path / "config.yml", {"mode": {"current": "paper"}})
    done = arb("replay", "--data", "rec", "--config", str(config), "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ticks = re.search(r"([\d,]+) ticks a run", done.stdout)
    # About six seconds of data at a tick a second.
    assert ticks is not None and int(ticks.group(1)) >= 4, done.stdout
    assert "[METRICS]" in (tmp_path / "run" / "logs" / "live_loop.log").read_text(encoding="utf-8")
    assert "stale" not in done.stderr


def test_a_ledger_named_with_ledger_is_continued(recording: tuple[Path, Path]) -> None:
    """The second half replayed into the first half's ledger: recovery and the open positions
    carry on, order ids continue the ledger's sequence; the live bot's ledger is never a target."""
    root, config = recording
    ledger = root / "halves.sqlite3"
    first = arb("replay", "--data", "rec", "--config", str(config), "--out", "h1", "--ledger", str(ledger),
                "--to", "2026-01-05T00:02:30", cwd=root)  # fmt: skip
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(ledger) as conn:
        orders_then = conn.execute("SELECT client_order_id FROM orders ORDER BY client_order_id").fetchall()
        open_then = conn.execute("SELECT position_id FROM positions WHERE state = 'OPEN'").fetchall()
    second = arb("replay", "--data", "rec", "--config", str(config), "--out", "h2", "--ledger", str(ledger),
                 "--from", "2026-01-05T00:02:30", cwd=root)  # fmt: skip
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(ledger) as conn:
        orders_now = conn.execute("SELECT client_order_id FROM orders ORDER BY client_order_id").fetchall()
        closed_later = conn.execute(
            "SELECT count(*) FROM positions WHERE closed_at >= ?", (T0 + 150,)
        ).fetchone()[0]
    assert len(orders_now) > len(orders_then) and set(orders_then) <= set(orders_now)
    if open_then:  # positions left open by the first half are the second half's to close
        assert closed_later > 0
    (root / "data").mkdir(exist_ok=True)
    live = arb("replay", "--data", "rec", "--config", str(config), "--ledger", "data/ledger.sqlite3",
               cwd=root)  # fmt: skip
    assert live.returncode == 2
    assert "the ledger `arb run` keeps" in live.stderr
