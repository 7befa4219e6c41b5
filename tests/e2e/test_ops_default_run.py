"""The shipped config in mock mode runs clean: six well-formed log files and nothing above INFO."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.ops_harness import run_clean
from tests.e2e.runner import LOG_LINE_RE, REPO

LOG_FILES = ("live_loop", "health", "safety", "watchdog", "sys_monitor", "execution")
# The one warning the machine, not the config, can cause: a trading tick's ledger commits wait for
# the disk (storage.synchronous FULL), and on a loaded machine an fsync has taken 600 ms, past
# watchdog.warn_loop_latency_ms. The watchdog saying so is right; anything else above INFO is not.
SLOW_DISK = re.compile(r"\[arbitrage\.watchdog\] (evaluation WARN at tick \d+, level WARN|level OK -> WARN): "
                       r"loop_latency_ms=[\d.]+ >= warn \d+$")


def above_info(line: str) -> bool:
    if "[WARNING ]" in line:
        return not SLOW_DISK.search(line)
    return "[ERROR   ]" in line or "[CRITICAL]" in line


@pytest.mark.slow
def test_fifty_ticks_at_half_a_second_with_the_default_config(tmp_path: Path) -> None:
    run = run_clean(
        tmp_path, "--mode", "mock", "--loops", "50", "--interval", "0.5", config=REPO / "config" / "live.yml"
    )

    assert run.code == 0, run.stderr
    assert run.stderr == ""
    assert len(run.metrics_lines()) == 50
    for line in run.stdout.splitlines():
        assert LOG_LINE_RE.match(line), f"stdout line not in the log format: {line!r}"
        assert not above_info(line), line
    for name in LOG_FILES:
        path = run.log_dir / f"{name}.log"
        assert path.is_file(), f"{path} missing"
        for line in path.read_text(encoding="utf-8").splitlines():
            assert LOG_LINE_RE.match(line), f"{name}.log line not in the log format: {line!r}"
            assert not above_info(line), f"{name}.log: {line}"
    live = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert "shutdown: 6/6 final alert sent; done" in live
