"""Recording through the real commands: `arb run --record` in mock mode, `arb record` against the
exchange simulator over real ccxt WebSocket streams, and a recorder killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from arbitrage.recording.day_file import read_journal
from arbitrage.recording.format import SCHEMA, read_books, read_metadata, recording_files
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.ops_harness import bot_env
from tests.e2e.runner import BUSY_LOOP, merge, run_bot, write_config
from tests.e2e.sim_fixture import sim_overrides
from tests.waiting import wait_until

SIM_SEED = 5
SIM_RESET_EACH_TEST = True

MOCK_MARKETS = {
    ("upbit", "BTC/KRW"), ("upbit", "ETH/KRW"), ("upbit", "USDT/KRW"),
    ("binance", "BTC/USDT"), ("binance", "ETH/USDT"),
}  # fmt: skip


def arb_record(
    workdir: Path, config: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbitrage", "record", "--config", str(config), "--log-dir", "logs", *args],
        cwd=workdir, env=bot_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_arb_run_records_every_book_of_a_mock_run(tmp_path: Path) -> None:
    loops = 25
    run = run_bot(tmp_path, "--mode", "mock", "--loops", str(loops), "--interval", "0", "--record", "rec",
                  overrides=BUSY_LOOP)  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    assert len(run.metrics_lines()) == loops
    root = tmp_path / "rec"
    files = recording_files(root)
    assert {f.parent.name for f in files} == {"upbit", "binance"}
    assert not list(root.rglob("*.part*"))  # closed by the graceful shutdown
    for f in files:
        assert pq.read_schema(f).remove_metadata() == SCHEMA
        meta = read_metadata(f)
        assert meta["version"] == 1 and meta["mode"] == "mock" and meta["book_depth"] == 10
        assert meta["venues"] == {"upbit": "upbit", "binance": "binance"}
    books = list(read_books(root))
    markets = Counter((b.venue, b.symbol) for b in books)
    # One book per market per tick, the FX market included.
    assert set(markets) >= MOCK_MARKETS and set(markets.values()) == {loops}
    assert all(len(b.bids) == 10 and b.bids[0][0] < b.asks[0][0] for b in books)

    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(root)
    assert len(frame) == len(books)
    assert frame.groupby(["venue", "symbol"]).size().to_dict() == dict(markets)


def test_arb_record_streams_the_simulator_over_websocket_and_never_trades(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    overrides = merge(sim_overrides(sim_server.base_url), {"market_data": {"use_websocket": True}})
    config = write_config(tmp_path, overrides)
    proc = arb_record(tmp_path, config, "--mode", "paper", "--dir", "rec", "--duration", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recorded" in proc.stdout
    root = tmp_path / "rec"
    books = list(read_books(root))
    markets = Counter((b.venue, b.symbol) for b in books)
    assert set(markets) >= MOCK_MARKETS, markets  # both venues' coins, and Upbit's USDT/KRW
    assert all(n >= 2 for n in markets.values()), markets  # updates, not one snapshot
    assert all(b.bids and b.asks and b.bids[0][0] < b.asks[0][0] for b in books)
    assert all(abs(b.received_ts - b.exchange_ts) < 60 for b in books)
    assert [b.received_ts for b in books] == sorted(b.received_ts for b in books)
    meta = read_metadata(recording_files(root)[0])
    assert meta["mode"] == "paper" and meta["venues"] == {"upbit": "upbit", "binance": "binance"}
    assert sim.requests(op="create_order") == [] and sim.orders() == []


def test_a_paper_run_on_rest_books_records_every_book_it_reads(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    """With no stream (REST polling; a stream that is down reads the same way), each book the
    bot reads over REST is recorded: the recording holds the market the bot traded on."""
    loops = 8
    run = run_bot(tmp_path, "--mode", "paper", "--loops", str(loops), "--interval", "0.1", "--record", "rec",
                  overrides=sim_overrides(sim_server.base_url), timeout=120)  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    assert len(run.metrics_lines()) == loops
    books = list(read_books(tmp_path / "rec"))
    markets = Counter((b.venue, b.symbol) for b in books)
    # Every market the bot reads, at least once a tick (the FX market too).
    assert set(markets) >= MOCK_MARKETS and min(markets.values()) >= loops, markets
    assert all(b.bids and b.asks and b.bids[0][0] < b.asks[0][0] for b in books)
    meta = read_metadata(recording_files(tmp_path / "rec")[0])
    assert meta["mode"] == "paper"
    assert sim.requests(op="create_order") == []


def test_a_recorder_killed_mid_file_loses_at_most_its_open_row_group(tmp_path: Path) -> None:
    overrides: dict[str, Any] = merge(
        BUSY_LOOP, {"loop": {"interval_s": 0.01}, "record": {"flush_rows": 20, "flush_s": 0.2}}
    )
    config = write_config(tmp_path, overrides)
    root = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbitrage", "record", "--config", str(config), "--mode", "mock",
         "--dir", "rec", "--log-dir", "logs"],
        cwd=tmp_path, env=bot_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def journaled() -> int:
            journals = list(root.glob("*/*.part.arrows"))
            tables = [read_journal(j) for j in journals]
            return sum(t.num_rows for t in tables if t is not None) if len(journals) == 2 else 0

        before = wait_until(lambda: journaled() >= 100, 60, "100 books written to the open files", proc=proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    parts = list(root.glob("*/*.parquet.part"))
    assert len(parts) == 2 and not recording_files(root)  # torn files, invisible to readers
    for part in parts:
        with pytest.raises(Exception):  # noqa: B017 - no footer: pyarrow cannot open it
            pq.ParquetFile(part)

    again = arb_record(tmp_path, config, "--mode", "mock", "--dir", "rec", "--duration", "0.3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert not list(root.rglob("*.part*"))
    names = sorted(f.relative_to(root).as_posix() for f in recording_files(root))
    # The killed run's files, salvaged under their own names, then the new run's next parts.
    assert [n for n in names if n.endswith(".1.parquet")], names
    salvaged = sum(pq.read_metadata(root / v / f.name).num_rows for v in ("upbit", "binance")
                   for f in recording_files(root, v) if f.name.count(".") == 1)  # fmt: skip
    assert salvaged >= before
    assert "cut short" in (tmp_path / "logs" / "live_loop.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"max_file_mb": 100, "max_total_mb": 10}, "record.max_total_mb: expected at least max_file_mb (100"),
        ({"flush_rows": 0}, "record.flush_rows"),
        ({"enabled": "yes"}, "record.enabled"),
    ],
)
def test_a_bad_record_section_exits_2_naming_the_key(
    tmp_path: Path, record: dict[str, Any], message: str
) -> None:
    config = write_config(tmp_path, {"record": record})
    proc = arb_record(tmp_path, config, "--mode", "mock", "--duration", "1")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "logs").exists()  # before anything starts
