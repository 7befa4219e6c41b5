"""Watches the market recorder from the loop: tells it each tick's end (its writer converts between
ticks), its counts in the tick report and on /metrics, a warning while books are dropped (the
writer falls behind), an alert if it stops."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from arbitrage.clock import Clock
from arbitrage.ops.metrics import BotMetrics
from arbitrage.runtime.loop import TickReport
from arbitrage.venues.base import AlertFn

if TYPE_CHECKING:  # pyarrow is imported only by runs that record
    from arbitrage.recording.recorder import Recorder

log = logging.getLogger("arbitrage.recording")

WARN_EVERY_S = 60.0  # while books keep being dropped, one warning a minute


class RecorderWatch:
    """A tick hook; never stops the loop (recording is not trading)."""

    def __init__(self, recorder: Recorder, metrics: BotMetrics | None, alert: AlertFn, clock: Clock) -> None:
        self._recorder = recorder
        self._metrics = metrics
        self._alert = alert
        self._clock = clock
        self._dropped_seen = 0
        self._last_warning = float("-inf")
        self._failure_alerted = False

    def after_tick(self, report: TickReport) -> int | None:
        recorder = self._recorder
        recorder.between_ticks()
        dropped, written = recorder.dropped, recorder.written
        report.metrics["recorder.books"] = float(written)
        report.metrics["recorder.dropped"] = float(dropped)
        if self._metrics is not None:
            self._metrics.update({"recorder_books_total": written, "recorder_dropped_total": dropped})
        now = self._clock.monotonic()
        if dropped > self._dropped_seen and now - self._last_warning >= WARN_EVERY_S:
            log.warning(
                "recorder queue full: %d book(s) dropped so far (the writer is behind; record.queue_size "
                "or a faster disk)",
                dropped,
            )
            self._last_warning = now
        self._dropped_seen = dropped
        if recorder.failed is not None and not self._failure_alerted:
            self._failure_alerted = True
            self._alert("recorder", f"market recording stopped: {recorder.failed}", "ERROR")
        return None
