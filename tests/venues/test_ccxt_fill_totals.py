"""A fill read from ccxt's floats lands on the venue's step, so no float digits reach a position.

ccxt's unified `filled` and `cost` are binary floats. When the raw answer lacks the exchange's
own strings, the filled qty came through as Decimal("0.16999999999999998"): a position of that
qty could close 0.16999 at most and left a remainder no venue would take.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbitrage.venues.ccxt_reports import fill_totals, on_step

D = Decimal


@pytest.mark.parametrize(
    ("filled", "cost", "step", "qty", "avg"),
    [
        (0.16999999999999998, 17000.0, D("0.00001"), "0.17", "100000"),
        (0.16999999999999998, 17000.0, D("1e-8"), "0.17", "100000"),
        (0.17000000000000004, 595.0, D("0.0001"), "0.17", "3500"),
        (0.12345678, 1234.5678, D("1e-8"), "0.12345678", "10000"),  # already on the step
        (0.0, 0.0, D("0.00001"), "0", "0"),
        (0.16999999999999998, 17000.0, None, "0.16999999999999998", None),  # step unknown: as read
    ],
)
def test_float_fills_go_onto_the_step(filled, cost, step, qty, avg):
    got_qty, got_avg = fill_totals({"filled": filled, "cost": cost}, None, step)
    assert got_qty == D(qty)
    if avg is not None:
        assert got_avg == D(avg)


def test_exact_totals_from_the_raw_answer_are_kept():
    assert fill_totals({"filled": 1.0}, (D("0.17"), D("17000")), D("0.00001")) == (D("0.17"), D("100000"))


@pytest.mark.parametrize(
    ("qty", "step", "on"),
    [
        ("0.16999999999999998", "0.00001", "0.17000"),
        ("0.169994", "0.00001", "0.16999"),
        ("0.5", "0.5", "0.5"),
    ],
)
def test_on_step(qty, step, on):
    assert on_step(D(qty), D(step)) == D(on)
