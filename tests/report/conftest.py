"""Fixtures of the report tests that read the real Redis (db 13)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def prefix() -> Iterator[str]:
    key_prefix = f"test-watch-{uuid.uuid4().hex[:10]}"
    yield key_prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{key_prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()
