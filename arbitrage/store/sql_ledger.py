"""The ledger's reads and writes, written once over a small seam that each database fills in.

A subclass supplies the connection: how to run a statement, begin/commit/rollback, how money is
bound, and how a day's PnL is accumulated. Statements use `?` placeholders; the PostgreSQL
backend rewrites them once. Every public method is atomic: it commits itself, or joins the
enclosing `transaction()`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar

from arbitrage.config import DEFAULT_INSTANCE
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.orders import Order, OrderState
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.domain.rejections import RejectionCount
from arbitrage.errors import DuplicateOrder, LedgerError, LedgerUnavailable
from arbitrage.store import schema as sq
from arbitrage.store.schema import META_DDL, MIGRATIONS, SCHEMA_VERSION, TABLES, Dialect
from arbitrage.store.transaction_state import IDLE, Action, Move

Row = tuple[Any, ...]
_BEGIN, _BEGIN_RELAXED, _COMMIT = Action.BEGIN, Action.BEGIN_RELAXED, Action.COMMIT
_SAVEPOINT, _RELEASE, _ROLLBACK_TO = Action.SAVEPOINT, Action.RELEASE, Action.ROLLBACK_TO
HEDGE_KINDS = frozenset({"retry", "unwind", "residual"})


class UniqueViolation(LedgerError):
    """A write hit a unique key (raised by the backends, translated where the caller means more)."""


def _exact(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise TypeError(f"money must be a Decimal, got {type(value).__name__} {value!r}")


def money_text(value: Decimal) -> str:
    """SQLite binding: the exact decimal string."""
    return str(value if type(value) is Decimal else _exact(value))


def money_decimal(value: Decimal) -> Decimal:
    """PostgreSQL binding: the Decimal itself, bound as NUMERIC."""
    return value if type(value) is Decimal else _exact(value)


def _order(row: Row) -> Order:
    return Order(
        client_order_id=row[0],
        venue=row[1],
        symbol=row[2],
        side=row[3],
        qty=Decimal(row[4]),
        price=Decimal(row[5]),
        state=OrderState(row[6]),
        filled_qty=Decimal(row[7]),
        avg_fill_price=Decimal(row[8]),
        fee=Decimal(row[9]),
        venue_order_id=row[10],
        purpose=row[11],
        position_id=row[12],
        opportunity_id=row[13],
        reason=row[14],
        fee_base=Decimal(row[15]),
    )


def _position(row: Row) -> PairPosition:
    (pid, asset, buy_venue, sell_venue, buy_symbol, sell_symbol, qty, buy_qty, sell_qty, entry_cost,
     entry_proceeds, entry_fees, entry_spread, exit_spread, closed_qty, exit_proceeds, exit_cost, exit_fees,
     exit_reason, state, opened_at, closed_at, realized) = row  # fmt: skip
    return PairPosition(
        position_id=pid,
        asset=asset,
        buy_venue=buy_venue,
        sell_venue=sell_venue,
        buy_symbol=buy_symbol,
        sell_symbol=sell_symbol,
        qty=Decimal(qty),
        buy_qty=Decimal(buy_qty),
        sell_qty=Decimal(sell_qty),
        entry_cost=Decimal(entry_cost),
        entry_proceeds=Decimal(entry_proceeds),
        entry_fees=Decimal(entry_fees),
        entry_spread_pct=entry_spread,
        opened_at=opened_at,
        state=PositionState(state),
        closed_qty=Decimal(closed_qty),
        exit_proceeds=Decimal(exit_proceeds),
        exit_cost=Decimal(exit_cost),
        exit_fees=Decimal(exit_fees),
        exit_spread_pct=exit_spread,
        exit_reason=exit_reason,
        closed_at=closed_at,
        realized_pnl=Decimal(realized),
    )


def _quote_currency(symbol: str) -> str | None:
    # An order's fee is charged in its market's quote currency ("BTC/KRW" -> "KRW").
    return symbol.rsplit("/", 1)[1] if "/" in symbol else None


class SqlLedger(ABC):
    """Everything the ledger does, over the backend seam below.

    Several workers may share one ledger: each writes its rows under its own `instance` and reads
    back only those (its orders, positions, hedge events, unconcluded groups). Sequences and the
    day's PnL rows are shared: group ids stay unique across workers, and a day's row is the fleet's.
    """

    dialect: ClassVar[Dialect]

    def __init__(self, instance: str = DEFAULT_INSTANCE) -> None:
        self.instance = instance
        self._lock = threading.RLock()  # one transaction at a time, whichever thread asks
        self._tx = IDLE  # where the connection stands in transaction() and batch()

    # The backend seam --------------------------------------------------------------------

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; the number of rows it changed."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement once per row of parameters, in one call: the rows of a batch
        (a tick's legs, a flush's rejection counts) without a round of Python per row."""

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Execute one statement and fetch all its rows (which also completes a RETURNING write)."""

    @abstractmethod
    def _begin(self, durable: bool) -> None:
        """Open a transaction; `durable=False` lets its commit skip waiting for the disk."""

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _money(self, value: Decimal) -> Any:
        """How a money amount is bound: exact, never a binary float."""

    @abstractmethod
    def _accumulate_day(
        self, day: str, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int, ts: float
    ) -> None:
        """Add to the day's row atomically, exactly."""

    def _lock_schema(self) -> None:
        """Serialise schema migration between processes opening the same ledger at once.

        Nothing more is needed where the migration's transaction already holds the write lock."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def _failed(self, message: str, unique: bool = False) -> LedgerError:
        """The error for a failed statement; a failure inside a transaction dooms it."""
        self._tx = self._tx.write_failed()
        return UniqueViolation(message) if unique else LedgerError(message)

    # Transactions and schema -------------------------------------------------------------

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """Group writes into one commit; an inner use joins the outer one.

        The lock is held for the whole transaction, so that no other thread's write (shutdown
        may run off the loop's thread) lands inside it.
        `durable=False`: see Ledger.transaction; only the outermost use decides.
        Inside batch(), a durable=False transaction is a savepoint of the batch's transaction,
        and a durable one first commits what the batch holds (TxState says which, and when).
        """
        with self._lock:
            self._move(self._tx.begin(durable))
            try:
                yield
            except BaseException:
                self._move(self._tx.end(failed=True))
                raise
            self._move(self._tx.end(failed=False))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Let the durable=False transactions inside share one commit, made when the batch ends
        or just before a durable transaction starts. Each keeps its all-or-nothing: one that
        fails rolls back to where it began (a savepoint), never the ones before it.

        The lock is not held in between: the venue calls made inside must not wait for it.
        """
        with self._lock:
            started = self._tx.start_batch()  # None: a batch or transaction is open; join it
            if started is not None:
                self._tx = started
        try:
            yield
        finally:
            if started is not None:
                with self._lock:
                    self._move(self._tx.end_batch())

    def _move(self, move: Move) -> None:
        """Run a transition's steps, keeping self._tx true to the connection at every step."""
        for action, state in move.steps:
            if action.opens:
                self._act(action)
                self._tx = state
            else:
                self._tx = state
                self._act(action)
        self._tx = move.state
        if move.rolled_back:
            raise LedgerError("transaction rolled back: a write inside it failed")

    def _act(self, action: Action) -> None:
        if action is _COMMIT:
            try:
                self._commit()
            except LedgerError:
                self._rollback()
                raise
        elif action is _SAVEPOINT:
            self._run("SAVEPOINT batch_item")
        elif action is _RELEASE:
            self._run("RELEASE SAVEPOINT batch_item")
        elif action is _BEGIN or action is _BEGIN_RELAXED:
            self._begin(action is _BEGIN)
        elif action is _ROLLBACK_TO:
            self._run("ROLLBACK TO SAVEPOINT batch_item")
        else:
            self._rollback()

    def _migrate(self) -> None:
        with self.transaction():
            self._lock_schema()
            self._run(META_DDL)
            rows = self._rows(sq.SELECT_VERSION)
            current = int(rows[0][0]) if rows else 0
            if current > SCHEMA_VERSION:
                raise LedgerUnavailable(
                    f"ledger schema version {current} is newer than this bot's "
                    f"({SCHEMA_VERSION}); upgrade the bot"
                )
            for step in MIGRATIONS[current:]:
                for statement in step:
                    self._run(self.dialect.render(statement))
            if current != SCHEMA_VERSION:
                self._run(sq.SET_VERSION, (str(SCHEMA_VERSION),))
            for statement in sq.ADOPT_UNOWNED:
                self._run(statement, (self.instance,))

    def schema_version(self) -> int:
        return int(self._rows(sq.SELECT_VERSION)[0][0])

    # Writes ------------------------------------------------------------------------------

    def next_sequence(self, name: str) -> int:
        return int(self._rows(sq.NEXT_SEQUENCE, (name,))[0][0])

    def record_opportunity(
        self, opportunity_id: str, tick: int, opp: Opportunity, reason: str | None
    ) -> None:
        self._run(
            sq.INSERT_OPPORTUNITY,
            (opportunity_id, tick, opp.asset, opp.buy_venue, opp.sell_venue, opp.buy_symbol, opp.sell_symbol,
             opp.qty, opp.buy_price, opp.sell_price, opp.buy_vwap, opp.sell_vwap, opp.buy_fx, opp.sell_fx,
             opp.gross_spread_pct, opp.net_spread_pct, opp.slippage_pct, opp.fees_pct, opp.book_age_ms,
             "APPROVED" if reason is None else "REJECTED", reason, opp.ts, self.instance),
        )  # fmt: skip

    def insert_orders(self, orders: Sequence[Order], ts: float) -> None:
        if self._tx.refuses_orders:
            # An order must be on disk before its venue call, or a power cut could leave an
            # order at the venue that the ledger never heard of.
            raise LedgerError("orders are written in a durable transaction, not a durable=False one")
        m = self._money
        rows = [
            (o.client_order_id, o.venue, o.symbol, o.side, m(o.qty), m(o.price), o.state.value,
             m(o.filled_qty), m(o.avg_fill_price), m(o.fee), _quote_currency(o.symbol),
             o.venue_order_id, o.purpose, o.position_id, o.opportunity_id, o.reason, ts, ts,
             m(o.fee_base), self.instance)
            for o in orders
        ]  # fmt: skip
        with self.transaction():
            try:
                self._run_many(sq.INSERT_ORDER, rows)
            except UniqueViolation:
                ids = ", ".join(o.client_order_id for o in orders)
                raise DuplicateOrder(f"an order of {ids} is already in the ledger") from None

    def update_order(self, order: Order, ts: float) -> None:
        m, o = self._money, order
        changed = self._run(
            sq.UPDATE_ORDER,
            (m(o.qty), m(o.price), o.state.value, m(o.filled_qty), m(o.avg_fill_price), m(o.fee),
             m(o.fee_base), o.venue_order_id, o.purpose, o.position_id, o.opportunity_id, o.reason, ts,
             o.client_order_id),
        )  # fmt: skip
        if not changed:
            raise self._failed(f"order {o.client_order_id} is not in the ledger (insert it before updating)")

    def record_fill(
        self,
        client_order_id: str,
        venue: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_currency: str,
        fx_rate: float,
        ts: float,
        trade_id: str | None = None,
    ) -> None:
        m = self._money
        self._run(
            sq.INSERT_FILL,
            (client_order_id, venue, symbol, side, m(qty), m(price), m(fee), fee_currency, fx_rate, ts,
             trade_id),
        )  # fmt: skip

    def save_position(self, position: PairPosition, ts: float) -> None:
        m, p = self._money, position
        self._run(
            sq.SAVE_POSITION,
            (p.position_id, p.asset, p.buy_venue, p.sell_venue, p.buy_symbol, p.sell_symbol, m(p.qty),
             m(p.buy_qty), m(p.sell_qty), m(p.entry_cost), m(p.entry_proceeds), m(p.entry_fees),
             p.entry_spread_pct, p.exit_spread_pct, m(p.closed_qty), m(p.exit_proceeds), m(p.exit_cost),
             m(p.exit_fees), p.exit_reason, p.state.value, p.opened_at, p.closed_at, m(p.realized_pnl), ts,
             self.instance),
        )  # fmt: skip

    def record_hedge_event(
        self,
        group_id: str,
        asset: str,
        venue: str,
        kind: str,
        qty: Decimal,
        cost: Decimal,
        detail: str,
        ts: float,
    ) -> None:
        if kind not in HEDGE_KINDS:
            raise ValueError(f"hedge event kind {kind!r} is not one of {sorted(HEDGE_KINDS)}")
        m = self._money
        self._run(sq.INSERT_HEDGE, (group_id, asset, venue, kind, m(qty), m(cost), detail, ts, self.instance))

    def add_daily_pnl(
        self, day: str, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int, ts: float
    ) -> None:
        self._accumulate_day(day, _exact(realized), _exact(fees), _exact(hedge_cost), trades, ts)

    def add_rejections(self, rows: Sequence[RejectionCount]) -> None:
        """Add counts of safety rejections to the ledger's, in one transaction that does not wait
        for the disk: they are statistics, and losing the last ones in a power cut costs no money."""
        if not rows:
            return
        params = [
            (r.day, r.asset, r.buy_venue, r.sell_venue, r.reason, r.count, r.first_ts, r.last_ts)
            for r in rows
        ]
        with self.transaction(durable=False):
            self._run_many(sq.ADD_REJECTIONS, params)

    def rejections(self) -> list[RejectionCount]:
        return [RejectionCount(*row) for row in self._table_rows("safety_rejections")]

    # Reads -------------------------------------------------------------------------------

    def daily_pnl(self, day: str) -> Decimal:
        rows = self._rows(sq.SELECT_DAY_REALIZED, (day,))
        return Decimal(rows[0][0]) if rows else Decimal(0)

    def open_positions(self) -> list[PairPosition]:
        return [_position(r) for r in self._rows(sq.SELECT_OPEN_POSITIONS, (self.instance,))]

    def positions(self) -> list[PairPosition]:
        return [_position(r) for r in self._rows(sq.SELECT_ALL_POSITIONS, (self.instance,))]

    def position(self, position_id: str) -> PairPosition | None:
        rows = self._rows(sq.SELECT_POSITION, (position_id,))
        return _position(rows[0]) if rows else None

    def open_orders(self) -> list[Order]:
        return [_order(r) for r in self._rows(sq.SELECT_OPEN_ORDERS, (self.instance, *sq.OPEN_STATES))]

    def order(self, client_order_id: str) -> Order | None:
        rows = self._rows(sq.SELECT_ORDER, (client_order_id,))
        return _order(rows[0]) if rows else None

    def orders(self) -> list[Order]:
        return [_order(r) for r in self._rows(sq.SELECT_ORDERS, (self.instance,))]

    def group_orders(self, group_id: str) -> list[Order]:
        return [_order(r) for r in self._rows(sq.SELECT_GROUP_ORDERS, (group_id,))]

    def conclude_group(self, group_id: str, kind: str, ts: float) -> None:
        self._run(sq.CONCLUDE_GROUP, (group_id, kind, ts))

    def unconcluded_groups(self) -> list[str]:
        return [str(r[0]) for r in self._rows(sq.SELECT_UNCONCLUDED, (self.instance,))]

    def fills(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        if client_order_id is None:
            rows = self._rows(f"{sq.SELECT_FILLS} ORDER BY id")
        else:
            rows = self._rows(f"{sq.SELECT_FILLS} WHERE client_order_id = ? ORDER BY id", (client_order_id,))
        return self._dicts("fills", rows)

    def hedge_events(self) -> list[dict[str, Any]]:
        return self._dicts("hedge_events", self._rows(sq.SELECT_HEDGES, (self.instance,)))

    def daily_rows(self) -> list[dict[str, Any]]:
        return self._dicts("daily_pnl", self._table_rows("daily_pnl"))

    def dump_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of `table` in primary-key order, money as Decimal: equal across backends."""
        rows = self._table_rows(table)
        money = [c in TABLES[table].money for c in TABLES[table].columns]
        return [tuple(Decimal(v) if m else v for v, m in zip(row, money, strict=True)) for row in rows]

    def _table_rows(self, table: str) -> list[Row]:
        shape = TABLES.get(table)
        if shape is None:
            raise ValueError(f"unknown ledger table {table!r}; one of {sorted(TABLES)}")
        return self._rows(f"SELECT {', '.join(shape.columns)} FROM {table} ORDER BY {shape.order_by}")

    @staticmethod
    def _dicts(table: str, rows: list[Row]) -> list[dict[str, Any]]:
        shape = TABLES[table]
        return [
            {c: Decimal(v) if c in shape.money else v for c, v in zip(shape.columns, row, strict=True)}
            for row in rows
        ]
