"""The operator's Telegram commands: a long-polling thread that reads the bot's updates and
answers the configured chat, and only that chat.

It never touches the loop's thread: a command is answered from the console state and from
read-only reads, or turned into the halt file or a stop request. Replies go straight to
sendMessage, not through the alert queue, so the alerts' cooldown never swallows an answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbitrage.ops.alerts import TELEGRAM_MAX_TEXT

log = logging.getLogger("arbitrage.alerts")

RETRY_MAX_S = 30.0  # the longest pause between two failed polls


@dataclass(frozen=True)
class Command:
    name: str  # "status", without the slash or the @bot suffix
    args: tuple[str, ...]


def parse_command(text: str) -> Command | None:
    """ "/profit 7" -> Command("profit", ("7",)); "/status@my_bot" -> Command("status", ());
    None for a message that is not a command."""
    words = text.strip().split()
    if not words or not words[0].startswith("/") or len(words[0]) < 2:
        return None
    name = words[0][1:].split("@", 1)[0].lower()
    return Command(name, tuple(words[1:])) if name else None


Answer = Callable[[Command], str]


class TelegramCommands:
    """Polls getUpdates (long polling, `poll_timeout_s`) on a daemon thread and answers commands
    from `chat_id` with `answer(command)`; anything else, from any other chat, is logged and ignored.

    Updates waiting from before the start are skipped (logged): a /stop sent to a bot that was
    down must not stop the next run the moment it starts.
    """

    def __init__(
        self,
        token: str,
        chat_id: str,
        base_url: str,
        answer: Answer,
        poll_timeout_s: float,
        timeout_s: float,
    ) -> None:
        self._token = token
        self._chat_id = chat_id.strip()
        self._api = f"{base_url.rstrip('/')}/bot{token}"
        self._answer = answer
        self._poll_timeout_s = poll_timeout_s
        self._timeout_s = timeout_s
        self._offset: int | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)
        self.answered = 0
        self.ignored = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop polling; a poll in flight is left to end on its own (the thread is a daemon)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # The polling thread --------------------------------------------------------------------

    def _run(self) -> None:
        # Until the waiting updates are known (and skipped), no command is obeyed: a Telegram
        # that is down at the start must not later deliver a stale /stop as if it were new.
        skipped = self._updates(0.0)
        pause = 1.0
        while skipped is None:
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2.0, RETRY_MAX_S)
            skipped = self._updates(0.0)
        log.info(
            "telegram commands: listening to chat %s (%d waiting update(s) skipped)",
            self._chat_id,
            len(skipped),
        )
        pause = 1.0
        while not self._stopping.is_set():
            updates = self._updates(self._poll_timeout_s)
            if updates is None:
                self._stopping.wait(pause)
                pause = min(pause * 2.0, RETRY_MAX_S)
                continue
            pause = 1.0
            for update in updates:
                if self._stopping.is_set():
                    return
                self._handle(update)

    def _updates(self, wait_s: float) -> list[dict[str, Any]] | None:
        """The next updates (moving the offset past them); None when the poll failed."""
        query: dict[str, Any] = {"timeout": int(wait_s), "allowed_updates": ["message"]}
        if self._offset is not None:
            query["offset"] = self._offset
        body = self._call("getUpdates", query, wait_s + self._timeout_s)
        if body is None:
            return None
        result = body.get("result")
        if not isinstance(result, list):
            return []
        updates = [u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
        if updates:
            self._offset = max(u["update_id"] for u in updates) + 1
        return updates

    def _handle(self, update: dict[str, Any]) -> None:
        message = update.get("message") or {}
        chat = str((message.get("chat") or {}).get("id", ""))
        text = str(message.get("text") or "")
        if chat != self._chat_id:
            self.ignored += 1
            log.warning(
                "telegram: ignored a message from chat %s (only chat %s is obeyed)",
                chat or "?",
                self._chat_id,
            )
            return
        command = parse_command(text)
        if command is None:
            return
        started = time.monotonic()
        try:
            reply = self._answer(command)
        except Exception:
            log.exception("telegram command /%s failed", command.name)
            reply = f"/{command.name} failed; see the bot's log"
        self.answered += 1
        log.info(
            "telegram command /%s answered in %.0f ms", command.name, (time.monotonic() - started) * 1000
        )
        self._call(
            "sendMessage", {"chat_id": self._chat_id, "text": reply[:TELEGRAM_MAX_TEXT]}, self._timeout_s
        )

    def _call(self, method: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        request = urllib.request.Request(
            f"{self._api}/{method}",
            data=json.dumps(params).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # Error texts are built by hand: urllib's can carry the URL, and the URL the token.
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                body = json.loads(response.read() or b"{}")
                return body if isinstance(body, dict) else {}
        except urllib.error.HTTPError as err:
            log.warning("telegram %s failed: HTTP %s", method, err.code)
        except urllib.error.URLError as err:
            log.warning("telegram %s failed: %s", method, str(err.reason).replace(self._token, "***"))
        except TimeoutError:
            log.warning("telegram %s failed: no answer within %.1fs", method, timeout_s)
        except Exception as err:
            log.warning("telegram %s failed: %s", method, type(err).__name__)
        return None
