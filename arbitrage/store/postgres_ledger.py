"""The PostgreSQL ledger (psycopg 3): the same tables with NUMERIC money, in an optional schema.

`?schema=name` on the URL selects (and creates) a schema; the rest of the URL goes to libpq.
One autocommit connection used from the loop thread; transaction() issues BEGIN/COMMIT itself.
psycopg prepares a statement on the server once it has been run a few times.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql

from arbitrage.config import DEFAULT_INSTANCE
from arbitrage.errors import LedgerUnavailable
from arbitrage.store.schema import POSTGRES, Dialect
from arbitrage.store.sql_ledger import Row, SqlLedger, money_decimal
from arbitrage.store.transaction_state import IDLE

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Any constant will do: it only has to be the same in every process that migrates a ledger.
_MIGRATION_LOCK_KEY = 0x4C45444745520001

_ACCUMULATE_DAY = (
    "INSERT INTO daily_pnl (day, realized_pnl, fees, hedge_cost, trades, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day) DO UPDATE SET "
    "realized_pnl = daily_pnl.realized_pnl + excluded.realized_pnl, fees = daily_pnl.fees + excluded.fees, "
    "hedge_cost = daily_pnl.hedge_cost + excluded.hedge_cost, trades = daily_pnl.trades + excluded.trades, "
    "updated_at = excluded.updated_at"
)


def split_schema(url: str) -> tuple[str, str | None]:
    """The libpq URL without `schema`, and the schema it named (None: the server's default)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise LedgerUnavailable(f"storage.url: schema {schema!r} is not a plain identifier")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _where(url: str) -> str:
    # host:port/db only: the URL's user info may hold a password.
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresLedger(SqlLedger):
    dialect: ClassVar[Dialect] = POSTGRES

    def __init__(
        self,
        url: str,
        synchronous: str = "FULL",
        connect_timeout_s: int = 5,
        instance: str = DEFAULT_INSTANCE,
    ) -> None:
        super().__init__(instance)
        conninfo, self.schema = split_schema(url)
        self.where = _where(url)
        extra: dict[str, Any] = (
            {} if "connect_timeout" in conninfo else {"connect_timeout": connect_timeout_s}
        )
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"PostgreSQL ledger at {self.where} unreachable: {_one_line(exc)}"
            ) from None
        self._cur = self._conn.cursor()
        self._full = synchronous == "FULL"
        self._sql: dict[str, str] = {}
        try:
            # NORMAL in SQLite's terms: a crash may lose the last commits but never corrupts.
            self._cur.execute("SET synchronous_commit = " + ("on" if synchronous == "FULL" else "off"))
            if self.schema:
                self._cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            self._migrate()
        except psycopg.Error as exc:
            self._conn.close()
            raise LedgerUnavailable(f"PostgreSQL ledger at {self.where}: {_one_line(exc)}") from None
        except BaseException:
            self._conn.close()
            raise

    def _lock_schema(self) -> None:
        self._run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
        if self.schema:
            self._cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))

    def _statement(self, text: str) -> str:
        found = self._sql.get(text)
        if found is None:
            found = self._sql[text] = text.replace("?", "%s")
        return found

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            with self._lock:
                self._cur.execute(self._statement(sql), params)
                return self._cur.rowcount
        except psycopg.Error as exc:
            raise self._failed(_one_line(exc), unique=isinstance(exc, errors.UniqueViolation)) from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._lock:
                self._cur.executemany(self._statement(sql), rows)
        except psycopg.Error as exc:
            raise self._failed(_one_line(exc), unique=isinstance(exc, errors.UniqueViolation)) from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            with self._lock:
                self._cur.execute(self._statement(sql), params)
                return self._cur.fetchall()
        except psycopg.Error as exc:
            raise self._failed(_one_line(exc), unique=isinstance(exc, errors.UniqueViolation)) from exc

    def _begin(self, durable: bool) -> None:
        self._run("BEGIN")
        if not durable and self._full:
            # This transaction alone commits without waiting for the WAL flush (SQLite's NORMAL).
            self._run("SET LOCAL synchronous_commit = off")

    def _commit(self) -> None:
        self._run("COMMIT")

    def _rollback(self) -> None:
        if self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        # When the connection is gone, the server has dropped the open transaction with it.
        with contextlib.suppress(psycopg.OperationalError):
            self._conn.execute("ROLLBACK")

    _money = staticmethod(money_decimal)

    def _accumulate_day(
        self, day: str, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int, ts: float
    ) -> None:
        # NUMERIC adds exactly in SQL, so one upsert is the whole atomic step.
        self._run(_ACCUMULATE_DAY, (day, realized, fees, hedge_cost, trades, ts))

    def flush(self) -> None:
        # Every write is committed as it happens; nothing is buffered on this side.
        self._rows("SELECT 1")

    def close(self) -> None:
        self._tx = IDLE
        self._conn.close()
