"""The PostgreSQL lease on the real server (127.0.0.1:5432) in throwaway schemas."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from arbitrage.errors import AlreadyRunning
from arbitrage.store.instance_lock import LockOwner
from arbitrage.store.ledger import open_ledger
from arbitrage.store.postgres_lease import PostgresLease, lease_key, probe_lease
from arbitrage.store.postgres_ledger import split_schema
from tests.conftest import PG_ADMIN_URL
from tests.waiting import wait_until

HOST = socket.gethostname()
SINCE = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def _owner(instance: str = "arb-1", pid: int | None = None) -> LockOwner:
    return LockOwner(instance, pid or os.getpid(), HOST, SINCE)


def _lease_row(url: str, instance: str) -> tuple[int, str, float, float] | None:
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT pid, host, started_at, heartbeat_at FROM "{schema}".instance_leases WHERE instance = %s',
            (instance,),
        ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), float(row[2]), float(row[3]))


def test_a_second_holder_of_the_same_instance_is_refused_by_name(pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    first = PostgresLease.acquire(url, _owner(pid=4242), time.time, grace_s=0)
    try:
        with pytest.raises(AlreadyRunning) as refused:
            PostgresLease.acquire(url, _owner(), time.time, grace_s=0)
        message = str(refused.value)
        assert f"pid 4242 on host {HOST} (instance arb-1, since 2026-11-30 00:53:20 UTC" in message
        assert "127.0.0.1:5432/test schema arb_test_" in message and "last heartbeat" in message
        assert _lease_row(url, "arb-1") == (4242, HOST, SINCE, SINCE)  # the refusal changed nothing
    finally:
        first.release()
    assert _lease_row(url, "arb-1") is None  # a clean release clears the row
    again = PostgresLease.acquire(url, _owner(), time.time, grace_s=0)
    again.release()


def test_other_instances_and_other_schemas_each_have_their_own_lease(
    pg_schema_url: Callable[[], str],
) -> None:
    url, other_schema = pg_schema_url(), pg_schema_url()
    leases = [
        PostgresLease.acquire(url, _owner("arb-1"), time.time, grace_s=0),
        PostgresLease.acquire(url, _owner("worker-2"), time.time, grace_s=0),  # scale-out: another name
        PostgresLease.acquire(other_schema, _owner("arb-1"), time.time, grace_s=0),  # another ledger
    ]
    for lease in leases:
        lease.release()
    assert lease_key("a", "arb-1") != lease_key("b", "arb-1") != lease_key("a", "arb-2")


def test_a_holder_whose_connection_dies_frees_the_lease(pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    first = PostgresLease.acquire(url, _owner(pid=4242), time.time, grace_s=0)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        # What a SIGKILLed bot's server side sees: its session ends, and the lock with it.
        admin.execute("SELECT pg_terminate_backend(%s)", (first._conn.info.backend_pid,))
    second = PostgresLease.acquire(url, _owner(), time.time, grace_s=10)
    try:
        row = _lease_row(url, "arb-1")
        assert row is not None and row[0] == os.getpid()  # the new holder's row replaced the dead one's
    finally:
        second.release()
    first.release()  # on a dead connection: logs, never raises


def test_the_heartbeat_moves_and_a_lost_lease_is_reported(pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    lease = PostgresLease.acquire(url, _owner(), time.time, grace_s=0, heartbeat_s=0.05)
    lost: list[str] = []
    got_lost = threading.Event()
    lease.watch(lambda text: (lost.append(text), got_lost.set()))
    try:
        wait_until(
            lambda: (row := _lease_row(url, "arb-1")) is not None and row[3] != SINCE, 30, "a heartbeat"
        )
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (lease._conn.info.backend_pid,))
        assert got_lost.wait(30), "the lost lease was not reported"
        assert "lease lost on the PostgreSQL ledger" in lost[0]
        assert "another bot of this instance could now start" in lost[0]
    finally:
        lease.release()  # on a dead connection: logs, never raises


def test_health_probe_names_the_holder_without_taking_the_lease(pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    open_ledger(url).close()  # the schema exists, as it would after any run
    assert probe_lease(url, "arb-1") == (False, None)
    lease = PostgresLease.acquire(url, _owner(pid=4242), time.time, grace_s=0)
    try:
        held, owner = probe_lease(url, "arb-1")
        assert held and owner is not None and (owner.pid, owner.host) == (4242, HOST)
        assert probe_lease(url, "worker-2") == (False, None)
        with pytest.raises(AlreadyRunning):  # the probe did not take it from the holder
            PostgresLease.acquire(url, _owner(), time.time, grace_s=0)
    finally:
        lease.release()
    assert probe_lease(url, "arb-1") == (False, None)
