"""The watchdog through the real command: loop latency over its max ends the run with exit 3."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from tests.e2e.runner import LOG_LINE_RE, run_bot

CRITICAL_AFTER = 3
# Thresholds must be > 0; every real tick takes far longer than 0.0002 ms, so each one is an ERROR.
LATENCY_ALWAYS_ERROR = {
    "watchdog": {
        "warn_loop_latency_ms": 0.0001,
        "max_loop_latency_ms": 0.0002,
        "evaluate_every_s": 0,
        "critical_after_errors": CRITICAL_AFTER,
    },
}
LEVEL_CHANGE = re.compile(r"\] level (\w+) -> (\w+)")
ERROR_EVALUATION = re.compile(
    r"\[ERROR +\] \[arbitrage\.watchdog\] evaluation ERROR \(consecutive errors (\d+)/(\d+)\)"
)


def test_loop_latency_over_max_ends_with_exit_3_after_exactly_n_error_evaluations(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mock", "--loops", "50", "--interval", "0.01", overrides=LATENCY_ALWAYS_ERROR)

    assert run.code == 3, run.stderr
    assert len(run.metrics_lines()) == CRITICAL_AFTER  # one evaluation per tick, the third one is CRITICAL
    watchdog = (run.log_dir / "watchdog.log").read_text(encoding="utf-8").splitlines()
    assert all(LOG_LINE_RE.match(line) for line in watchdog), watchdog

    path = [m.groups() for line in watchdog if (m := LEVEL_CHANGE.search(line))]
    levels = [path[0][0], *(to for _, to in path)]
    assert levels[0] == "OK" and levels[-1] == "CRITICAL", levels
    assert levels in (["OK", "ERROR", "CRITICAL"], ["OK", "WARN", "ERROR", "CRITICAL"]), levels
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(path)), path  # a connected path

    errors = [m.groups() for line in watchdog if (m := ERROR_EVALUATION.search(line))]
    assert errors == [(str(n), str(CRITICAL_AFTER)) for n in range(1, CRITICAL_AFTER + 1)]
    assert "loop_latency_ms=" in watchdog[0] and ">= max 0.0002" in watchdog[0]

    live = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert "ALERT [watchdog:CRITICAL]" in live and "[CRITICAL] [arbitrage.alerts]" in live
    assert "ALERT [watchdog:ERROR]" in live
    steps = [
        "shutdown: begin (watchdog CRITICAL after 3 consecutive ERROR evaluations",
        "shutdown: 1/6 new entries stopped",
        "shutdown: 2/6 cancel open orders done",
        "shutdown: 3/6 flatten skipped",
        "shutdown: 4/6 flush ledger done",
        "shutdown: 5/6 save state done",
        "shutdown: 6/6 final alert sent; done",
    ]
    positions = [live.find(step) for step in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "the shutdown steps ran out of order"
    assert live.find("ALERT [watchdog:CRITICAL]") < positions[0]  # the alert precedes the shutdown
    assert "ALERT [shutdown]" in live and "(exit 3)" in live
    assert (tmp_path / "data" / "state.json").is_file()
