"""One bot per ledger, with the real command: a second bot on a running bot's ledger refuses to start
(exit 2, naming the running one's pid and host) before it logs or trades; once the first is killed
with SIGKILL, a new one starts at once (no stale lock)."""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ops_harness import BotProcess, bot_env, bot_process, run_clean
from tests.e2e.runner import BUSY_LOOP, write_config

HOST = socket.gethostname()
# Long enough to outlive the test, slow enough to leave the machine to the others.
RUNNING = ("--mock", "--loops", "1000000", "--interval", "0.05")
RUNNING_LINE = r"\[LIVE\] \[METRICS\]"


def _orders(ledger: Path) -> int:
    with sqlite3.connect(ledger) as db:
        return int(db.execute("select count(*) from orders").fetchone()[0])


def _assert_refused_by(run_code: int, stderr: str, first: BotProcess, workdir: Path) -> None:
    assert run_code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # one sentence, no traceback
    assert lines[0].startswith("refused to start: another bot is already running on "), stderr
    assert f"pid {first.proc.pid} on host {HOST} (instance arb-1, since " in lines[0], stderr
    assert "stop it first" in lines[0]
    assert first.proc.poll() is None, "the refusal disturbed the running bot"
    assert not (workdir / "logs").exists(), "the refused bot set up its logs"


def _kill(first: BotProcess) -> None:
    first.send(signal.SIGKILL)
    first.proc.wait(30)
    assert first.proc.returncode == -signal.SIGKILL


def test_a_second_bot_on_the_same_data_dir_refuses_and_a_restart_after_sigkill_runs(tmp_path: Path) -> None:
    first_dir, second_dir, third_dir = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    data = first_dir / "data"
    with bot_process(first_dir, *RUNNING, overrides=BUSY_LOOP) as first:
        first.wait_for(RUNNING_LINE)
        second = run_clean(second_dir, "--mock", "--once", "--data-dir", str(data), overrides=BUSY_LOOP)
        _assert_refused_by(second.code, second.stderr, first, second_dir)
        assert f"the ledger {data / 'ledger.sqlite3'} ({data / 'ledger.sqlite3.lock'})" in second.stderr

        # `arb health` is not broken by the running bot: it passes and names it.
        health = subprocess.run(
            [sys.executable, "-m", "arbitrage", "health", "--config", str(write_config(third_dir, BUSY_LOOP)),
             "--data-dir", str(data), "--log-dir", str(third_dir / "logs")],
            cwd=third_dir, env=bot_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert health.returncode == 0, health.stdout + health.stderr
        flat = " ".join(re.sub(r"[│┃]", " ", health.stdout).split())
        row = f"instance lock OK a bot is running here, a second one would be refused: pid {first.proc.pid} "
        assert row in flat, health.stdout
        assert first.proc.poll() is None

        _kill(first)
        first.close()
    before = _orders(data / "ledger.sqlite3")
    restarted = run_clean(first_dir, "--mock", "--loops", "40", "--interval", "0", overrides=BUSY_LOOP)
    assert restarted.code == 0, restarted.stderr
    assert _orders(data / "ledger.sqlite3") >= before


def test_a_sqlite_ledger_shared_through_storage_url_refuses_a_bot_with_another_data_dir(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared" / "ledger.sqlite3"
    overrides: dict[str, Any] = {**BUSY_LOOP, "storage": {"url": f"sqlite:///{shared}"}}
    with bot_process(tmp_path / "first", *RUNNING, overrides=overrides) as first:
        first.wait_for(RUNNING_LINE)
        second = run_clean(tmp_path / "second", "--mock", "--once", overrides=overrides)
        _assert_refused_by(second.code, second.stderr, first, tmp_path / "second")
        assert f"the ledger {shared}" in second.stderr and "its own ledger" in second.stderr
        assert not (tmp_path / "second" / "data").exists()  # refused at the ledger, before its own data dir


@pytest.mark.slow
def test_two_machines_on_one_postgres_ledger_the_second_refuses(
    tmp_path: Path, pg_schema_url: Callable[[], str]
) -> None:
    url = pg_schema_url()
    overrides: dict[str, Any] = {**BUSY_LOOP, "storage": {"url": url}}
    # Two data dirs stand for two machines: only the database is shared.
    with bot_process(tmp_path / "first", *RUNNING, overrides=overrides) as first:
        first.wait_for(RUNNING_LINE)
        second = run_clean(tmp_path / "second", "--mock", "--once", overrides=overrides)
        _assert_refused_by(second.code, second.stderr, first, tmp_path / "second")
        schema = url.rsplit("schema=", 1)[1]
        assert f"the PostgreSQL ledger 127.0.0.1:5432/test schema {schema} as instance arb-1" in second.stderr
        assert "last heartbeat" in second.stderr
        assert not (tmp_path / "second" / "data").exists()
        _kill(first)
    # The server saw the connection drop and freed the lease: a new bot starts on it at once.
    restarted = run_clean(
        tmp_path / "second", "--mock", "--loops", "40", "--interval", "0", overrides=overrides
    )
    assert restarted.code == 0, restarted.stderr


def test_a_bot_whose_postgres_lease_is_lost_stops_with_exit_3(
    tmp_path: Path, pg_schema_url: Callable[[], str]
) -> None:
    import psycopg

    from arbitrage.store.postgres_lease import lease_key
    from tests.conftest import PG_ADMIN_URL

    url = pg_schema_url()
    schema = url.rsplit("schema=", 1)[1]
    overrides: dict[str, Any] = {**BUSY_LOOP, "storage": {"url": url}}
    unsigned = lease_key(schema, "arb-1") & 0xFFFF_FFFF_FFFF_FFFF
    with bot_process(tmp_path / "bot", *RUNNING, overrides=overrides) as bot:
        bot.wait_for(RUNNING_LINE)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            # What the bot sees when the server drops the lease's connection (a restart, a network cut).
            holders = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND classid = %s::oid AND objid = %s::oid",
                (unsigned >> 32, unsigned & 0xFFFF_FFFF),
            ).fetchall()
            assert len(holders) == 1, holders
            admin.execute("SELECT pg_terminate_backend(%s)", (holders[0][0],))
        # The heartbeat (every 5 s) finds the connection gone: a CRITICAL alert, then the graceful stop.
        done = bot.finish(timeout=60)
    assert done.code == 3, done.stderr
    log = (tmp_path / "bot" / "logs" / "live_loop.log").read_text()
    assert "lease lost on" in log and "stopping this bot" in log
    assert "instance lease lost" in log
