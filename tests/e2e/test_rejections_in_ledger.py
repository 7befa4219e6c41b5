"""Safety rejections in the ledger: a mock run's counts per reason, as `arb report` prints them,
sum to what the safety engine counted (the metrics line's safety_rejections)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.e2e.ops_harness import bot_env
from tests.e2e.runner import BUSY_LOOP, merge, run_bot

# One open position at most: once it is open, each new opportunity is refused MAX_OPEN_POSITIONS.
TIGHT = merge(BUSY_LOOP, {"safety": {"max_open_positions": 1}})
LOOPS = 60


def rejections_table(stdout: str) -> dict[str, int]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Safety rejections by reason"))
    rows: dict[str, int] = {}
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        cells = [c.strip() for c in line.strip("│").split("│")] if line.startswith("│") else []
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = int(cells[1])
    return rows


def test_rejections_by_reason_in_the_ledger_and_the_report_sum_to_the_engines_count(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mode", "mock", "--loops", str(LOOPS), "--interval", "0", overrides=TIGHT)
    assert run.code == 0, run.stderr[-3000:]
    last = run.metrics_lines()[-1]
    counted = int(re.search(r"safety_rejections=(\d+)", last).group(1))  # type: ignore[union-attr]
    assert counted > 0, "the run should have rejected opportunities"

    with sqlite3.connect(run.ledger_path) as db:
        rows = db.execute(
            "SELECT day, asset, buy_venue, sell_venue, reason, count, first_ts, last_ts "
            "FROM safety_rejections"
        ).fetchall()
    assert sum(r[5] for r in rows) == counted  # written at shutdown too: none lost
    assert all(r[6] <= r[7] for r in rows)
    assert {r[4] for r in rows} >= {"MAX_OPEN_POSITIONS"}
    assert all(r[2] != r[3] and r[1] in ("BTC", "ETH") for r in rows)

    by_reason: dict[str, int] = {}
    for r in rows:
        by_reason[r[4]] = by_reason.get(r[4], 0) + r[5]
    report = subprocess.run(
        [sys.executable, "-m", "arbitrage", "report", "--ledger", str(run.ledger_path)],
        cwd=tmp_path, env=bot_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert rejections_table(report.stdout) == by_reason
    assert "older than the bot's count" not in report.stdout
