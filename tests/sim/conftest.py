"""Fixtures for the simulator tests (the simulator itself comes from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def api_key(request: pytest.FixtureRequest) -> str:
    """An account of the test's own: the sim opens one per API key."""
    return "key-" + request.node.name
