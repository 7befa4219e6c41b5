"""Telegram alerts from the real command, against a loopback stand-in for the Bot API
(see docs/ARCHITECTURE.md, Operations)."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from tests.e2e.ops_harness import fake_telegram, run_clean
from tests.e2e.runner import BUSY_LOOP, Run, merge

TOKEN = "123456:FAKE-token"
CHAT_ID = "42"
TELEGRAM_ENV = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID}
LOOP_MS = re.compile(r"loop_ms=(\d+\.\d)")


def _loop_ms(run: Run) -> list[float]:
    return [float(m.group(1)) for line in run.metrics_lines() if (m := LOOP_MS.search(line))]


def test_alerts_reach_the_bot_api(tmp_path: Path) -> None:
    with fake_telegram("ok") as telegram:
        overrides = merge(
            BUSY_LOOP,
            {
                "alerts": {"telegram_base_url": telegram.url, "cooldown_s": 0},
                "mock": {"faults": {"one_leg_failure_rate": 1.0}},
            },
        )
        run = run_clean(
            tmp_path, "--mock", "--loops", "30", "--interval", "0", overrides=overrides, env=TELEGRAM_ENV
        )
        calls = list(telegram.calls)
    assert run.code == 0, run.stderr
    assert calls, "no sendMessage reached the stand-in"
    assert {c.path for c in calls} == {f"/bot{TOKEN}/sendMessage"}
    assert {str(c.body["chat_id"]) for c in calls} == {CHAT_ID}
    texts = [str(c.body["text"]) for c in calls]
    assert any("start" in t and "started in mock mode" in t for t in texts), texts[:3]
    assert any("single-leg" in t for t in texts), texts
    assert any("shutdown" in t and "stopped" in t for t in texts), texts[-3:]
    live = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert "alerts go to telegram and the log" in live
    assert "telegram alert failed" not in live


def test_a_hung_telegram_neither_slows_the_ticks_nor_holds_the_exit(tmp_path: Path) -> None:
    args = ("--mock", "--loops", "100", "--interval", "0.02")
    faults = {"mock": {"faults": {"one_leg_failure_rate": 1.0}}, "alerts": {"cooldown_s": 0}}
    started = time.monotonic()
    baseline = run_clean(tmp_path / "plain", *args, overrides=faults)
    baseline_wall = time.monotonic() - started
    with fake_telegram("hang", hang_s=30) as telegram:
        overrides = merge(faults, {"alerts": {"telegram_base_url": telegram.url}})
        started = time.monotonic()
        hung = run_clean(tmp_path / "hung", *args, overrides=overrides, env=TELEGRAM_ENV)
        wall = time.monotonic() - started
        reached = len(telegram.calls)
    assert baseline.code == hung.code == 0, hung.stderr
    assert reached >= 1, "the alerter never tried the stand-in"
    plain_ms, hung_ms = _loop_ms(baseline), _loop_ms(hung)
    assert len(plain_ms) == len(hung_ms) == 100
    # Generous bounds: this is about blocking (a hang would cost seconds per tick), not speed.
    assert statistics.median(hung_ms) < 5.0, statistics.median(hung_ms)
    assert statistics.median(hung_ms) < statistics.median(plain_ms) * 3 + 2.0
    assert max(hung_ms) < 1000.0
    # At most 2 s waiting on the alerter at close over the same run without Telegram; an exit held by
    # the hung request would come some 30 s after the first alert. Against the plain run, not a fixed
    # time, so that a loaded machine slows both alike.
    assert wall - baseline_wall < 12.0, f"the run took {wall:.1f}s, {baseline_wall:.1f}s without Telegram"
    live = (hung.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert (
        "telegram alert delivery did not finish within 2.0s" in live
        or "telegram alerts not delivered" in live
    )
