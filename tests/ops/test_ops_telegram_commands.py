"""The Telegram command poller against a loopback stand-in for the Bot API: only the configured
chat is obeyed, updates from before the start are skipped, replies go straight to sendMessage."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from arbitrage.ops.telegram_commands import Command, TelegramCommands
from tests.e2e.ops_harness import FakeTelegram, fake_telegram
from tests.waiting import wait_until

TOKEN = "555:unit-commands"
OWNER, STRANGER = 1001, 2002


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with fake_telegram("ok") as fake:
        yield fake


def _poller(telegram: FakeTelegram, answered: list[Command]) -> TelegramCommands:
    def answer(command: Command) -> str:
        answered.append(command)
        if command.name == "boom":
            raise RuntimeError("handler broke")
        return f"answer to /{command.name} {' '.join(command.args)}".strip()

    return TelegramCommands(TOKEN, str(OWNER), telegram.url, answer, poll_timeout_s=1.0, timeout_s=5.0)


def test_only_the_configured_chat_is_answered(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arbitrage.alerts")
    telegram.message(OWNER, "/stop")  # sent while the bot was down: skipped, never acted on
    answered: list[Command] = []
    poller = _poller(telegram, answered)
    poller.start()
    try:
        wait_until(lambda: "1 waiting update(s) skipped" in caplog.text, 30, "the start-up skip")
        telegram.message(STRANGER, "/halt")
        telegram.message(OWNER, "hello there")  # not a command: no answer
        telegram.message(OWNER, "/profit@arb_bot 3")
        telegram.message(OWNER, "/boom")
        replies = wait_until(
            lambda: len(telegram.replies(OWNER)) >= 2 and telegram.replies(OWNER), 30, "replies"
        )
    finally:
        poller.stop()
    assert answered == [Command("profit", ("3",)), Command("boom", ())]
    assert replies == ["answer to /profit 3", "/boom failed; see the bot's log"]
    assert telegram.replies(STRANGER) == []
    assert {c.path for c in telegram.calls} == {f"/bot{TOKEN}/sendMessage"}
    assert poller.ignored == 1 and poller.answered == 2
    assert f"telegram: ignored a message from chat {STRANGER}" in caplog.text
    assert "telegram command /boom failed" in caplog.text


def test_an_unreachable_api_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="arbitrage.alerts")
    poller = TelegramCommands(
        TOKEN, str(OWNER), "http://127.0.0.1:9", lambda c: "", poll_timeout_s=1.0, timeout_s=1.0
    )
    poller.start()
    try:
        wait_until(lambda: "telegram getUpdates failed" in caplog.text, 30, "the failed poll logged")
    finally:
        poller.stop()
    assert TOKEN not in caplog.text
