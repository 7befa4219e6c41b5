"""The SQLite ledger: one WAL-mode file, one connection, written from the loop thread.

Writes happen on one thread at a time (the loop's); check_same_thread is off only so that
shutdown may close the connection from wherever it runs. Other processes (`arb health`,
`arb report`) may read concurrently thanks to WAL. A second connection on a thread of its own
checkpoints the WAL, so that the checkpoint's fsyncs never stall a commit of the loop.
"""

from __future__ import annotations

import decimal
import logging
import sqlite3
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from arbitrage.config import DEFAULT_INSTANCE
from arbitrage.errors import LedgerUnavailable
from arbitrage.store.schema import SQLITE, Dialect
from arbitrage.store.sql_ledger import Row, SqlLedger, money_text
from arbitrage.store.transaction_state import IDLE

log = logging.getLogger("arbitrage.ledger")

# Sums of 28-digit amounts must stay exact, as PostgreSQL's NUMERIC keeps them.
_EXACT = decimal.Context(prec=200)

CHECKPOINT_EVERY_S = 0.5
# SQLite's own checkpoint on commit stays as a backstop should the checkpointer fall behind;
# normally the WAL never gets near this many pages (about 40 MB).
AUTOCHECKPOINT_PAGES = 10_000

_SELECT_DAY = "SELECT realized_pnl, fees, hedge_cost, trades FROM daily_pnl WHERE day = ?"
_UPSERT_DAY = (
    "INSERT INTO daily_pnl (day, realized_pnl, fees, hedge_cost, trades, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (day) DO UPDATE SET realized_pnl = excluded.realized_pnl, fees = excluded.fees, "
    "hedge_cost = excluded.hedge_cost, trades = excluded.trades, updated_at = excluded.updated_at"
)


class SqliteLedger(SqlLedger):
    dialect: ClassVar[Dialect] = SQLITE

    def __init__(
        self,
        path: str,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        instance: str = DEFAULT_INSTANCE,
    ) -> None:
        super().__init__(instance)
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit BEGINs; a lone statement commits itself and
            # transaction() issues BEGIN IMMEDIATE, taking the write lock up front so a
            # read-modify-write cannot interleave with another writer.
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if path != ":memory:" and str(mode).lower() != "wal":
                conn.close()
                raise LedgerUnavailable(f"SQLite ledger {path}: the file system refused WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailable(f"SQLite ledger {path}: {exc}") from None
        self._conn = conn
        self._full = synchronous == "FULL"
        self._relaxed = False  # synchronous lowered to NORMAL for the open non-durable transaction
        # One cursor reused for every statement; sqlite3 keeps each statement prepared in its cache.
        self._cur = conn.cursor()
        try:
            self._migrate()
        except BaseException:
            conn.close()
            raise
        self._checkpointer: WalCheckpointer | None = None
        if path != ":memory:":
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._checkpointer = WalCheckpointer(path, CHECKPOINT_EVERY_S)

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            with self._lock:
                return self._cur.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise self._failed(str(exc), unique=_is_unique(exc)) from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._lock:
                self._cur.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._failed(str(exc), unique=_is_unique(exc)) from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            # fetchall steps the statement to its end, which is when a lone write commits.
            with self._lock:
                return self._cur.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(str(exc), unique=_is_unique(exc)) from exc

    def _begin(self, durable: bool) -> None:
        if not durable and self._full:
            # SQLite takes the safety level only outside a transaction. In WAL mode NORMAL
            # appends the commit without an fsync; the next FULL commit's fsync (or a
            # checkpoint) carries it to disk, and a process crash never loses it.
            self._run("PRAGMA synchronous=NORMAL")
            self._relaxed = True
        try:
            self._run("BEGIN IMMEDIATE")
        except BaseException:
            # No transaction opened (busy past the timeout, say): the next one may write orders,
            # and they must not commit at the lowered safety level.
            self._restore_safety()
            raise

    def _commit(self) -> None:
        self._run("COMMIT")
        self._restore_safety()

    def _rollback(self) -> None:
        # Some errors (disk full, I/O) make SQLite roll back on its own.
        if self._conn.in_transaction:
            self._run("ROLLBACK")
        self._restore_safety()

    def _restore_safety(self) -> None:
        if self._relaxed:
            self._relaxed = False
            self._run("PRAGMA synchronous=FULL")

    _money = staticmethod(money_text)

    def _accumulate_day(
        self, day: str, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int, ts: float
    ) -> None:
        # Text columns cannot be summed exactly in SQL, so read, add in Python and write back,
        # inside one write-locked transaction.
        with self.transaction():
            rows = self._rows(_SELECT_DAY, (day,))
            if rows:
                r, f, h, n = rows[0]
                realized = _EXACT.add(Decimal(r), realized)
                fees = _EXACT.add(Decimal(f), fees)
                hedge_cost = _EXACT.add(Decimal(h), hedge_cost)
                trades += int(n)
            self._run(_UPSERT_DAY, (day, str(realized), str(fees), str(hedge_cost), trades, ts))

    def flush(self) -> None:
        # Writes are committed as they happen; folding the WAL into the database file leaves a
        # ledger that a copy of the .sqlite3 file alone fully describes.
        self._rows("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._tx = IDLE
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._conn.close()


class WalCheckpointer:
    """Folds the WAL into the database file every `every_s`, from its own thread and connection.

    A PASSIVE checkpoint neither waits for nor blocks the writer, and sqlite3 releases the GIL
    while it runs, so its fsyncs cost the loop nothing. Durability does not depend on it: a
    committed transaction is in the WAL (fsynced there under FULL) whether or not it was folded.
    """

    def __init__(self, path: str, every_s: float) -> None:
        self._every_s = every_s
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next round, or SQLite's own backstop, catches up
                log.debug("WAL checkpoint skipped: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def _is_unique(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
