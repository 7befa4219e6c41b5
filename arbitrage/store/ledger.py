"""The ledger interface (orders, fills, pair positions, opportunities, hedges, daily PnL) and its factory.

`open_ledger(url)` picks the backend from the URL: SQLite (WAL) by default, PostgreSQL with
`postgresql://...`. psycopg is imported only here and only for a PostgreSQL URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from arbitrage.config import DEFAULT_INSTANCE, AppConfig
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.orders import Order
from arbitrage.domain.positions import PairPosition
from arbitrage.domain.rejections import RejectionCount
from arbitrage.errors import ConfigError, LedgerUnavailable

SYNCHRONOUS_LEVELS = ("FULL", "NORMAL")


class Ledger(Protocol):
    """The durable record. Every method is atomic and commits itself, unless inside transaction().

    Used from one thread (the loop's). Money goes in and comes out as exact Decimals.
    """

    def transaction(self, durable: bool = True) -> AbstractContextManager[None]:
        """Group the writes inside into one commit; an exception rolls all of them back.
        A nested use joins the outer transaction; a failed write inside dooms it.

        `durable=False` (decided by the outermost use) commits without waiting for the disk
        when storage.synchronous is FULL: for what recovery learns again from the venues should
        a power cut lose it (an order's outcome, its booking), never for orders before they
        are sent, which insert_orders refuses to write in such a transaction."""

    def batch(self) -> AbstractContextManager[None]:
        """Let the durable=False transactions inside share one commit (made when the batch ends,
        or before a durable transaction starts); each still rolls back alone if it fails."""

    def schema_version(self) -> int:
        """The schema version this ledger is at (always the bot's after opening)."""

    def next_sequence(self, name: str) -> int:
        """The next value of a durable counter: 1, 2, 3, ... across restarts, never reused."""

    def record_opportunity(
        self, opportunity_id: str, tick: int, opp: Opportunity, reason: str | None
    ) -> None:
        """An opportunity and the safety verdict: approved when `reason` is None, else rejected."""

    def insert_orders(self, orders: Sequence[Order], ts: float) -> None:
        """New orders (normally PENDING, before they are sent), all or none; DuplicateOrder if one exists."""

    def update_order(self, order: Order, ts: float) -> None:
        """Save an order's new state and fill totals; LedgerError if it was never inserted."""

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
        """One fill; the same (order, trade id) reported again is ignored, so replays never double count."""

    def save_position(self, position: PairPosition, ts: float) -> None:
        """Insert or replace a pair position."""

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
        """A one-leg repair: kind retry | unwind | residual, its cost in the accounting currency."""

    def add_daily_pnl(
        self, day: str, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int, ts: float
    ) -> None:
        """Add to the trading day's totals (creating the day's row on first use)."""

    def daily_pnl(self, day: str) -> Decimal:
        """Realized PnL of `day` (0 when nothing was booked)."""

    def open_positions(self) -> list[PairPosition]:
        """Open pair positions, oldest first."""

    def position(self, position_id: str) -> PairPosition | None: ...

    def positions(self) -> list[PairPosition]:
        """Every position, open and closed, oldest first."""

    def open_orders(self) -> list[Order]:
        """Orders not in a terminal state, oldest first: what recovery must ask the venues about."""

    def order(self, client_order_id: str) -> Order | None: ...

    def orders(self) -> list[Order]:
        """Every order, oldest first."""

    def fills(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        """Fills (of one order, or all) in the order they were recorded."""

    def hedge_events(self) -> list[dict[str, Any]]: ...

    def daily_rows(self) -> list[dict[str, Any]]:
        """Every day's totals, by day."""

    def dump_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of a table in primary-key order (money as Decimal), for determinism checks."""

    def group_orders(self, group_id: str) -> list[Order]:
        """Every order of an entry, exit or residual group, oldest first."""

    def conclude_group(self, group_id: str, kind: str, ts: float) -> None:
        """Mark a group's bookkeeping complete; write it in the transaction that books the group."""

    def unconcluded_groups(self) -> list[str]:
        """Groups with orders whose bookkeeping a crash interrupted."""

    def add_rejections(self, rows: Sequence[RejectionCount]) -> None:
        """Add these safety rejection counts to the ledger's (see SqlLedger.add_rejections)."""

    def rejections(self) -> list[RejectionCount]:
        """Every safety rejection count, in key order (day, asset, pair, reason)."""

    def flush(self) -> None:
        """Make every committed write durable in the main store (SQLite: checkpoint the WAL)."""

    def close(self) -> None: ...


def ledger_url(config: AppConfig | None, data_dir: Path) -> str:
    """The ledger a run with this config and data dir writes: storage.url, else a SQLite file in
    the data dir (also what `arb report` reads when it has no config)."""
    url = config.storage.url if config is not None else None
    return url or f"sqlite:///{data_dir / 'ledger.sqlite3'}"


def open_ledger(url: str, synchronous: str = "FULL", instance: str = DEFAULT_INSTANCE) -> Ledger:
    """Open (creating and migrating as needed) the ledger that `url` names.

    `sqlite:///data/ledger.sqlite3` (relative to the working directory), `sqlite:////abs/path`,
    or `postgresql://user@host:port/db[?schema=name]`. `synchronous` is SQLite's durability
    level (FULL: every commit reaches the disk; NORMAL: WAL-safe, the last commits may be
    lost on power failure), mapped to `synchronous_commit` on PostgreSQL.
    """
    if synchronous not in SYNCHRONOUS_LEVELS:
        raise ConfigError(f"storage.synchronous: expected FULL or NORMAL, found {synchronous!r}")
    if url.startswith("sqlite:///"):
        from arbitrage.store.sqlite_ledger import SqliteLedger

        return SqliteLedger(url.removeprefix("sqlite:///"), synchronous, instance=instance)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from arbitrage.store.postgres_ledger import PostgresLedger
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise LedgerUnavailable(
                "storage.url is PostgreSQL but psycopg is not installed: pip install 'arbitrage[postgres]'"
            ) from None
        return PostgresLedger(url, synchronous, instance=instance)
    # Only the scheme is echoed: the rest of a URL may hold a password.
    scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
    raise LedgerUnavailable(f"storage.url: expected sqlite:///<path> or postgresql://..., found {scheme}")
