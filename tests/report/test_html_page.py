"""The HTML page's charts: the thinned equity curve keeps every extreme; the page fetches nothing."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest

from arbitrage.report.figures import Window, compute_report
from arbitrage.report.html_page import render_page, thin_curve
from arbitrage.store.ledger_reader import DayRow, HedgeRow, LedgerContents


@pytest.mark.parametrize("n", [1, 10, 800, 801, 5_000, 60_000])
def test_thinning_keeps_ends_extremes_and_order(n: int) -> None:
    rng = random.Random(n)
    points, ts, equity = [], 1000.0, 0.0
    for _ in range(n):
        ts += rng.uniform(0.1, 3)
        equity += rng.gauss(0, 1)
        points.append((ts, equity))
    thin = thin_curve(points, 200)
    assert len(thin) <= max(n, 800)
    assert thin[0] == points[0] and thin[-1] == points[-1]
    assert min(v for _, v in thin) == min(v for _, v in points)
    assert max(v for _, v in thin) == max(v for _, v in points)
    assert [t for t, _ in thin] == sorted(t for t, _ in thin)
    assert set(thin) <= set(points)


def test_a_page_of_a_long_curve_is_self_contained() -> None:
    hedges = [
        HedgeRow("E1", "BTC", "upbit", "residual", Decimal(1), Decimal(i % 7 - 3), float(i))
        for i in range(20_000)
    ]
    days = [DayRow("2026-12-03", sum((h.cost for h in hedges), Decimal(0)), Decimal(0), Decimal(0), 0)]
    report = compute_report(LedgerContents([], [], [], hedges, days, [], (None, None)), Window(), now=0.0)
    page = render_page(report, "KRW", "sqlite x", "now")
    assert page.count("<svg") == 2
    assert len(page) < 400_000  # thinned: 20,000 bookings are not 20,000 path vertices
    stripped = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)
    assert "://" not in stripped and "<script" not in page
