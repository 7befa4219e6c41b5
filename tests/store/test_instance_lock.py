"""One bot per ledger: the file locks on real files, held and freed by real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from arbitrage.errors import AlreadyRunning
from arbitrage.store import instance_lock
from arbitrage.store.instance_lock import (
    FileLock,
    LockOwner,
    acquire_instance_lock,
    describe_holders,
    file_locks,
    probe_file_lock,
)

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()


def _now() -> float:
    return 1_796_000_000.0  # 2026-11-30 00:53:20 UTC: what the lock records as "since"


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def holder_process(ledger_url: str, data_dir: Path, instance: str) -> Iterator[subprocess.Popen[str]]:
    """Another process that takes the instance lock, says so, and holds it until killed."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from arbitrage.store.instance_lock import acquire_instance_lock
        lock = acquire_instance_lock({ledger_url!r}, Path({str(data_dir)!r}), {instance!r}, time.time)
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"  # waits for the condition, not for time
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_second_holder_is_refused_naming_the_first_then_may_take_it_once_released(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = _sqlite(data / "ledger.sqlite3")
    first = acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)
    with pytest.raises(AlreadyRunning) as refused:
        acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)
    message = str(refused.value)
    assert f"pid {os.getpid()} on host {HOST}" in message
    assert "instance arb-1, since 2026-11-30 00:53:20 UTC" in message
    assert str(data / "ledger.sqlite3.lock") in message
    # The refused attempt left the holder's name in both files.
    for lock in file_locks(url, data):
        assert LockOwner.from_json(lock.path.read_text()) == LockOwner("arb-1", os.getpid(), HOST, _now())
    first.release()
    again = acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)
    again.release()


def test_the_kernel_frees_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = _sqlite(data / "ledger.sqlite3")
    with holder_process(url, data, "arb-1") as holder:
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid} on host {HOST}"):
            acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert (data / ".lock").read_text()  # the dead holder's name is still in the file...
    lock = acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)  # ...but it holds nothing
    lock.release()


def test_a_sqlite_ledger_outside_the_data_dir_is_locked_beside_itself(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "ledger.sqlite3"
    first = acquire_instance_lock(_sqlite(shared), tmp_path / "data-a", "arb-1", _now, grace_s=0)
    try:
        with pytest.raises(AlreadyRunning, match=f"the ledger {shared}"):
            acquire_instance_lock(_sqlite(shared), tmp_path / "data-b", "arb-1", _now, grace_s=0)
        # Nothing of the refused bot stays locked: its own data dir is free for another ledger.
        other = acquire_instance_lock(_sqlite(tmp_path / "b.sqlite3"), tmp_path / "data-b", "arb-1", _now)
        other.release()
    finally:
        first.release()


def test_the_data_dir_is_locked_whatever_the_ledger(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = acquire_instance_lock(_sqlite(tmp_path / "a.sqlite3"), data, "arb-1", _now, grace_s=0)
    try:
        with pytest.raises(AlreadyRunning, match=r"the data dir .*its own --data-dir"):
            acquire_instance_lock(_sqlite(tmp_path / "b.sqlite3"), data, "arb-2", _now, grace_s=0)
    finally:
        first.release()
    assert [lock.path for lock in file_locks("sqlite:///:memory:", data)] == [data / ".lock"]


def test_a_lock_released_within_the_grace_is_taken_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".lock"
    owner = LockOwner.this_process("arb-1", _now())
    first = FileLock(path, "x", "").acquire(owner, grace_s=0)
    waits: list[float] = []

    class FirstLetsGoWhileWeWait:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)
            first.release()  # e.g. `arb health` ending its probe, or a predecessor closing

    monkeypatch.setattr(instance_lock, "time", FirstLetsGoWhileWeWait)
    second = FileLock(path, "x", "").acquire(owner, grace_s=30)
    assert len(waits) == 1  # it was contended once, waited, then took it
    second.release()


def test_health_probes_read_the_holder_without_taking_the_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = _sqlite(data / "ledger.sqlite3")
    assert probe_file_lock(data / ".lock") == (False, None)  # no file yet
    assert describe_holders(url, data, "arb-1", _now()) == []
    with holder_process(url, data, "arb-1") as holder:
        held, owner = probe_file_lock(data / ".lock")
        assert held and owner is not None and owner.pid == holder.pid
        [line] = describe_holders(url, data, "arb-1", _now())
        assert line.startswith(f"pid {holder.pid} on host {HOST} (instance arb-1, since ")
        assert line.endswith(f"holds {data / 'ledger.sqlite3.lock'}, {data / '.lock'}")
        # Probing did not disturb the holder: a bot starting now is still refused.
        with pytest.raises(AlreadyRunning):
            acquire_instance_lock(url, data, "arb-1", _now, grace_s=0)
    assert probe_file_lock(data / ".lock") == (False, None)


def test_a_clean_release_leaves_an_empty_file(tmp_path: Path) -> None:
    lock = acquire_instance_lock(_sqlite(tmp_path / "l.sqlite3"), tmp_path, "arb-1", _now, grace_s=0)
    assert (tmp_path / ".lock").read_text()
    lock.release()
    assert (tmp_path / ".lock").read_text() == ""
    assert (tmp_path / "l.sqlite3.lock").read_text() == ""


def test_an_unusable_lock_place_is_a_ledger_error_not_a_refusal(tmp_path: Path) -> None:
    from arbitrage.errors import LedgerUnavailable

    (tmp_path / "data").write_text("a file where the data dir should be\n")
    with pytest.raises(LedgerUnavailable, match="cannot lock"):
        acquire_instance_lock(_sqlite(tmp_path / "l.sqlite3"), tmp_path / "data", "arb-1", _now, grace_s=0)
    # What it had taken before failing is released again.
    lock = acquire_instance_lock(_sqlite(tmp_path / "l.sqlite3"), tmp_path / "d2", "arb-1", _now, grace_s=0)
    lock.release()


def test_the_owner_survives_a_round_trip_and_garbage_is_no_owner() -> None:
    owner = LockOwner("arb-1", 42, "box", _now())
    assert LockOwner.from_json(owner.to_json()) == owner
    assert LockOwner.from_json("") is None
    assert LockOwner.from_json('{"pid": "x"}') is None
    started = time.time()
    assert LockOwner.this_process("arb-1", started).pid == os.getpid()
