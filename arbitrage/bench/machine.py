"""What the machine adds: the cold start of a real run, and the noise on a fixed workload."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cold_starts(runs: int, workdir: Path) -> list[float]:
    """Wall seconds of `scripts/run_live.py --mode mock --once`, process start to exit, each in a
    fresh working directory (so a first ledger is created each time)."""
    seconds: list[float] = []
    env = {k: v for k, v in os.environ.items() if k != "ARB_MODE"}
    for i in range(runs):
        cwd = workdir / f"cold{i}"
        cwd.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(REPO / "scripts" / "run_live.py"), "--mode", "mock", "--once",
                "--config", str(REPO / "config" / "live.yml")]  # fmt: skip
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False)  # fmt: skip
        seconds.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise RuntimeError(f"cold start run exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return seconds


def fixed_work(n: int = 6_000) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def noise_floor(samples: int) -> list[float]:
    """Milliseconds of one fixed pure-Python workload, timed like a tick: what this machine's
    scheduler and other processes alone add to a p99 or a max."""
    perf = time.perf_counter
    times: list[float] = []
    for _ in range(samples):
        t = perf()
        fixed_work()
        times.append((perf() - t) * 1000.0)
    return times
