"""What the market recording costs the loop: tick times without and with `record:`, from runs
alternated so that a machine's drift spreads over both; the median ratio is the figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arbitrage.bench.figures import Stats
from arbitrage.bench.recorder import LoopRun

TARGET_RATIO = 1.05  # the recorder may cost at most 5% of tick time


def _ticks(runs: Sequence[LoopRun]) -> list[float]:
    """run_tick's own durations: with an interval, the time between ticks is mostly the wait."""
    return [run.recorder.loop_ms[i] for run in runs for i in range(run.warmup, run.recorder.n)]


@dataclass(frozen=True)
class RecordingFigures:
    synchronous: str
    interval_s: float
    rounds: int
    ticks: int  # per run
    without: Stats
    with_recording: Stats
    books: int
    dropped: int
    bytes_on_disk: int

    @property
    def ratio(self) -> float:
        return self.with_recording.p50 / self.without.p50 if self.without.p50 else float("nan")

    def lines(self) -> list[str]:
        w, r = self.without, self.with_recording
        verdict = "met" if self.ratio <= TARGET_RATIO else "MISSED"
        per_book = self.bytes_on_disk / self.books if self.books else 0.0
        return [
            f"== recording: the loop without and with record: ({self.rounds} rounds of {self.ticks} ticks "
            f"each, alternating, interval {self.interval_s:g} s, ledger synchronous={self.synchronous})",
            f"  tick ms without: p50 {w.p50:.3f} p99 {w.p99:.3f} mean {w.mean:.3f}",
            f"  tick ms with:    p50 {r.p50:.3f} p99 {r.p99:.3f} mean {r.mean:.3f}",
            f"  median ratio with/without: {self.ratio:.3f} (target <= {TARGET_RATIO:.2f}: {verdict})",
            f"  books recorded {self.books}, dropped {self.dropped}; {self.bytes_on_disk / 2**20:.1f} MB "
            f"on disk ({per_book:.0f} bytes a book, zstd)",
        ]


def recording_figures(
    without: Sequence[LoopRun], with_recording: Sequence[LoopRun], sync: str, interval_s: float
) -> RecordingFigures:
    recorded = [run.recorded or (0, 0, 0) for run in with_recording]
    return RecordingFigures(
        synchronous=sync,
        interval_s=interval_s,
        rounds=len(with_recording),
        ticks=with_recording[0].recorder.n - with_recording[0].warmup if with_recording else 0,
        without=Stats.of(_ticks(without)),
        with_recording=Stats.of(_ticks(with_recording)),
        books=sum(r[0] for r in recorded),
        dropped=sum(r[1] for r in recorded),
        bytes_on_disk=sum(r[2] for r in recorded),
    )
