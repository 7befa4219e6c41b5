#!/usr/bin/env python3
"""The operator's commands, round trip: `python scripts/console_rtt.py [OPTIONS]` runs the real bot
(mock mode, health server, a loopback Telegram stand-in) and prints the medians of
  POST /halt  -> the halt shown in GET /state (the next tick took it),
  /status sent to the chat stand-in -> its reply received,
  POST /stop  -> the process exited (graceful shutdown included).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

# Runnable from a checkout without installing; the Telegram stand-in is the test suite's own.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.ops_harness import BotProcess, FakeTelegram, fake_telegram, free_port  # noqa: E402

TOKEN = "rtt-control-token"
CHAT = 31337


def post(url: str) -> None:
    request = urllib.request.Request(
        url, data=b"", headers={"Authorization": f"Bearer {TOKEN}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def state(base: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{base}/state", timeout=10) as response:
        document: dict[str, object] = json.loads(response.read())
        return document


def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> float:
    """Seconds until `condition` held, polled every millisecond."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.001)
    return time.perf_counter() - started


def figures(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    median = statistics.median(ms)
    return f"  {name:<34} n={len(ms):<3} median {median:7.1f} ms  p90 {p90:7.1f}  max {ms[-1]:7.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument(
        "--interval", type=float, default=1.0, help="the bot's loop.interval_s (config default 1 s)"
    )
    args = p.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake_telegram("ok") as telegram, tempfile.TemporaryDirectory(prefix="console-rtt-") as tmp:
        overrides = {
            "health_server": {"enabled": True, "host": "127.0.0.1", "port": port},
            "alerts": {"telegram_base_url": telegram.url, "poll_timeout_s": 25},
        }
        env = {"ARB_CONTROL_TOKEN": TOKEN, "TELEGRAM_BOT_TOKEN": "1:rtt", "TELEGRAM_CHAT_ID": str(CHAT)}
        bot = BotProcess(Path(tmp), "--mock", "--interval", str(args.interval), overrides=overrides, env=env)
        try:
            bot.wait_for(r"telegram commands: listening")
            until(lambda: bot.proc.poll() is None and _has_state(base), "the first console state")
            halts, resumes, chats = [], [], []
            for _ in range(args.rounds):
                # An operator's command lands anywhere within a tick, not just after one.
                time.sleep(random.uniform(0.0, args.interval))
                started = time.perf_counter()
                post(f"{base}/halt")
                until(lambda: state(base)["halted"] is True, "halted in /state")
                halts.append(time.perf_counter() - started)
                time.sleep(random.uniform(0.0, args.interval))
                started = time.perf_counter()
                post(f"{base}/resume")
                until(lambda: state(base)["halted"] is False, "resumed in /state")
                resumes.append(time.perf_counter() - started)
                replied = len(telegram.replies(CHAT)) + 1
                started = time.perf_counter()
                telegram.message(CHAT, "/status")
                until(partial(_replied, telegram, replied), "the /status reply")
                chats.append(time.perf_counter() - started)
            started = time.perf_counter()
            post(f"{base}/stop")
            code = bot.proc.wait(60)
            stopped = time.perf_counter() - started
        finally:
            bot.close()
    print(f"== operator commands, round trip (real bot, mock mode, loop.interval_s {args.interval})")
    print(figures("POST /halt -> halted in /state", halts))
    print(figures("POST /resume -> resumed in /state", resumes))
    print(figures("telegram /status -> reply", chats))
    print(f"  {'POST /stop -> process exited':<34} {stopped * 1000:.0f} ms, exit code {code}")
    return 0 if code == 0 else 1


def _replied(telegram: FakeTelegram, count: int) -> bool:
    return len(telegram.replies(CHAT)) >= count


def _has_state(base: str) -> bool:
    try:
        state(base)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
