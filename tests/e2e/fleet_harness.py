"""Several `arb run` workers on one PostgreSQL schema and one Redis key prefix: start them, watch
the shared budget in Redis while they trade, and check the ledger for what it promised."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import redis

from arbitrage.store.postgres_ledger import split_schema
from tests.e2e.ops_harness import bot_env
from tests.e2e.runner import BUSY_LOOP, SCRIPT, merge, write_config
from tests.waiting import wait_until

REDIS_DB_URL = "redis://127.0.0.1:6379/13"  # the fleet tests' own Redis database


def worker_config(
    instance: str, symbols: list[str], ledger_url: str, prefix: str, **extra: Any
) -> dict[str, Any]:
    base = {
        **BUSY_LOOP,
        "instance": instance,
        "symbols": symbols,
        "storage": {"url": ledger_url},
        "redis": {"enabled": True, "url": REDIS_DB_URL, "key_prefix": prefix},
        "fleet": {"enabled": True, "key_prefix": prefix, "lease_s": 2.0},
        "health_server": {"enabled": False},
    }
    return merge(base, extra)


@dataclass
class Worker:
    instance: str
    workdir: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        """The end of its stderr (a refusal to start is there) and of its loop's log."""
        parts = []
        for path in (self.workdir / "stderr.txt", self.workdir / "logs" / "live_loop.log"):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(f"--- {path.name}\n{text[-3000:]}")
        return "\n".join(parts) or "(no output)"


def start_worker(
    workdir: Path, config: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> Worker:
    """`scripts/run_live.py` in `workdir` with `config`, in the test's environment cleared of the
    bot's own variables, plus `env` (LIVE_ENV for a live worker, which also needs the confirm file)."""
    cfg = write_config(workdir, config)
    command = [sys.executable, str(SCRIPT), "--config", str(cfg), "--log-dir", "logs", "--data-dir", "data"]
    with (workdir / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            [*command, *args],
            cwd=workdir,
            env=bot_env(env),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Worker(config["instance"], workdir, proc)


def safety_logs(workers: list[Worker]) -> str:
    """Every worker's safety log (its refusals), run together."""
    logs = [w.workdir / "logs" / "safety.log" for w in workers]
    return "".join(log.read_text(encoding="utf-8") for log in logs if log.exists())


def stop_all(workers: list[Worker]) -> None:
    """SIGTERM to every worker still running (a graceful stop), then wait; kill one that hangs."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


def _reserved(fields: dict[bytes, bytes]) -> dict[str, float]:
    """A worker's `pos` hash without its sums' fields: reservation id -> exposure."""
    return {k.decode(): float(v) for k, v in fields.items() if not k.startswith(b"~")}


def reservations(client: redis.Redis, prefix: str) -> dict[str, dict[str, float]]:
    """Every worker's reservations (slot and exposure) as Redis holds them, a dead worker's too."""
    found: dict[str, dict[str, float]] = {}
    for key in client.scan_iter(f"{prefix}:pos:*"):
        found[key.decode().rsplit(":", 1)[1]] = _reserved(client.hgetall(key))
    return found


@dataclass
class BudgetSampler:
    """Samples the fleet's reservations in Redis from a thread until stopped: the most slots and
    exposure ever reserved at one instant (each sample is one MULTI, so one instant)."""

    client: redis.Redis
    prefix: str
    max_slots: int = 0
    max_exposure: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            keys = list(self.client.scan_iter(f"{self.prefix}:pos:*"))
            pipe = self.client.pipeline(transaction=True)
            for key in keys:
                pipe.hgetall(key)
            values = [x for fields in pipe.execute() for x in _reserved(fields).values()]
            self.max_slots = max(self.max_slots, len(values))
            self.max_exposure = max(self.max_exposure, sum(values))
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass(frozen=True)
class LedgerPosition:
    instance: str
    opened_at: float
    closed_at: float | None
    entry_cost: Decimal


def ledger_rows(url: str) -> tuple[list[LedgerPosition], list[tuple[str, float]]]:
    """Every worker's positions and its orders' (instance, created_at), straight from the schema."""
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        if conn.execute("SELECT to_regclass('positions')").fetchone() == (None,):
            return [], []  # no worker has created the ledger yet
        positions = [
            LedgerPosition(*row)
            for row in conn.execute(
                "SELECT instance, opened_at, closed_at, entry_cost FROM positions"
            ).fetchall()
        ]
        orders = [(str(i), float(t)) for i, t in conn.execute("SELECT instance, created_at FROM orders")]
    return positions, orders


def order_reasons(url: str) -> list[str]:
    """Why each order the workers wrote was refused or failed, where one was."""
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return [str(r) for (r,) in conn.execute("SELECT reason FROM orders WHERE reason IS NOT NULL")]


def open_at(positions: list[LedgerPosition], ts: float) -> list[LedgerPosition]:
    return [p for p in positions if p.opened_at <= ts and (p.closed_at is None or p.closed_at > ts)]


def delete_keys(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def traded_since(url: str, ts: float) -> set[str]:
    """The workers with an order in the ledger created after `ts`."""
    _, orders = ledger_rows(url)
    return {i for i, created in orders if created > ts}


def kill_holding_a_position(
    worker: Worker, url: str, client: redis.Redis, prefix: str, lease_s: float, most: int | None = None
) -> float:
    """SIGKILL `worker` while it holds an open position (and, with `most`, no more than that many
    slots of the fleet's budget, in flight included), and check what the budget does without its
    help: its lease (its balances in flight) ends within `lease_s`, while its slots and exposure stay,
    as its positions are still open. Returns when it was killed."""

    def holding() -> list[LedgerPosition]:
        held = [p for p in open_at(ledger_rows(url)[0], time.time()) if p.instance == worker.instance]
        if held and most is not None and len(reservations(client, prefix).get(worker.instance, {})) > most:
            return []
        return held

    what = f"{worker.instance} to hold an open position"
    wait_until(holding, 120, what, every_s=0.02, proc=worker.proc, details=worker.output)
    worker.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    worker.proc.wait(timeout=30)
    lease = f"{prefix}:res:{worker.instance}"
    wait_until(lambda: not client.exists(lease), lease_s + 5, f"{worker.instance}'s lease to expire")
    freed_after = time.time() - killed_at
    assert freed_after <= lease_s + 1.0, f"{worker.instance}'s lease outlived it: {freed_after:.2f}s"
    held_by_dead, still_open = reservations(client, prefix).get(worker.instance, {}), holding()
    assert len(held_by_dead) >= len(still_open) > 0, (held_by_dead, still_open)
    # An entry's reservation is its planned notional; its fill can come out a little dearer.
    assert sum(held_by_dead.values()) >= 0.99 * float(sum(p.entry_cost for p in still_open))
    return killed_at
