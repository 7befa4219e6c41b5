"""The recording cost's measurement: one run whose recorder is told of the books in every other
stretch of ticks, exactly those; no speed is asserted (the benchmark prints figures)."""

from __future__ import annotations

from pathlib import Path

from arbitrage.bench import recording_cost
from arbitrage.bench.driver import recording_cost as measure
from arbitrage.bench.options import BenchOptions


def test_the_recorder_gets_the_books_of_every_other_stretch_and_no_others(tmp_path: Path) -> None:
    symbols, venues = 2, 2
    options = BenchOptions(
        workdir=tmp_path,
        symbols=symbols,
        venues=venues,
        warmup=4,
        synchronous=("NORMAL",),
        record_ticks=6 * recording_cost.SEGMENT,
        record_rounds=1,
        record_interval_s=0.0,
    )
    figures = measure(options)

    ticks = options.warmup + options.record_ticks
    recorded_ticks = sum(1 for i in range(ticks) if (i // recording_cost.SEGMENT) % 2 == 1)  # 1st: without
    books_a_tick = symbols * venues + 1  # and the FX market
    assert figures.books == recorded_ticks * books_a_tick
    assert figures.dropped == 0 and figures.bytes_on_disk > 0
    assert len(figures.pair_ratios) == 3  # stretches 2, 4 and 6 each against the one before
    settled = recording_cost.SEGMENT - recording_cost.SETTLE
    assert figures.with_recording.n == 3 * settled
    assert options.warmup <= recording_cost.SETTLE  # the warm-up falls within the first stretch's settling
    assert figures.without.n == 3 * settled
    assert "median ratio with/without over 3 pairs of stretches" in "\n".join(figures.lines())
