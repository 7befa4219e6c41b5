"""Where the ledger's connection stands in its transactions, and the statements each move runs.

A pure state machine: SqlLedger.transaction() and batch() feed it their entries and exits and
run the steps it returns. The write order it encodes (docs in Ledger.transaction and batch):

- transaction(): the outermost use begins and commits, durable or not; inner uses join it, and
  a failure anywhere inside rolls all of it back.
- batch(): the durable=False transactions inside become savepoints ("items") of one shared
  transaction, begun with the first item and committed when the batch ends, or just before a
  durable transaction (orders about to be sent) begins. An item that fails rolls back alone.

Each step pairs a statement with the state it leads to. A step that opens something (BEGIN,
SAVEPOINT) counts once the database has done it: if it fails, the state stays where it was. A
step that closes something (COMMIT, ROLLBACK, ROLLBACK TO, RELEASE) leaves the state first, so
that a statement failing on the way out never leaves the ledger believing it is still inside.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Phase(Enum):
    IDLE = "idle"  # no transaction, no batch: a lone statement commits itself
    OPEN = "open"  # a transaction of its own, outside any batch
    BATCH = "batch"  # inside batch(), no transaction begun
    HELD = "held"  # inside batch(), its transaction begun: it holds the items done so far
    ITEM = "item"  # inside batch(), one item's savepoint open in the batch's transaction
    BATCH_OPEN = "batch_open"  # inside batch(), a durable transaction of its own (the held items committed)


class Action(Enum):
    """One statement (or the backend's own sequence for it) to run on the connection."""

    BEGIN = ("begin", True)  # BEGIN, its commit waiting for the disk
    BEGIN_RELAXED = ("begin_relaxed", True)  # BEGIN, its commit not waiting for the disk (durable=False)
    SAVEPOINT = ("savepoint", True)
    RELEASE = ("release", False)
    ROLLBACK_TO = ("rollback_to", False)  # undo the item's writes (its savepoint is then released)
    COMMIT = ("commit", False)  # COMMIT; should it fail, ROLLBACK
    ROLLBACK = ("rollback", False)

    def __init__(self, label: str, opens: bool) -> None:
        self.label = label  # the label keeps two members with the same `opens` from being aliases
        self.opens = opens  # see the module docstring: when the state moves, before or after


Step = tuple[Action, "TxState"]


class Move(NamedTuple):
    """A transition: the steps to run in order, the state after them, and whether the exit must
    then raise because a write inside failed (the transaction was rolled back instead)."""

    steps: tuple[Step, ...]
    state: TxState
    rolled_back: bool = False


class IllegalMove(RuntimeError):
    """A use of transaction()/batch() that proper nesting cannot produce (a bug, not bad data)."""


class TxState(NamedTuple):
    """The phase, and inside a transaction or item: how many transaction() uses are open in it
    (1: the outermost), whether its commit waits for the disk, and whether a write in it failed.

    Every move but an inner use's is one of the constants below, built once: a trading tick
    makes a few dozen of them, so they must cost next to nothing.
    """

    phase: Phase
    depth: int = 0
    durable: bool = True
    doomed: bool = False

    @property
    def refuses_orders(self) -> bool:
        """Orders must reach the disk before their venue call: never in a durable=False transaction."""
        return self.depth > 0 and not self.durable

    def begin(self, durable: bool) -> Move:
        """transaction(durable) is entered."""
        if self.depth:  # an inner use joins; the outermost decided durability
            return _new(
                Move, ((), _new(TxState, (self.phase, self.depth + 1, self.durable, self.doomed)), False)
            )
        phase = self.phase
        if phase is _IDLE:
            return _BEGIN if durable else _BEGIN_RELAXED
        if phase is _HELD:  # orders go to disk after what the batch holds, in a commit of their own
            return _COMMIT_HELD_THEN_BEGIN if durable else _SAVEPOINT
        if phase is _BATCH:  # the batch's transaction is begun by its first item
            return _BEGIN_IN_BATCH if durable else _BEGIN_BATCH_THEN_SAVEPOINT
        raise IllegalMove(f"transaction() entered in phase {phase.value} at depth 0")

    def end(self, failed: bool) -> Move:
        """transaction() is left: `failed` when an exception is escaping it."""
        depth = self.depth
        if depth > 1:  # an inner use: its failure is the outermost's to roll back
            state = _new(TxState, (self.phase, depth - 1, self.durable, self.doomed or failed))
            return _new(Move, ((), state, False))
        phase = self.phase
        if depth != 1:
            raise IllegalMove(f"transaction() left in phase {phase.value} with none open")
        # ok, failed (the escaping exception goes on), doomed (rolled back, LedgerError raised)
        ok, undone, doomed = (
            _ITEM_EXITS if phase is _ITEM else _OPEN_EXITS if phase is _OPEN else _BATCH_OPEN_EXITS
        )
        if failed:
            return undone
        return doomed if self.doomed else ok

    def write_failed(self) -> TxState:
        """A statement failed: inside a transaction or item, it must roll back."""
        return TxState(self.phase, self.depth, self.durable, True) if self.depth else self

    def start_batch(self) -> TxState | None:
        """batch() is entered: the batching state, or None when this use only joins what is open
        (a batch already running, or a transaction its items would have to join anyway)."""
        return BATCH if self.phase is _IDLE else None

    def end_batch(self) -> Move:
        """The batch() that started batching is left: commit what it holds."""
        if self.phase is _HELD:
            return _COMMIT_BATCH
        if self.phase is _BATCH:
            return _END_EMPTY_BATCH
        raise IllegalMove(f"batch() left in phase {self.phase.value}, inside a transaction")


# An inner use's move is built each time: tuple.__new__ builds a NamedTuple in a quarter of the
# time its generated __new__ takes (joins come several times a trading tick).
_new = tuple.__new__
_IDLE, _BATCH, _HELD, _ITEM, _OPEN = Phase.IDLE, Phase.BATCH, Phase.HELD, Phase.ITEM, Phase.OPEN

IDLE = TxState(Phase.IDLE)
BATCH = TxState(Phase.BATCH)
HELD = TxState(Phase.HELD, 0, False)
_OPENED = TxState(Phase.OPEN, 1, True)
_OPENED_RELAXED = TxState(Phase.OPEN, 1, False)
_ITEM_OPEN = TxState(Phase.ITEM, 1, False)
_BATCH_OPENED = TxState(Phase.BATCH_OPEN, 1, True)


def _steps(*steps: Step) -> Move:
    return Move(steps, steps[-1][1])


def _exits(after: TxState, *undo: Action) -> tuple[Move, Move, Move]:
    """The three ways out of an outermost use: cleanly, with an exception, doomed."""
    ok = Action.RELEASE if after is HELD else Action.COMMIT
    back = tuple((a, after) for a in undo)
    return Move(((ok, after),), after), Move(back, after), Move(back, after, rolled_back=True)


_BEGIN = _steps((Action.BEGIN, _OPENED))
_BEGIN_RELAXED = _steps((Action.BEGIN_RELAXED, _OPENED_RELAXED))
_SAVEPOINT = _steps((Action.SAVEPOINT, _ITEM_OPEN))
_BEGIN_BATCH_THEN_SAVEPOINT = _steps((Action.BEGIN_RELAXED, HELD), (Action.SAVEPOINT, _ITEM_OPEN))
_COMMIT_HELD_THEN_BEGIN = _steps((Action.COMMIT, BATCH), (Action.BEGIN, _BATCH_OPENED))
_BEGIN_IN_BATCH = _steps((Action.BEGIN, _BATCH_OPENED))
_OPEN_EXITS = _exits(IDLE, Action.ROLLBACK)
_BATCH_OPEN_EXITS = _exits(BATCH, Action.ROLLBACK)
_ITEM_EXITS = _exits(HELD, Action.ROLLBACK_TO, Action.RELEASE)
_COMMIT_BATCH = _steps((Action.COMMIT, IDLE))
_END_EMPTY_BATCH = Move((), IDLE)
