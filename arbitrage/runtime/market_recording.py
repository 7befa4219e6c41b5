"""`arb record`: the venues' books to the market recording, without trading. No ledger is opened
and no order can be sent: live mode records as paper does, from public market data with no API
key given to any client. The mock market is stepped every `loop.interval_s`; real venues stream.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig, ModeConfig, load_config
from arbitrage.errors import ConfigError
from arbitrage.ops.logs import secrets_from_env, setup_logging
from arbitrage.recording.recorder import Recorder
from arbitrage.runtime.assembly import build_recorder
from arbitrage.runtime.stop_signals import StopSignals
from arbitrage.venues.build import build_venues

log = logging.getLogger("arbitrage.recording")

MIN_STEP_S = 0.001  # a mock market stepped with loop.interval_s 0 still yields between steps


@dataclass(frozen=True)
class RecordOptions:
    config_path: str
    mode: str | None = None
    dir: str | None = None  # None: record.dir
    duration_s: float | None = None  # None: until SIGINT/SIGTERM
    log_dir: Path = Path("logs")
    log_level: str | None = None


@dataclass(frozen=True)
class RecordSummary:
    dir: Path
    books: int
    dropped: int
    files: int


def recording_config(opts: RecordOptions) -> AppConfig:
    config = load_config(opts.config_path, opts.mode)
    update: dict[str, object] = {
        "record": config.record.model_copy(
            update={"enabled": True, **({"dir": opts.dir} if opts.dir else {})}
        )
    }
    if config.mode.current == "live":  # market data only: never a client holding keys
        update["mode"] = ModeConfig(current="paper")
    config = config.model_copy(update=update)
    if config.mode.current != "mock" and not config.market_data.use_websocket:
        raise ConfigError(
            "market_data.use_websocket: expected true for arb record (it records the streamed books), "
            "found false"
        )
    return config


def record_market(opts: RecordOptions, env: Mapping[str, str]) -> RecordSummary:
    config = recording_config(opts)  # ConfigError -> exit 2 before anything starts
    setup_logging(
        opts.log_dir,
        opts.log_level or config.logging.level,
        console=config.logging.console,
        backup_count=config.logging.backup_count,
        secrets=secrets_from_env(config, env),
    )
    clock = SystemClock()
    recorder = build_recorder(config, clock)
    stopping = _StopFlag()
    signals = StopSignals(request_stop=stopping.set, stopping=stopping.is_set)
    signals.install()
    recorder.start()
    try:
        venues = build_venues(config, clock, env, recorders=(recorder,))
        try:
            log.info(
                "recording %s mode market data of %d venue(s) to %s for %s",
                config.mode.current,
                len(config.venues),
                recorder.root,
                "until stopped" if opts.duration_s is None else f"{opts.duration_s:g}s",
            )
            _until_stopped(venues.before_tick, config.loop.interval_s, opts.duration_s, clock, stopping)
        finally:
            venues.close()
    finally:
        recorder.close()
        signals.shutdown_finished(0)
    return _summary(recorder)


class _StopFlag:
    """Set by the stop-signal thread (never by a handler), read by the recording loop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self, reason: str) -> None:
        log.info("stopping the recording: %s", reason)
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def _until_stopped(
    steps: Sequence[Callable[[], None]],
    interval_s: float,
    duration_s: float | None,
    clock: Clock,
    stopping: _StopFlag,
) -> None:
    deadline = math.inf if duration_s is None else clock.monotonic() + duration_s
    every = max(interval_s, MIN_STEP_S) if steps else 1.0
    while not stopping.is_set():
        left = deadline - clock.monotonic()
        if left <= 0:
            return
        for step in steps:  # the mock market moves and hands its books to the recorder
            step()
        clock.wait(stopping.event, min(every, left))


def _summary(recorder: Recorder) -> RecordSummary:
    files = sum(1 for _ in recorder.root.glob("*/*.parquet"))
    return RecordSummary(recorder.root, recorder.written, recorder.dropped, files)
