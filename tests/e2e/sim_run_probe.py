"""Watching a bot that runs against the simulator: its health endpoint and its log files, with times.

The log files carry local wall-clock times (logging's default), comparable with time.time() in
the test and with the simulator's own timestamps.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[(\w+) *\] \[([\w.:]+)\] (.*)$")
_TICK = re.compile(r"\[METRICS\] .*trades=(\d+) .*loop_ms=(\d+\.\d)")


@dataclass(frozen=True)
class LogLine:
    ts: float  # epoch seconds
    level: str
    logger: str
    text: str


@dataclass(frozen=True)
class Tick:
    ts: float  # when its metrics line was written
    trades: int
    loop_ms: float


def log_lines(path: Path) -> list[LogLine]:
    """Every record of one log file (continuation lines of a traceback are dropped)."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(raw)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            lines.append(LogLine(stamp, match.group(2), match.group(3), match.group(4)))
    return lines


def ticks(log_dir: Path) -> list[Tick]:
    """The metrics line of every tick, from live_loop.log."""
    found = []
    for line in log_lines(log_dir / "live_loop.log"):
        match = _TICK.search(line.text)
        if match:
            found.append(Tick(line.ts, int(match.group(1)), float(match.group(2))))
    return found


def health_detail(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/detailed", timeout=5) as response:
        return dict(json.loads(response.read()))


def market_data(venue_detail: dict[str, Any]) -> dict[str, Any]:
    """The ccxt venue's own describe(): a paper venue nests it under "market_data"."""
    return dict(venue_detail.get("market_data", venue_detail))


def stream_states(detail: dict[str, Any]) -> dict[str, str]:
    """venue -> "stream" or "poll", from /health/detailed."""
    return {
        name: str(market_data(venue).get("stream", {}).get("state"))
        for name, venue in detail["venues"].items()
    }
