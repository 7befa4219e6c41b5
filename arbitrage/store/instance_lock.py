"""One bot per ledger: what a run holds for its whole life so that a second bot refuses to start.

A data dir and a SQLite ledger are each guarded by an OS lock (flock) on a file beside them,
`<data dir>/.lock` and `<ledger>.lock`, holding who owns it (pid, host, instance, since when).
The kernel drops the lock when its process dies however it dies (SIGKILL included), so a stale
file never blocks a restart: only a held lock refuses. A PostgreSQL ledger is guarded by a lease
(postgres_lease.py), so two machines on one database refuse as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from arbitrage.errors import AlreadyRunning, LedgerUnavailable

log = logging.getLogger("arbitrage.ledger")

DATA_DIR_LOCK = ".lock"
# A lock contended for less than this is not yet a refusal: `arb health` probes it for an instant,
# and a predecessor may still be closing its files after its last tick.
GRACE_S = 1.0
_POLL_S = 0.05

LostFn = Callable[[str], None]


@dataclass(frozen=True)
class LockOwner:
    """The process that holds (or held) a lock, as written into the lock."""

    instance: str
    pid: int
    host: str
    started_at: float  # wall-clock epoch seconds
    heartbeat_at: float | None = None  # PostgreSQL leases only

    @classmethod
    def this_process(cls, instance: str, now: float) -> LockOwner:
        return cls(instance=instance, pid=os.getpid(), host=socket.gethostname(), started_at=now)

    def to_json(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps({**fields, "started": _utc(self.started_at)}) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LockOwner | None:
        """None when the text is empty or not an owner (the holder may not have written it yet)."""
        try:
            data = json.loads(text)
            return cls(
                instance=str(data["instance"]),
                pid=int(data["pid"]),
                host=str(data["host"]),
                started_at=float(data["started_at"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, now: float | None = None) -> str:
        text = f"pid {self.pid} on host {self.host} (instance {self.instance}, since {_utc(self.started_at)}"
        if self.heartbeat_at is not None and now is not None:
            text += f", last heartbeat {max(0.0, now - self.heartbeat_at):.0f}s ago"
        return text + ")"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def refusal(where: str, owner: LockOwner | None, advice: str, now: float | None = None) -> AlreadyRunning:
    who = owner.describe(now) if owner else "a process that has not written its pid and host yet"
    return AlreadyRunning(f"another bot is already running on {where}: {who}; stop it first{advice}")


class HeldLock(Protocol):
    where: str

    def watch(self, on_lost: LostFn) -> None:
        """Call `on_lost(text)` should the lock be lost while the bot runs."""

    def release(self) -> None: ...


class FileLock:
    """An exclusive flock on one file, from acquire() until release() or the process's death."""

    def __init__(self, path: Path, subject: str, advice: str) -> None:
        self.path = path
        self.where = f"{subject} ({path})"
        self._advice = advice
        self._fd: int | None = None

    def acquire(self, owner: LockOwner, grace_s: float = GRACE_S) -> FileLock:
        fd = self._open()
        deadline = time.monotonic() + grace_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_owner(fd)
                    os.close(fd)
                    raise refusal(self.where, holder, self._advice) from None
                time.sleep(_POLL_S)
            except OSError as exc:
                os.close(fd)
                raise LedgerUnavailable(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        # Only the holder rewrites the file: a refused bot must leave the running one's name in it.
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.to_json().encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default too): a child process must not keep the lock alive.
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LedgerUnavailable(f"cannot lock {self.path}: {exc.strerror or exc}") from None

    def watch(self, on_lost: LostFn) -> None:
        return None  # only the process's death drops a flock, and then nobody is left to tell

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the file stays (removing it would race a waiting opener); empty = nobody
        except OSError as exc:
            log.warning("could not clear %s: %s", self.path, exc)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def probe_file_lock(path: Path) -> tuple[bool, LockOwner | None]:
    """(held, owner) without taking the lock from a holder; for `arb health`, which only reads."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _read_owner(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)  # held for an instant: a starting bot waits out GRACE_S
        return False, None
    finally:
        os.close(fd)


def _read_owner(fd: int) -> LockOwner | None:
    try:
        return LockOwner.from_json(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
    except OSError:
        return None


def file_locks(ledger_url: str, data_dir: Path) -> list[FileLock]:
    """The files a run on this data dir and ledger locks: the SQLite ledger's first, then the data dir's.

    Both, always: the data dir also holds state.json, and a SQLite ledger may live outside it
    (storage.url), where a bot with another data dir could reach it.
    """
    locks: list[FileLock] = []
    if ledger_url.startswith("sqlite:///"):
        path = ledger_url.removeprefix("sqlite:///")
        if path and not path.startswith(":memory:") and "mode=memory" not in path:
            ledger = Path(path)
            locks.append(
                FileLock(
                    ledger.with_name(ledger.name + ".lock"),
                    f"the ledger {ledger}",
                    ", or give this bot its own ledger (--data-dir or storage.url)",
                )
            )
    advice = ", or give this bot its own --data-dir"
    locks.append(FileLock(data_dir / DATA_DIR_LOCK, f"the data dir {data_dir}", advice))
    return locks


class InstanceLock:
    """Every lock one run holds; released in reverse order at exit (or by the kernel at death)."""

    def __init__(self, held: list[HeldLock]) -> None:
        self._held = held

    @property
    def where(self) -> list[str]:
        return [h.where for h in self._held]

    def watch(self, on_lost: LostFn) -> None:
        """Call `on_lost(text)` should a lease be lost while the bot runs (a file lock cannot be)."""
        for held in self._held:
            held.watch(on_lost)

    def release(self) -> None:
        while self._held:
            held = self._held.pop()
            try:
                held.release()
            except Exception:  # releasing must not hide why we are exiting
                log.exception("releasing %s failed", held.where)


def acquire_instance_lock(
    ledger_url: str, data_dir: Path, instance: str, now: Callable[[], float], grace_s: float = GRACE_S
) -> InstanceLock:
    """Lock what this run will use, or raise AlreadyRunning naming the bot that holds it."""
    owner = LockOwner.this_process(instance, now())
    held: list[HeldLock] = []
    try:
        if ledger_url.startswith(("postgresql://", "postgres://")):
            from arbitrage.store.postgres_lease import PostgresLease

            held.append(PostgresLease.acquire(ledger_url, owner, now, grace_s=grace_s))
        for lock in file_locks(ledger_url, data_dir):
            held.append(lock.acquire(owner, grace_s))
    except BaseException:
        InstanceLock(held).release()
        raise
    return InstanceLock(held)


def describe_holders(ledger_url: str, data_dir: Path, instance: str, now: float) -> list[str]:
    """One line per bot holding a lock here right now, naming it and what it holds; empty when none."""
    held_by: dict[str, list[str]] = {}
    if ledger_url.startswith(("postgresql://", "postgres://")):
        from arbitrage.store.postgres_lease import probe_lease

        held, owner = probe_lease(ledger_url, instance)
        if held:
            who = owner.describe(now) if owner else "a bot that has not written its pid and host yet"
            held_by.setdefault(who, []).append(f"the lease of instance {instance}")
    for lock in file_locks(ledger_url, data_dir):
        with contextlib.suppress(OSError):
            held, owner = probe_file_lock(lock.path)
            if held:
                who = owner.describe() if owner else "a bot that has not written its pid and host yet"
                held_by.setdefault(who, []).append(str(lock.path))
    return [f"{who} holds {', '.join(what)}" for who, what in held_by.items()]
