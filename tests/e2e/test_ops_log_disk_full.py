"""A log file that cannot be written mid-run stops the trading: entries at once, then the run with
watchdog CRITICAL (exit 3), with an alert, and stderr says it once instead of once per record.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.ops_harness import bot_env, fake_telegram, run_clean
from tests.e2e.runner import SCRIPT, write_config
from tests.e2e.test_ops_alerts_telegram import TELEGRAM_ENV

TRADES = re.compile(r"trades=(\d+)")


def test_an_unwritable_audit_log_stops_entries_then_the_bot_with_exit_3(tmp_path: Path) -> None:
    # execution.log is written first when the bot trades: as a link to /dev/full (every write
    # fails with ENOSPC, as on a full disk) it fails mid-run, at the first trade.
    (tmp_path / "logs").mkdir(parents=True)
    (tmp_path / "logs" / "execution.log").symlink_to("/dev/full")
    with fake_telegram("ok") as telegram:
        overrides = {"alerts": {"telegram_base_url": telegram.url, "cooldown_s": 0}}
        run = run_clean(
            tmp_path, "--mock", "--loops", "2000", "--interval", "0.05", overrides=overrides, env=TELEGRAM_ENV
        )
        texts = telegram.texts()
    assert run.code == 3, run.stderr[-2000:]
    unwritable = "cannot write the audit log (logs/execution.log: [Errno 28] No space left on device)"
    assert any(unwritable in t and "new entries stopped" in t for t in texts), texts
    assert any("watchdog level ERROR -> CRITICAL: audit_log=ERROR" in t for t in texts), texts
    assert any("stopped: watchdog CRITICAL" in t and "(exit 3)" in t for t in texts), texts[-2:]

    # stderr: said once (and each alert once), not a traceback per record.
    lines = run.stderr.splitlines()
    assert "Logging error" not in run.stderr and "Traceback" not in run.stderr
    assert len(lines) <= 8, lines
    assert sum("logging: cannot write logs/execution.log: [Errno 28]" in line for line in lines) == 1

    # It had traded before the failure; no entry after it (exits may go on).
    out = run.stdout
    failed_at = out.index("cannot write the audit log")
    before = [int(m) for m in TRADES.findall(out[:failed_at])]
    after = [int(m) for m in TRADES.findall(out[failed_at:])]
    assert before and before[-1] >= 1
    assert set(after) == {before[-1]}, "an entry was made after the audit log failed"
    # Well before the 2,000 ticks: a few evaluations of one second each.
    assert len(run.metrics_lines()) < 200


def _can_mount_a_private_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=16k tmpfs $d && umount $d; rmdir $d"
    return (
        subprocess.run(["unshare", "-Urm", "sh", "-c", probe], capture_output=True, check=False).returncode
        == 0
    )


@pytest.mark.skipif(not _can_mount_a_private_tmpfs(), reason="needs unshare -Urm to mount a private tmpfs")
def test_a_log_disk_that_fills_mid_run_ends_the_run_with_exit_3(tmp_path: Path) -> None:
    # The real thing: logs/ is a 32 KiB tmpfs, mounted in a mount namespace of the bot's own, that
    # the bot's log lines fill after some ticks; from then on every log file write fails (ENOSPC).
    config = write_config(tmp_path)
    (tmp_path / "logs").mkdir()
    mount_then_run = 'mount -t tmpfs -o size=32k tmpfs logs && exec "$@"'
    bot = [sys.executable, str(SCRIPT), "--config", str(config), "--log-dir", "logs", "--data-dir", "data"]
    done = subprocess.run(
        [
            "unshare",
            "-Urm",
            "sh",
            "-c",
            mount_then_run,
            "sh",
            *bot,
            "--mock",
            "--loops",
            "2000",
            "--interval",
            "0.02",
        ],
        cwd=tmp_path,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "cannot write the audit log (logs/" in done.stdout and "No space left on device" in done.stdout
    lines = done.stderr.splitlines()
    assert "Logging error" not in done.stderr and "Traceback" not in done.stderr
    # At most one line per log file, and the alerts (the log cannot carry them).
    assert len(lines) <= 12, lines
    assert any(line.startswith("ALERT [ERROR] shutdown:") and "(exit 3)" in line for line in lines), lines
    assert done.stdout.count("[METRICS]") < 2000
