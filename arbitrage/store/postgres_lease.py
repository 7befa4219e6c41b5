"""One bot per (PostgreSQL ledger, instance): a lease that holds across machines.

The lease is a session advisory lock, keyed by the ledger's schema and the instance name, held on
a connection of its own for the whole run: when the holder dies, its connection drops and the
server frees the lock, so nothing stale remains. Workers with different instance names may share
one ledger (scale-out); two with the same name may not. A row in `instance_leases` (pid, host,
started_at, heartbeat_at) says who holds it, so that a refusal can name the running bot.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from arbitrage.errors import LedgerUnavailable
from arbitrage.store.instance_lock import GRACE_S, LockOwner, LostFn, refusal
from arbitrage.store.postgres_ledger import _MIGRATION_LOCK_KEY, _one_line, _where, split_schema

log = logging.getLogger("arbitrage.ledger")

HEARTBEAT_S = 5.0
_POLL_S = 0.1

_LEASES_DDL = (
    "CREATE TABLE IF NOT EXISTS instance_leases (instance TEXT PRIMARY KEY, pid INTEGER NOT NULL, "
    "host TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL)"
)
_UPSERT = (
    "INSERT INTO instance_leases (instance, pid, host, started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (instance) DO UPDATE SET pid = excluded.pid, host = excluded.host, "
    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
)
_SELECT = "SELECT pid, host, started_at, heartbeat_at FROM instance_leases WHERE instance = %s"
_HEARTBEAT = "UPDATE instance_leases SET heartbeat_at = %s WHERE instance = %s AND pid = %s AND host = %s"
_DELETE = "DELETE FROM instance_leases WHERE instance = %s AND pid = %s AND host = %s"
# Whether anyone holds the advisory lock, read from pg_locks without trying to take it.
_HELD = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::oid AND objid = %s::oid"
)


def lease_key(schema: str, instance: str) -> int:
    """The advisory lock's 64-bit key; stable across processes and machines (unlike hash())."""
    digest = hashlib.blake2b(f"arbitrage-lease\0{schema}\0{instance}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _connect(url: str, connect_timeout_s: int) -> tuple[psycopg.Connection[Any], str]:
    """An autocommit connection on the ledger's schema, and that schema's name."""
    conninfo, schema = split_schema(url)
    extra: dict[str, Any] = {} if "connect_timeout" in conninfo else {"connect_timeout": connect_timeout_s}
    try:
        conn = psycopg.connect(conninfo, autocommit=True, **extra)
    except psycopg.Error as exc:
        raise LedgerUnavailable(f"PostgreSQL ledger at {_where(url)} unreachable: {_one_line(exc)}") from None
    try:
        conn.execute("SET statement_timeout = 5000")  # a hung server must not hang a heartbeat or a start
        # A holder whose machine vanished (no FIN ever sent) is found dead by the server's keepalive
        # probes within about a minute, which frees its lock; over a Unix socket these do nothing.
        conn.execute("SET tcp_keepalives_idle = 30")
        conn.execute("SET tcp_keepalives_interval = 10")
        conn.execute("SET tcp_keepalives_count = 3")
        if schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        else:
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = str(row[0]) if row and row[0] else "public"
    except psycopg.Error as exc:
        conn.close()
        raise LedgerUnavailable(f"PostgreSQL ledger at {_where(url)}: {_one_line(exc)}") from None
    return conn, schema


def _read_holder(conn: psycopg.Connection[Any], instance: str) -> LockOwner | None:
    try:
        row = conn.execute(_SELECT, (instance,)).fetchone()
    except psycopg.errors.UndefinedTable:
        return None  # the holder has not created the table yet
    if row is None:
        return None
    pid, host, started_at, heartbeat_at = row
    return LockOwner(instance, int(pid), str(host), float(started_at), float(heartbeat_at))


class PostgresLease:
    """The advisory lock and lease row of one instance, kept alive by a heartbeat thread."""

    def __init__(
        self, conn: psycopg.Connection[Any], owner: LockOwner, where: str, key: int,
        now: Callable[[], float], heartbeat_s: float,
    ) -> None:  # fmt: skip
        self._conn = conn
        self._owner = owner
        self.where = where
        self._key = key
        self._now = now
        self._on_lost: LostFn | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="ledger-lease", daemon=True
        )
        self._thread.start()

    @classmethod
    def acquire(
        cls,
        url: str,
        owner: LockOwner,
        now: Callable[[], float],
        *,
        grace_s: float = GRACE_S,
        heartbeat_s: float = HEARTBEAT_S,
        connect_timeout_s: int = 5,
    ) -> PostgresLease:
        conn, schema = _connect(url, connect_timeout_s)
        where = f"the PostgreSQL ledger {_where(url)} schema {schema} as instance {owner.instance}"
        key = lease_key(schema, owner.instance)
        try:
            deadline = time.monotonic() + grace_s
            while not _try_lock(conn, key):
                if time.monotonic() >= deadline:
                    raise refusal(where, _read_holder(conn, owner.instance), "", now())
                time.sleep(_POLL_S)
            with conn.transaction():
                # The ledger's migration lock: CREATE ... IF NOT EXISTS races itself across sessions.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                conn.execute(_LEASES_DDL)
                conn.execute(
                    _UPSERT, (owner.instance, owner.pid, owner.host, owner.started_at, owner.started_at)
                )
        except psycopg.Error as exc:
            conn.close()
            raise LedgerUnavailable(f"PostgreSQL ledger at {_where(url)}: lease: {_one_line(exc)}") from None
        except BaseException:
            conn.close()  # drops the advisory lock if it was taken
            raise
        return cls(conn, owner, where, key, now, heartbeat_s)

    def watch(self, on_lost: LostFn) -> None:
        self._on_lost = on_lost

    def _beat(self, every_s: float) -> None:
        o = self._owner
        while not self._stop.wait(every_s):
            try:
                self._conn.execute(_HEARTBEAT, (self._now(), o.instance, o.pid, o.host))
            except psycopg.Error as exc:
                # The connection is what holds the lock: with it gone, another bot could start.
                text = (
                    f"lease lost on {self.where}: {_one_line(exc)}; "
                    "another bot of this instance could now start on this ledger"
                )
                log.error(text)
                if self._on_lost is not None:
                    self._on_lost(text)
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        o = self._owner
        try:
            self._conn.execute(_DELETE, (o.instance, o.pid, o.host))
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.Error as exc:  # closing the connection frees the lock all the same
            log.warning("clearing the lease on %s failed: %s", self.where, _one_line(exc))
        finally:
            self._conn.close()


def _try_lock(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def probe_lease(url: str, instance: str, connect_timeout_s: int = 5) -> tuple[bool, LockOwner | None]:
    """(held, holder) without taking the lock: for `arb health`, which only reads."""
    conn, schema = _connect(url, connect_timeout_s)
    try:
        unsigned = lease_key(schema, instance) & 0xFFFF_FFFF_FFFF_FFFF
        held = conn.execute(_HELD, (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone() is not None
        return held, _read_holder(conn, instance) if held else None
    finally:
        conn.close()
