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

    BEGIN = "begin"  # BEGIN, its commit waiting for the disk
    BEGIN_RELAXED = "begin_relaxed"  # BEGIN, its commit not waiting for the disk (durable=False)
    SAVEPOINT = "savepoint"
    RELEASE = "release"
    ROLLBACK_TO = "rollback_to"  # undo the item's writes (its savepoint is then released)
    COMMIT = "commit"  # COMMIT; should it fail, ROLLBACK
    ROLLBACK = "rollback"

    @property
    def opens(self) -> bool:
        return self in _OPENING


_OPENING = frozenset({Action.BEGIN, Action.BEGIN_RELAXED, Action.SAVEPOINT})

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
    (1: the outermost), whether its commit waits for the disk, and whether a write in it failed."""

    phase: Phase
    depth: int = 0
    durable: bool = True
    doomed: bool = False

    @property
    def inside(self) -> bool:
        """A transaction or item is open: statements join it, and a failing one dooms it."""
        return self.depth > 0

    @property
    def refuses_orders(self) -> bool:
        """Orders must reach the disk before their venue call: never in a durable=False transaction."""
        return self.depth > 0 and not self.durable

    def begin(self, durable: bool) -> Move:
        """transaction(durable) is entered."""
        phase = self.phase
        if self.depth:  # an inner use joins; the outermost decided durability
            return Move((), TxState(phase, self.depth + 1, self.durable, self.doomed))
        if phase is Phase.IDLE:
            opened = TxState(Phase.OPEN, 1, durable)
            return Move(((Action.BEGIN if durable else Action.BEGIN_RELAXED, opened),), opened)
        if not durable:  # an item of the batch, in its transaction begun by the first item
            item = TxState(Phase.ITEM, 1, False)
            if phase is Phase.HELD:
                return Move(((Action.SAVEPOINT, item),), item)
            if phase is Phase.BATCH:
                return Move(((Action.BEGIN_RELAXED, HELD), (Action.SAVEPOINT, item)), item)
        opened = TxState(Phase.BATCH_OPEN, 1, True)
        if phase is Phase.HELD:  # orders go to disk after what the batch holds, in a commit of their own
            return Move(((Action.COMMIT, BATCH), (Action.BEGIN, opened)), opened)
        if phase is Phase.BATCH:
            return Move(((Action.BEGIN, opened),), opened)
        raise IllegalMove(f"transaction() entered in phase {phase.value} at depth 0")

    def end(self, failed: bool) -> Move:
        """transaction() is left: `failed` when an exception is escaping it."""
        depth, phase = self.depth, self.phase
        if depth > 1:  # an inner use: its failure is the outermost's to roll back
            return Move((), TxState(phase, depth - 1, self.durable, self.doomed or failed))
        if depth != 1:
            raise IllegalMove(f"transaction() left in phase {phase.value} with none open")
        undo = failed or self.doomed
        # A doomed exit raises LedgerError; a failed one lets the escaping exception go on.
        rolled_back = undo and not failed
        if phase is Phase.ITEM:
            if undo:
                return Move(((Action.ROLLBACK_TO, HELD), (Action.RELEASE, HELD)), HELD, rolled_back)
            return Move(((Action.RELEASE, HELD),), HELD)
        after = IDLE if phase is Phase.OPEN else BATCH
        return Move(((Action.ROLLBACK if undo else Action.COMMIT, after),), after, rolled_back)

    def write_failed(self) -> TxState:
        """A statement failed: inside a transaction or item, it must roll back."""
        return self._replace(doomed=True) if self.depth else self

    def start_batch(self) -> TxState | None:
        """batch() is entered: the batching state, or None when this use only joins what is open
        (a batch already running, or a transaction its items would have to join anyway)."""
        return BATCH if self.phase is Phase.IDLE else None

    def end_batch(self) -> Move:
        """The batch() that started batching is left: commit what it holds."""
        if self.phase is Phase.HELD:
            return Move(((Action.COMMIT, IDLE),), IDLE)
        if self.phase is Phase.BATCH:
            return Move((), IDLE)
        raise IllegalMove(f"batch() left in phase {self.phase.value}, inside a transaction")


IDLE = TxState(Phase.IDLE)
BATCH = TxState(Phase.BATCH)
HELD = TxState(Phase.HELD, 0, False)
