"""`arb watch` as an operator sees it: run under tmux against a running mock bot, the screen
captured and read (see README, The operator's console)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.e2e.ops_harness import bot_env, bot_process, free_port
from tests.e2e.runner import REPO, write_config
from tests.e2e.test_ops_console import ENV, TOKEN, post
from tests.waiting import wait_until

EVENT_LINE = re.compile(r"\d\d:\d\d:\d\d\s+(alert|entry|exit|hedge)\s+\S")
# worker, state, heartbeat, lease, symbols, open, reserved (the same count), in flight
FLEET_ROW = re.compile(r"arb-1\s+alive\s+\d+\.\ds\s+\d+\.\ds\s+BTC,ETH\s+([1-7])\s+\1\s+\d")


class Tmux:
    """One tmux server of the test's own (-L), so that nothing else's sessions are touched."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "watch").stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", "watch").returncode == 0

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        return wait_until(
            lambda: (s := self.screen()) and all(t in s for t in texts) and s,
            timeout,
            f"{texts} on the dashboard",
            details=self.screen,
        )


@contextmanager
def tmux_session(command: str, width: int, height: int) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail(
            "tmux is not installed: `apt-get install -y tmux` (the dashboard test drives a real terminal)"
        )
    tmux = Tmux(f"arb-watch-test-{os.getpid()}")
    started = tmux.run("new-session", "-d", "-s", "watch", "-x", str(width), "-y", str(height), command)
    assert started.returncode == 0, started.stderr
    try:
        yield tmux
    finally:
        tmux.run("kill-server")


def test_the_dashboard_of_a_running_bot_under_tmux(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    overrides = {"health_server": {"enabled": True, "host": "127.0.0.1", "port": port}}
    env = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in bot_env().items() if k in ("PYTHONPATH", "PATH", "HOME")
    )
    watch = f"env {env} {shlex.quote(sys.executable)} -m arbitrage watch --url {base} --refresh 0.2"
    with (
        bot_process(
            tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", overrides=overrides, env=ENV
        ) as bot,
        tmux_session(f"cd {shlex.quote(str(REPO))} && {watch}", 160, 50) as tmux,
    ):
        screen = tmux.wait_for(
            "arb-1 (mock)",
            "TRADING",
            "net spread vs entry threshold",
            "binance → upbit",
            "venues",
            "simulated",
            "closed",
            "today / watchdog",
            "loop_latency_ms",
            "open positions",
            "last events",
        )
        wait_until(
            lambda: EVENT_LINE.search(tmux.screen()),
            30,
            "an event line (time, kind, text)",
            details=tmux.screen,
        )
        assert len(screen.splitlines()) <= 50 and max(len(line) for line in screen.splitlines()) <= 160
        (tmp_path / "screen-running.txt").write_text(screen, encoding="utf-8")

        assert post(f"{base}/halt", TOKEN)[0] == 200
        tmux.wait_for("HALTED", "halt: halt file .halt exists")

        tmux.run("resize-window", "-t", "watch", "-x", "100", "-y", "30")
        narrow = wait_until(
            lambda: (
                (s := tmux.screen())
                and max(len(line) for line in s.splitlines()) <= 100
                and "HALTED" in s
                and "╰" in s.splitlines()[-1]
                and s
            ),
            30,
            "the dashboard redrawn at 100x30",
            details=tmux.screen,
        )
        assert len(narrow.splitlines()) <= 30

        assert post(f"{base}/stop", TOKEN)[0] == 200
        assert bot.finish(timeout=60).code == 0
        tmux.wait_for(f"bot unreachable at {base} (connection refused), retrying", "last state received")

        tmux.run("send-keys", "-t", "watch", "q")
        wait_until(lambda: not tmux.alive(), 30, "arb watch to quit on q", details=tmux.screen)


def test_the_dashboard_from_redis_under_tmux_with_the_fleet(tmp_path: Path) -> None:
    """A fleet worker watched through Redis, with --fleet its config: the fleet's panel too."""
    prefix = f"test-watch-e2e-{os.getpid()}"
    url = "redis://127.0.0.1:6379/13"
    overrides = {
        "redis": {"enabled": True, "url": url, "key_prefix": prefix},
        "fleet": {"enabled": True, "key_prefix": prefix},
        "mock": {"premium_mean_pct": 0.6},
        "safety": {"max_open_positions": 7},
    }
    config = write_config(tmp_path, overrides)
    watch = (
        f"{shlex.quote(sys.executable)} -m arbitrage watch --redis {url} --key-prefix {prefix} --refresh 0.2"
        f" --fleet {shlex.quote(str(config))}"
    )
    try:
        with (
            bot_process(tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", config=config) as bot,
            tmux_session(f"cd {shlex.quote(str(REPO))} && {watch}", 160, 50) as tmux,
        ):
            tmux.wait_for("arb-1 (mock)", "TRADING", f"from {url} key {prefix}:arb-1:console", "venues")
            tmux.wait_for("fleet", "1/1 worker(s) alive   positions ", "/7   exposure ", "in flight")
            # The worker's row: alive, its heartbeat and lease, the assets it trades, and once it
            # holds a position, the same count open (its console) and reserved (the budget).
            wait_until(
                lambda: FLEET_ROW.search(tmux.screen()),
                60,
                "arb-1's row with an open position reserved",
                details=tmux.screen,
            )
            bot.send(signal.SIGTERM)
            assert bot.finish(timeout=60).code == 0
            tmux.run("send-keys", "-t", "watch", "q")
            wait_until(lambda: not tmux.alive(), 30, "arb watch to quit on q", details=tmux.screen)
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:1", "--redis", "redis://127.0.0.1:6379/0"], "give one source, not both"),
        (
            ["--url", "127.0.0.1:8080"],
            "--url: expected http://host:port (the health server), found '127.0.0.1:8080'",
        ),
        (
            ["--redis", "redis://127.0.0.1:6379/0", "--instance", "a b"],
            "--redis: redis instance name must be",
        ),
        ([], "needs a terminal on stdout"),
    ],
)
def test_bad_usage_exits_2_with_one_sentence(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arbitrage", "watch", *args],
        cwd=REPO,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
