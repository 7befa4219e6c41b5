"""Runs the real command (`scripts/run_live.py`) as a subprocess in a scratch directory."""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run_live.py"
METRICS_RE = re.compile(
    r"\[LIVE\] \[METRICS\] pnl=-?\d+₩ trades=\d+ open_pos=\d+ exposure=-?\d+₩ realized_pnl=-?\d+₩ "
    r"signals=\d+ exec_rate=\d+\.\d% safety_rejections=\d+ sl_triggers=\d+ loop_ms=\d+\.\d "
    r"cpu=\d+\.\d% mem=\d+MB live=(❌|✅)"
)
LOG_LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(DEBUG|INFO|WARNING|ERROR|CRITICAL) *\] \[arbitrage[\w.:]*\] "
)


# Back-to-back ticks (--interval 0) keep a core busy by design; these runs are not about CPU alarms.
BUSY_LOOP = {"sys_monitor": {"warn_cpu_pct": 1000, "max_cpu_pct": 1000}}


@functools.cache
def _shipped_config() -> dict[str, Any]:
    # Parsed once per test process: most tests start from it, and a pure-Python parse costs tens of ms.
    return yaml.load((REPO / "config" / "live.yml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


def base_config() -> dict[str, Any]:
    """The shipped config/live.yml, as a fresh copy the caller may change."""
    return copy.deepcopy(_shipped_config())


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    workdir: Path

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def ledger_path(self) -> Path:
        return self.workdir / "data" / "ledger.sqlite3"

    def metrics_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if "[LIVE] [METRICS]" in line]


def write_config(workdir: Path, overrides: dict[str, Any] | None = None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(merge(base_config(), overrides or {}), sort_keys=False), encoding="utf-8")
    return path


def run_bot(
    workdir: Path,
    *args: str,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    config: Path | None = None,
) -> Run:
    cfg = config or write_config(workdir, overrides)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "LIVE_TRADING"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(cfg), "--log-dir", "logs", "--data-dir", "data", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, workdir)
