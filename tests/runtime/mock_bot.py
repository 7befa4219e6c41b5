"""Builds the real bot (build_bot) on the shipped config in mock mode, for runtime tests.

The shipped config/live.yml with overrides, a fake clock, the ledger in a tmp folder, alerts and
metrics lines recorded in lists.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbitrage.clock import Clock, FakeClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.runtime.loop import TickHook, TickReport
from arbitrage.runtime.wiring import Bot, build_bot
from tests.e2e.runner import base_config, merge


class RecordingClock(FakeClock):
    """A fake clock that remembers how long each wait was asked to be."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        return super().wait(event, seconds)


@dataclass
class Recorder:
    """Everything the bot told the outside world."""

    alerts: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def alert(self, key: str, text: str, level: str = "ERROR") -> None:
        self.alerts.append((key, text))


def mock_config(overrides: dict[str, Any] | None = None) -> AppConfig:
    return parse_config(merge(base_config(), {"mode": {"current": "mock"}, **(overrides or {})}))


def mock_bot(
    tmp_path: Path,
    *,
    overrides: dict[str, Any] | None = None,
    interval_s: float = 1.0,
    max_ticks: int | None = None,
    hooks: list[TickHook] | None = None,
    clock: Clock | None = None,
    metrics_line_every: int = 1,
) -> tuple[Bot, Recorder]:
    recorder = Recorder()
    bot = build_bot(
        mock_config(overrides),
        data_dir=tmp_path,
        interval_s=interval_s,
        max_ticks=max_ticks,
        metrics_line_every=metrics_line_every,
        alert=recorder.alert,
        env={},
        clock=clock or RecordingClock(),
        hooks=hooks,
        print_line=recorder.lines.append,
    )
    return bot, recorder


class TickLog:
    """A tick hook that keeps every report."""

    def __init__(self) -> None:
        self.reports: list[TickReport] = []

    def after_tick(self, report: TickReport) -> int | None:
        self.reports.append(report)
        return None

    @property
    def starts(self) -> list[float]:
        return [r.started_at for r in self.reports]
