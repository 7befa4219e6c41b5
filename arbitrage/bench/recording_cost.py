"""What the market recording costs the loop: run_tick's own duration with the recorder told of the
books and without, in alternating stretches of one run.

Whole runs without and with `record:` differed from each other by more than the recorder costs
(the same config's p50 moved by a fifth from one run to the next on a shared machine), so one run
records throughout, with its writer thread running, and the mock market's feed tells the recorder
of its books only in every other stretch of SEGMENT ticks. Each recorded stretch is compared with
the stretch before it; the first SETTLE ticks of every stretch are left out of both, so that the
writer's last drain of a recorded stretch (it drains every 50 ms) is not counted against the next.
The median of those paired ratios is the figure.
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from arbitrage.bench.figures import Stats
from arbitrage.bench.recorder import LoopRun
from arbitrage.domain.book import BookListener
from arbitrage.runtime.loop import TickReport
from arbitrage.venues.build import MockBookFeed

if TYPE_CHECKING:
    from arbitrage.runtime.assembly import Run

TARGET_RATIO = 1.05  # the recorder may cost at most 5% of tick time
SEGMENT = 20  # ticks per stretch, recorded or not: short, so that the market moves little within a pair
SETTLE = 6  # ticks at a stretch's start left out: the writer drains every 50 ms (5 ticks at 0.01 s)


class RecordingSwitch:
    """A tick hook that switches the recorder in and out of the mock feed's listeners every
    SEGMENT ticks, and notes for each tick whether its books went to the recorder."""

    def __init__(self) -> None:
        self.recorded = array("b")  # per tick, in the order the loop's hooks see them
        self._feed: MockBookFeed | None = None
        self._with: tuple[BookListener, ...] = ()
        self._without: tuple[BookListener, ...] = ()

    def attach(self, run: Run) -> None:
        """Find the mock market's feed and the recorder among its listeners; start without it."""
        recorder = run.recorder
        feeds = [getattr(hook, "__self__", None) for hook in run.bot.venues.before_tick]
        feed = next((f for f in feeds if isinstance(f, MockBookFeed)), None)
        if recorder is None or feed is None:
            raise RuntimeError("the recording cost needs a mock run with record: on")
        self._feed = feed
        self._with = feed.listeners
        self._without = tuple(listener for listener in feed.listeners if listener is not recorder)
        feed.listeners = self._without

    def after_tick(self, report: TickReport) -> int | None:
        feed = self._feed
        if feed is None:
            return None
        on = feed.listeners is self._with
        self.recorded.append(on)
        if len(self.recorded) % SEGMENT == 0:
            feed.listeners = self._without if on else self._with
        return None


@dataclass(frozen=True)
class RecordingFigures:
    synchronous: str
    interval_s: float
    rounds: int
    ticks: int  # per run
    without: Stats
    with_recording: Stats
    pair_ratios: tuple[float, ...]  # per recorded stretch: its median over the stretch before's
    books: int
    dropped: int
    bytes_on_disk: int

    @property
    def ratio(self) -> float:
        return statistics.median(self.pair_ratios) if self.pair_ratios else float("nan")

    def lines(self) -> list[str]:
        w, r = self.without, self.with_recording
        verdict = "met" if self.ratio <= TARGET_RATIO else "MISSED"
        per_book = self.bytes_on_disk / self.books if self.books else 0.0
        spread = sorted(self.pair_ratios)
        quartiles = (
            f"{spread[len(spread) // 4]:.3f}-{spread[(3 * len(spread)) // 4]:.3f}" if spread else "none"
        )
        return [
            f"== recording: the loop with the recorder told of the books and without, in alternating "
            f"stretches of {SEGMENT} ticks ({self.rounds} runs of {self.ticks} ticks, interval "
            f"{self.interval_s:g} s, ledger synchronous={self.synchronous})",
            f"  tick ms without: p50 {w.p50:.3f} p99 {w.p99:.3f} mean {w.mean:.3f}",
            f"  tick ms with:    p50 {r.p50:.3f} p99 {r.p99:.3f} mean {r.mean:.3f}",
            f"  median ratio with/without over {len(spread)} pairs of stretches: {self.ratio:.3f} "
            f"(quartiles {quartiles}; target <= {TARGET_RATIO:.2f}: {verdict})",
            f"  books recorded {self.books}, dropped {self.dropped}; {self.bytes_on_disk / 2**20:.1f} MB "
            f"on disk ({per_book:.0f} bytes a book, zstd)",
        ]


def _stretches(run: LoopRun, recorded: Sequence[int]) -> list[tuple[bool, list[float]]]:
    """(recorded?, run_tick ms of its settled ticks) per stretch after the warm-up."""
    ticks = run.recorder
    out: list[tuple[bool, list[float]]] = []
    for begin in range(0, min(ticks.n, len(recorded)), SEGMENT):
        end = min(begin + SEGMENT, ticks.n, len(recorded))
        settled = [ticks.loop_ms[i] for i in range(max(begin + SETTLE, run.warmup), end)]
        if settled:
            out.append((bool(recorded[begin]), settled))
    return out


def recording_figures(
    runs: Sequence[tuple[LoopRun, RecordingSwitch]], sync: str, interval_s: float
) -> RecordingFigures:
    without: list[float] = []
    with_recording: list[float] = []
    ratios: list[float] = []
    for run, switch in runs:
        stretches = _stretches(run, switch.recorded)
        for (was_on, before), (on, ticks) in pairwise(stretches):
            if on and not was_on:
                ratios.append(statistics.median(ticks) / statistics.median(before))
        for on, ticks in stretches:
            (with_recording if on else without).extend(ticks)
    recorded = [run.recorded or (0, 0, 0) for run, _switch in runs]
    return RecordingFigures(
        synchronous=sync,
        interval_s=interval_s,
        rounds=len(runs),
        ticks=runs[0][0].recorder.n - runs[0][0].warmup if runs else 0,
        without=Stats.of(without),
        with_recording=Stats.of(with_recording),
        pair_ratios=tuple(ratios),
        books=sum(r[0] for r in recorded),
        dropped=sum(r[1] for r in recorded),
        bytes_on_disk=sum(r[2] for r in recorded),
    )
