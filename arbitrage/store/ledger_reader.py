"""Reads a ledger for `arb report` without writing to it, safe beside a running bot.

SQLite is opened read-only (`mode=ro`): a WAL reader never blocks the bot's writer, and it
creates nothing, migrates nothing and takes no instance lock. PostgreSQL is read in one
READ ONLY, REPEATABLE READ transaction. Either way every query sees one consistent snapshot.
Rows come back as plain dataclasses with money as exact Decimals.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from arbitrage.domain.rejections import RejectionCount
from arbitrage.errors import LedgerUnavailable
from arbitrage.store.schema import INSTANCE_VERSION, SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class OrderGroup:
    """The orders of one venue, market, side, state and fee currency, summed exactly.

    The report needs no single order, and summing in the database keeps a ledger of 100,000
    orders from becoming 100,000 Python objects."""

    venue: str
    symbol: str
    side: str
    state: str
    fee_currency: str | None
    orders: int
    with_fills: int  # orders that filled something or paid a fee
    filled_qty: Decimal
    fee: Decimal  # in fee_currency, the market's quote currency


@dataclass(frozen=True, slots=True)
class PositionRow:
    position_id: str
    asset: str
    buy_venue: str
    sell_venue: str
    qty: Decimal  # still open
    closed_qty: Decimal
    entry_cost: Decimal
    entry_proceeds: Decimal
    entry_fees: Decimal
    exit_fees: Decimal
    entry_spread_pct: float  # the opportunity's expected net spread
    exit_reason: str | None
    state: str
    opened_at: float
    closed_at: float | None
    realized_pnl: Decimal
    updated_at: float
    instance: str = ""  # the worker that opened it


@dataclass(frozen=True, slots=True)
class HedgeRow:
    group_id: str
    asset: str
    venue: str
    kind: str  # retry | unwind | residual
    qty: Decimal
    cost: Decimal  # signed result booked into realized PnL: negative is a loss
    ts: float
    instance: str = ""


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str
    realized_pnl: Decimal
    fees: Decimal
    hedge_cost: Decimal
    trades: int


@dataclass(frozen=True, slots=True)
class VerdictCount:
    verdict: str  # APPROVED | REJECTED
    reason: str | None
    count: int


@dataclass(frozen=True, slots=True)
class LedgerContents:
    """Everything the report needs, read in one snapshot."""

    orders: list[OrderGroup]  # created in the window
    all_orders: list[OrderGroup]  # the whole ledger: inventory is a state, not a flow
    positions: list[PositionRow]
    hedges: list[HedgeRow]
    days: list[DayRow]
    verdicts: list[VerdictCount]
    opportunity_ts: tuple[float | None, float | None]  # span of the opportunities in the window
    # Safety rejections per trading day, asset, pair and reason; None: a ledger older than that table.
    rejections: list[RejectionCount] | None = None
    instance: str | None = None  # read for this worker only; days are then the fleet's and left out


# {filled} and {fee} sum money exactly: PostgreSQL's SUM over NUMERIC; SQLite's SUM would go through binary
# floats, so its text values are concatenated and summed as Decimals in Python.
_ORDER_GROUPS = (
    "SELECT venue, symbol, side, state, fee_currency, COUNT(*), "
    "SUM(CASE WHEN CAST(filled_qty AS REAL) != 0 OR CAST(fee AS REAL) != 0 THEN 1 ELSE 0 END), "
    "{filled}, {fee} FROM orders WHERE created_at >= ? AND created_at < ?{mine} "
    "GROUP BY venue, symbol, side, state, fee_currency ORDER BY venue, symbol, side, state, fee_currency"
)
_POSITIONS = (
    "SELECT position_id, asset, buy_venue, sell_venue, qty, closed_qty, entry_cost, entry_proceeds, "
    "entry_fees, exit_fees, entry_spread_pct, exit_reason, state, opened_at, closed_at, realized_pnl, "
    "updated_at, {instance} FROM positions WHERE 1 = 1{mine} ORDER BY opened_at, position_id"
)
_HEDGES = (
    "SELECT group_id, asset, venue, kind, qty, cost, ts, {instance} FROM hedge_events WHERE 1 = 1{mine} "
    "ORDER BY ts, id"
)
_DAYS = "SELECT day, realized_pnl, fees, hedge_cost, trades FROM daily_pnl ORDER BY day"
_VERDICTS = (
    "SELECT verdict, reason, COUNT(*), MIN(ts), MAX(ts) FROM opportunities WHERE ts >= ? AND ts < ?{mine} "
    "GROUP BY verdict, reason ORDER BY verdict, reason"
)
# ±inf do not bind portably; this range of epoch seconds is wide enough for any ledger.
ALL_TIME = (-1e18, 1e18)
_REQUIRED = ("meta", "orders", "positions", "opportunities", "hedge_events", "daily_pnl")
_REJECTIONS_TABLE = "safety_rejections"  # schema v4 on
_REJECTIONS = (
    "SELECT day, asset, buy_venue, sell_venue, reason, count, first_ts, last_ts FROM safety_rejections "
    "ORDER BY day, asset, buy_venue, sell_venue, reason"
)


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


_EXACT = Context(prec=200)


def _money_total(value: Any) -> Decimal:
    """A SUM from PostgreSQL, or SQLite's space-separated exact texts, as one exact Decimal."""
    if isinstance(value, str):
        with localcontext(_EXACT):
            return sum(map(Decimal, value.split()), Decimal(0))
    return Decimal(0) if value is None else Decimal(value)


def _read(
    cur: _Cursor,
    dialect: str,
    start_ts: float,
    end_ts: float,
    has_rejections: bool,
    instance: str | None = None,
) -> LedgerContents:
    placeholder = "?" if dialect == "sqlite" else "%s"
    column = "instance"  # '' in a ledger from before workers had names (it has no such column)
    mine: tuple[str, ...] = () if instance is None else (instance,)

    def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # With an instance, each query keeps that worker's rows only (the filter's parameter last).
        filtered = "{mine}" in sql
        sql = sql.replace("{instance}", column).replace("{mine}", " AND instance = ?" if mine else "")
        cur.execute(sql.replace("?", placeholder), (*params, *(mine if filtered else ())))
        return cur.fetchall()

    def order_groups(lo: float, hi: float) -> list[OrderGroup]:
        if dialect == "sqlite":
            sql = _ORDER_GROUPS.replace("{filled}", "group_concat(filled_qty, ' ')")
            sql = sql.replace("{fee}", "group_concat(fee, ' ')")
        else:
            sql = _ORDER_GROUPS.replace("{filled}", "SUM(filled_qty)").replace("{fee}", "SUM(fee)")
        return [
            OrderGroup(v, sy, si, st, fc, int(n), int(w or 0), _money_total(q), _money_total(f))
            for v, sy, si, st, fc, n, w, q, f in rows(sql, (lo, hi))
        ]

    version = rows("SELECT value FROM meta WHERE key = 'schema_version'")
    if not version:
        raise LedgerUnavailable("the ledger has no schema version: it was never opened by the bot")
    if int(version[0][0]) > SCHEMA_VERSION:
        raise LedgerUnavailable(
            f"ledger schema version {version[0][0]} is newer than this bot's ({SCHEMA_VERSION}): "
            "upgrade the bot"
        )
    if int(version[0][0]) < INSTANCE_VERSION:
        if instance is not None:
            raise LedgerUnavailable("the ledger is older than workers' instances: run the bot on it once")
        column = "''"
    # Decimal() takes SQLite's exact text and PostgreSQL's Decimal alike.
    d = Decimal
    all_orders = order_groups(*ALL_TIME)
    orders = all_orders if (start_ts, end_ts) == ALL_TIME else order_groups(start_ts, end_ts)
    positions = [
        PositionRow(pid, a, bv, sv, d(q), d(cq), d(ec), d(ep), d(ef), d(xf), es, xr, st, oa, ca, d(r), ua, i)
        for pid, a, bv, sv, q, cq, ec, ep, ef, xf, es, xr, st, oa, ca, r, ua, i in rows(_POSITIONS)
    ]
    hedges = [HedgeRow(g, a, v, k, d(q), d(c), ts, i) for g, a, v, k, q, c, ts, i in rows(_HEDGES)]
    # A day's row is the whole fleet's: it has no worker to filter on.
    days = [] if mine else [DayRow(day, d(r), d(f), d(h), int(n)) for day, r, f, h, n in rows(_DAYS)]
    verdict_rows = rows(_VERDICTS, (start_ts, end_ts))
    verdicts = [VerdictCount(v, reason, int(n)) for v, reason, n, _, _ in verdict_rows]
    firsts = [r[3] for r in verdict_rows if r[3] is not None]
    lasts = [r[4] for r in verdict_rows if r[4] is not None]
    span = (min(firsts) if firsts else None, max(lasts) if lasts else None)
    rejections = None
    if has_rejections:
        rejections = [
            RejectionCount(day, a, bv, sv, r, int(n), float(f), float(la))
            for day, a, bv, sv, r, n, f, la in rows(_REJECTIONS)
        ]
    return LedgerContents(orders, all_orders, positions, hedges, days, verdicts, span, rejections, instance)


def describe_ledger(url: str) -> str:
    """Where a ledger is, for display: never the password a PostgreSQL URL may carry."""
    if url.startswith("sqlite:///"):
        return f"sqlite {url.removeprefix('sqlite:///')}"
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    schema = next((q.split("=", 1)[1] for q in parts.query.split("&") if q.startswith("schema=")), None)
    where = f"postgresql {parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
    return where + (f" schema {schema}" if schema else "")


def read_ledger(
    url: str, start_ts: float = float("-inf"), end_ts: float = float("inf"), instance: str | None = None
) -> LedgerContents:
    """The ledger at `url`, read-only; orders and opportunity verdicts over [start_ts, end_ts);
    with `instance`, one worker's rows only (every worker's otherwise).

    LedgerUnavailable (one sentence) when there is no ledger there or it cannot be read.
    """
    start_ts, end_ts = max(start_ts, ALL_TIME[0]), min(end_ts, ALL_TIME[1])
    if url.startswith("sqlite:///"):
        return _read_sqlite(url.removeprefix("sqlite:///"), start_ts, end_ts, instance)
    if url.startswith(("postgresql://", "postgres://")):
        return _read_postgres(url, start_ts, end_ts, instance)
    scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
    raise LedgerUnavailable(f"ledger URL: expected sqlite:///<path> or postgresql://..., found {scheme}")


def _read_sqlite(path: str, start_ts: float, end_ts: float, instance: str | None) -> LedgerContents:
    file = Path(path)
    if not file.is_file():
        raise LedgerUnavailable(f"no ledger at {path}")
    # mode=ro: never create, write or migrate; the bot's WAL writer is not blocked by this reader.
    uri = f"file:{quote(str(file.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"SQLite ledger {path}: {exc}") from None
    try:
        cur = conn.cursor()
        found = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _REQUIRED if t not in found]
        if missing:
            raise LedgerUnavailable(f"{path} is not a ledger (no {', '.join(missing)} table)")
        # One read transaction: every query below sees the same committed state.
        cur.execute("BEGIN")
        try:
            return _read(cur, "sqlite", start_ts, end_ts, _REJECTIONS_TABLE in found, instance)
        finally:
            cur.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"SQLite ledger {path}: {exc}") from None
    finally:
        conn.close()


def _read_postgres(url: str, start_ts: float, end_ts: float, instance: str | None) -> LedgerContents:
    where = describe_ledger(url)
    try:
        import psycopg
        from psycopg import sql

        from arbitrage.store.postgres_ledger import split_schema
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise LedgerUnavailable(
            "the ledger is PostgreSQL but psycopg is not installed: pip install 'arbitrage[postgres]'"
        ) from None
    conninfo, schema = split_schema(url)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=5)
    except psycopg.Error as exc:
        raise LedgerUnavailable(f"{where} unreachable: {' '.join(str(exc).split())}") from None
    try:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        cur = conn.cursor()
        if schema:
            cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur.execute("SELECT " + ", ".join("to_regclass(%s)" for _ in _REQUIRED), _REQUIRED)
        row = cur.fetchone()
        missing = [t for t, found in zip(_REQUIRED, row or (), strict=False) if found is None]
        if missing:
            raise LedgerUnavailable(f"no ledger in {where} (no {', '.join(missing)} table)")
        cur.execute("SELECT to_regclass(%s)", (_REJECTIONS_TABLE,))
        has_rejections = (cur.fetchone() or (None,))[0] is not None
        return _read(cur, "postgresql", start_ts, end_ts, has_rejections, instance)
    except psycopg.Error as exc:
        raise LedgerUnavailable(f"{where}: {' '.join(str(exc).split())}") from None
    finally:
        conn.rollback()
        conn.close()
