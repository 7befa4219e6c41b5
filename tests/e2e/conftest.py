"""Fixtures of the end-to-end tests that several modules share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.e2e.fleet_harness import REDIS_DB_URL, delete_keys


@pytest.fixture
def fleet_redis() -> Iterator[tuple[redis.Redis, str]]:
    """A client of the fleet tests' Redis database and a key prefix of the test's own, whose keys
    are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_DB_URL)
    prefix = f"fleet-{uuid.uuid4().hex[:10]}"
    yield client, prefix
    delete_keys(client, prefix)
    client.close()
