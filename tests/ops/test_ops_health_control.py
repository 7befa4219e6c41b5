"""POST /halt, /resume, /stop and GET /state on the real health server, over a real socket."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.ops.health_server import Control, HealthServer, HealthStatus
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.watchdog import Level

TOKEN = "s3cret-bearer-unit"


class Actions:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.document: dict[str, Any] | None = None

    def control(self, token: str) -> Control:
        def action(name: str) -> Any:
            def run(source: str) -> str:
                self.calls.append((name, source))
                return f"{name} done"

            return run

        return Control({p: action(p[1:]) for p in ("/halt", "/resume", "/stop")}, token, "ARB_CONTROL_TOKEN")


@pytest.fixture
def actions() -> Actions:
    return Actions()


def _serve(actions: Actions, token: str) -> Iterator[HealthServer]:
    server = HealthServer(
        "127.0.0.1",
        0,
        lambda: HealthStatus(Level.OK),
        BotMetrics(),
        state=lambda: actions.document,
        control=actions.control(token),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(actions: Actions) -> Iterator[HealthServer]:
    yield from _serve(actions, TOKEN)


@pytest.fixture
def disabled(actions: Actions) -> Iterator[HealthServer]:
    yield from _serve(actions, "")


def request(url: str, method: str = "POST", auth: str | None = None) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": auth} if auth is not None else {}
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers.get("WWW-Authenticate") or ""
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get("WWW-Authenticate") or ""


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, 401),
        ("Bearer", 401),
        ("Bearer wrong", 401),
        (f"Basic {TOKEN}", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),  # the scheme is case-insensitive (RFC 7235)
    ],
)
def test_only_the_right_bearer_token_acts(
    server: HealthServer, actions: Actions, auth: str | None, code: int
) -> None:
    status, body, challenge = request(f"{server.url}/halt", auth=auth)
    assert status == code, body
    if code == 200:
        assert body == {"ok": True, "action": "halt", "result": "halt done"}
        assert actions.calls == [("halt", actions.calls[0][1])]
        assert actions.calls[0][1].startswith("POST /halt from 127.0.0.1:")
    else:
        assert actions.calls == []
        assert challenge.startswith("Bearer")


@pytest.mark.parametrize("path", ["/halt", "/resume", "/stop"])
def test_each_control_path_runs_its_action(server: HealthServer, actions: Actions, path: str) -> None:
    status, body, _ = request(f"{server.url}{path}", auth=f"Bearer {TOKEN}")
    assert status == 200 and body["action"] == path[1:]
    assert [name for name, _ in actions.calls] == [path[1:]]


def test_without_a_token_control_is_disabled_and_says_how_to_enable_it(
    disabled: HealthServer, actions: Actions
) -> None:
    status, body, _ = request(f"{disabled.url}/stop", auth="Bearer ")
    assert status == 403 and "set ARB_CONTROL_TOKEN" in body["error"]
    assert actions.calls == []


def test_other_posts_and_get_on_control_paths(server: HealthServer, actions: Actions) -> None:
    assert request(f"{server.url}/health", auth=f"Bearer {TOKEN}")[0] == 405
    assert request(f"{server.url}/reboot", auth=f"Bearer {TOKEN}")[0] == 404
    assert request(f"{server.url}/halt", method="GET")[0] == 404
    assert actions.calls == []


def test_the_token_is_never_logged(server: HealthServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="arbitrage.health")
    request(f"{server.url}/halt", auth=f"Bearer {TOKEN}")
    request(f"{server.url}/halt", auth=f"Bearer {TOKEN}-wrong")
    assert "refused POST /halt" in caplog.text and "POST /halt from 127.0.0.1" in caplog.text
    assert TOKEN not in caplog.text


def test_state_is_the_console_document_once_there_is_one(server: HealthServer, actions: Actions) -> None:
    status, body, _ = request(f"{server.url}/state", method="GET")
    assert status == 503 and "no console state yet" in body["error"]
    actions.document = {"tick": 7, "halted": False}
    assert request(f"{server.url}/state", method="GET")[:2] == (200, {"tick": 7, "halted": False})
