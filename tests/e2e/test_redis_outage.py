"""Redis going away mid-run (a private redis-server, killed and restarted on the same port): the loop
keeps running, the heartbeat age grows, safety rejects entries with REDIS_HEARTBEAT_STALE, the
watchdog escalates, and everything resumes when Redis is back."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import redis

from tests.e2e.ops_harness import bot_process
from tests.e2e.runner import BUSY_LOOP
from tests.store.redis_server import PrivateRedisServer
from tests.waiting import wait_until

METRIC = re.compile(r"trades=(\d+)")


MAX_AGE = re.compile(r"redis_heartbeat_age_ms=\d+(\.\d+)? >= max")


def _trades(stdout: str) -> int:
    found = METRIC.findall(stdout)
    return int(found[-1]) if found else 0


def _ticks(stdout: str) -> int:
    return len(METRIC.findall(stdout))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_redis_outage_blocks_entries_escalates_and_recovers(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = PrivateRedisServer(tmp_path / "redis")
    server.start()
    overrides = {
        **BUSY_LOOP,
        "redis": {"enabled": True, "url": server.url, "key_prefix": "arbtest", "heartbeat_interval_s": 0.2,
                  "heartbeat_ttl_s": 5},
        "safety": {"require_redis_heartbeat": True, "max_heartbeat_age_ms": 1500},
        "watchdog": {"warn_redis_heartbeat_age_ms": 1000, "max_redis_heartbeat_age_ms": 2500,
                     "critical_after_errors": 1000, "evaluate_every_s": 0.2, "warn_reset_cycles": 2},
    }  # fmt: skip
    try:
        with bot_process(tmp_path / "bot", "--mock", "--interval", "0.05", overrides=overrides) as bot:
            bot.wait_for(r"trades=[1-9]", timeout=30)
            client = redis.Redis.from_url(server.url)
            keys = {k.decode() for k in client.keys("arbtest:*")}
            assert {"arbtest:arb-1:heartbeat", "arbtest:arb-1:state", "arbtest:arb-1:events"} <= keys
            assert 0 < client.pttl("arbtest:arb-1:heartbeat") <= 5000
            state = json.loads(client.get("arbtest:arb-1:state") or b"{}")
            assert state["instance"] == "arb-1" and "open_positions" in state
            kinds = {e[1][b"kind"].decode() for e in client.xrange("arbtest:arb-1:events")}
            assert "entry" in kinds
            client.close()

            server.kill()
            logs = tmp_path / "bot" / "logs"
            safety_log, watchdog_log = logs / "safety.log", logs / "watchdog.log"
            # The heartbeat age passes the safety bound (1.5 s), then the watchdog max (2.5 s).
            wait_until(
                lambda: "REDIS_HEARTBEAT_STALE" in _read(safety_log), 30, "entries refused", proc=bot.proc
            )
            wait_until(
                lambda: MAX_AGE.search(_read(watchdog_log)), 30, "the watchdog at its max", proc=bot.proc
            )
            trades_during, ticks = _trades(bot.stdout()), _ticks(bot.stdout())
            # Ten ticks more (not a time: a loaded machine ticks slower), the loop still running.
            wait_until(
                lambda: _ticks(bot.stdout()) >= ticks + 10, 30, "ten ticks without Redis", proc=bot.proc
            )
            assert _trades(bot.stdout()) == trades_during, "no entry while the heartbeat is stale"

            server.start()
            wait_until(
                lambda: _trades(bot.stdout()) > trades_during, 30, "entries to resume once Redis is back"
            )
            wait_until(
                lambda: re.search(r"-> OK", _read(watchdog_log).split("redis_heartbeat_age_ms")[-1]),
                30,
                "the watchdog back to OK",
            )
            bot.send(signal.SIGTERM)
            run = bot.finish(timeout=20)
        assert run.code == 0, run.stderr
        safety = (run.log_dir / "safety.log").read_text(encoding="utf-8")
        watchdog = (run.log_dir / "watchdog.log").read_text(encoding="utf-8")
        assert "REDIS_HEARTBEAT_STALE" in safety
        assert MAX_AGE.search(watchdog), watchdog[-2000:]
        assert re.search(r"-> OK", watchdog.split("redis_heartbeat_age_ms")[-1]), (
            "back to OK after Redis returned"
        )
        loop_log = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
        assert "reachable again" in loop_log or "reachable again" in run.stdout
    finally:
        server.kill()
