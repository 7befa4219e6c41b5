"""For the operations tests: the real command run in the background (to signal it or probe it while
it runs), a loopback stand-in for the Telegram Bot API, and a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.runner import REPO, SCRIPT, Run, write_config
from tests.waiting import wait_until


def free_port() -> int:
    """A port nothing listens on right now: bound once by the OS, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without anything that would change the bot's mode or secrets."""
    drop = ("ARB_", "LIVE_TRADING", "TELEGRAM_", "UPBIT_", "BINANCE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(REPO)  # user engines under tests/ load by dotted path
    env.update(extra or {})
    return env


class BotProcess:
    """scripts/run_live.py in `workdir`, stdout and stderr going to files that can be read while it runs."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        overrides: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        config: Path | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config = config or write_config(workdir, overrides)
        self._stdout_path = workdir / "stdout.txt"
        self._stderr_path = workdir / "stderr.txt"
        self._stdout = self._stdout_path.open("wb")
        self._stderr = self._stderr_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--config",
                str(config),
                "--log-dir",
                "logs",
                "--data-dir",
                "data",
                *args,
            ],
            cwd=workdir,
            env=bot_env(env),
            stdout=self._stdout,
            stderr=self._stderr,
        )

    def stdout(self) -> str:
        return self._stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first match of `pattern` in stdout, waiting for it; fails if the bot exits first."""
        regex = re.compile(pattern)
        return wait_until(
            lambda: regex.search(self.stdout()),
            timeout,
            f"{pattern!r} in the bot's output",
            every_s=0.01,
            proc=self.proc,
            details=lambda: self.stderr()[-2000:],
        )

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 30.0) -> Run:
        """Wait for the exit and return it as a Run (code, stdout, stderr, workdir)."""
        try:
            self.proc.wait(timeout)
        finally:
            self.close()
        return Run(self.proc.returncode, self.stdout(), self.stderr(), self.workdir)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stdout.close()
        self._stderr.close()


@contextmanager
def bot_process(workdir: Path, *args: str, **kwargs: Any) -> Iterator[BotProcess]:
    bot = BotProcess(workdir, *args, **kwargs)
    try:
        yield bot
    finally:
        bot.close()


def run_clean(
    workdir: Path,
    *args: str,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    config: Path | None = None,
) -> Run:
    """Like runner.run_bot, but no secret or mode variable of the test's own environment leaks in."""
    with bot_process(workdir, *args, overrides=overrides, env=env, config=config) as bot:
        return bot.finish(timeout)


@dataclass
class TelegramCall:
    path: str
    body: dict[str, Any]


@dataclass
class FakeTelegram:
    """Answers sendMessage like the Bot API ("ok"), with HTTP 500 ("error"), or not at all ("hang").

    getUpdates (always answered, long-polling up to 2 s) hands out the messages queued with
    `message(chat_id, text)`, as the Bot API does: those from `offset` on. Polls are counted, not
    kept in `calls`, which holds the sendMessage posts only.
    """

    mode: str = "ok"
    hang_s: float = 30.0
    calls: list[TelegramCall] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def texts(self) -> list[str]:
        return [str(c.body.get("text", "")) for c in list(self.calls)]

    def message(self, chat_id: int, text: str) -> int:
        """Queue a message from `chat_id` for the bot's next getUpdates; returns its update id."""
        with self.changed:
            update_id = 1000 + len(self.updates)
            chat = {"id": chat_id, "type": "private"}
            message = {"message_id": update_id, "date": int(time.time()), "chat": chat, "text": text}
            self.updates.append({"update_id": update_id, "message": message})
            self.changed.notify_all()
            return update_id

    def replies(self, chat_id: int) -> list[str]:
        return [
            str(c.body.get("text", ""))
            for c in list(self.calls)
            if str(c.body.get("chat_id")) == str(chat_id)
        ]

    def get_updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(body.get("offset") or 0)
        wait_s = min(float(body.get("timeout") or 0), 2.0)
        with self.changed:
            self.polls += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: any(u["update_id"] >= offset for u in self.updates), wait_s)
            return [u for u in self.updates if u["update_id"] >= offset]


@contextmanager
def fake_telegram(mode: str = "ok", hang_s: float = 30.0) -> Iterator[FakeTelegram]:
    fake = FakeTelegram(mode=mode, hang_s=hang_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            if self.path.endswith("/getUpdates"):
                self._answer(200, {"ok": True, "result": fake.get_updates(body)})
                return
            fake.calls.append(TelegramCall(self.path, body))
            if fake.mode == "hang":
                fake.release.wait(fake.hang_s)
                return
            code = 200 if fake.mode == "ok" else 500
            payload = (
                {"ok": True, "result": {"message_id": len(fake.calls)}} if code == 200 else {"ok": False}
            )
            self._answer(code, payload)

        def _answer(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
