"""Redis going away mid-run (a private redis-server, killed and restarted on the same port): the loop
keeps running, the heartbeat age grows, safety rejects entries with REDIS_HEARTBEAT_STALE, the
watchdog escalates, and everything resumes when Redis is back."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import redis

from tests.e2e.ops_harness import bot_process
from tests.e2e.runner import BUSY_LOOP
from tests.store.redis_server import PrivateRedisServer

METRIC = re.compile(r"trades=(\d+)")


def _trades(stdout: str) -> int:
    found = METRIC.findall(stdout)
    return int(found[-1]) if found else 0


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
            time.sleep(4.0)  # heartbeat age passes the safety bound (1.5 s) and the watchdog max (2.5 s)
            assert bot.proc.poll() is None, "the loop keeps running without Redis"
            trades_during = _trades(bot.stdout())
            time.sleep(1.0)
            assert _trades(bot.stdout()) == trades_during, "no entry while the heartbeat is stale"

            server.start()
            deadline = time.monotonic() + 30
            while _trades(bot.stdout()) == trades_during and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _trades(bot.stdout()) > trades_during, "entries resume once Redis is back"
            watchdog_log = tmp_path / "bot" / "logs" / "watchdog.log"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not re.search(
                r"-> OK", watchdog_log.read_text(encoding="utf-8").split("redis_heartbeat_age_ms")[-1]
            ):
                time.sleep(0.2)
            bot.send(signal.SIGTERM)
            run = bot.finish(timeout=20)
        assert run.code == 0, run.stderr
        safety = (run.log_dir / "safety.log").read_text(encoding="utf-8")
        watchdog = (run.log_dir / "watchdog.log").read_text(encoding="utf-8")
        assert "REDIS_HEARTBEAT_STALE" in safety
        assert re.search(r"redis_heartbeat_age_ms=\d+(\.\d+)? >= max", watchdog), watchdog[-2000:]
        assert re.search(r"-> OK", watchdog.split("redis_heartbeat_age_ms")[-1]), (
            "back to OK after Redis returned"
        )
        loop_log = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
        assert "reachable again" in loop_log or "reachable again" in run.stdout
    finally:
        server.kill()
