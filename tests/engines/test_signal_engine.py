"""SignalEngine: book walking by marginal net spread, FX normalisation, caps and metrics."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.domain.book import Level
from arbitrage.domain.opportunity import Opportunity
from arbitrage.engines.signal import SignalEngine, find_opportunity
from tests.engines.factories import FX, NOW, USDT_KRW, book, ctx, make_config, snapshot, state


def run(
    books: list[Any], fx: dict[str, float] | None = None, **signal: Any
) -> tuple[list[Opportunity], dict]:
    config = make_config(signal=signal) if signal else make_config()
    out = SignalEngine("signal", config).on_tick(ctx(snapshot(books, fx=fx), state(config)))
    return out.decisions, out.metrics


def btc(asks: list[Level], bids: list[Level]) -> list[Any]:
    """binance sells BTC at `asks` (USDT), upbit buys at `bids` (KRW); the other sides far away."""
    return [
        book("binance", "BTC/USDT", [(90_000.0, 1.0)], asks),
        book("upbit", "BTC/KRW", bids, [(150_000_000.0, 1.0)]),
    ]


def test_single_level_opportunity_numbers():
    opps, metrics = run(btc([(100_000.0, 0.02)], [(141_000_000.0, 0.05)]))
    assert len(opps) == 1
    o = opps[0]
    assert (o.asset, o.buy_venue, o.sell_venue, o.buy_symbol, o.sell_symbol) == (
        "BTC",
        "binance",
        "upbit",
        "BTC/USDT",
        "BTC/KRW",
    )
    assert o.qty == pytest.approx(0.02)
    assert (o.buy_price, o.sell_price, o.buy_vwap, o.sell_vwap) == (100_000.0, 141e6, 100_000.0, 141e6)
    assert (o.buy_fx, o.sell_fx) == (USDT_KRW, 1.0)
    assert o.gross_spread_pct == pytest.approx(1e6 / 140e6 * 100)
    # proceeds 2.82M - cost 2.8M - fees (2,800 + 1,410) over cost 2.8M
    assert o.net_spread_pct == pytest.approx(15_790 / 2.8e6 * 100)
    assert o.slippage_pct == pytest.approx(0.0)
    assert o.fees_pct == pytest.approx(0.15)
    assert o.notional == pytest.approx(2.8e6)
    assert o.ts == NOW
    assert metrics == {"signals": 1.0, "best_net_spread_pct": pytest.approx(o.net_spread_pct)}


def test_walk_crosses_levels_on_both_sides_while_the_marginal_spread_holds():
    asks = [(100_000.0, 0.01), (100_100.0, 0.01)]
    bids = [(141_000_000.0, 0.015), (140_900_000.0, 0.02)]
    (o,), _ = run(btc(asks, bids))
    assert o.qty == pytest.approx(0.02)
    assert (o.buy_price, o.sell_price) == (100_100.0, 140_900_000.0)
    assert o.buy_vwap == pytest.approx(100_050.0)
    assert o.sell_vwap == pytest.approx(140_975_000.0)
    assert o.slippage_pct == pytest.approx(0.05 + (1 - 140_975_000 / 141e6) * 100)


@pytest.mark.parametrize(
    ("asks", "bids", "signal", "qty"),
    [
        # the second ask level nets only ~0.06%: the walk stops before it
        ([(100_000.0, 0.01), (100_500.0, 0.05)], [(141e6, 1.0)], {}, 0.01),
        # capped by max_notional: 5M KRW of buying at 140M KRW per BTC
        ([(100_000.0, 1.0)], [(141e6, 1.0)], {"max_notional": 5e6}, 5e6 / 140e6),
        # bids thinner than asks
        ([(100_000.0, 1.0)], [(141e6, 0.004)], {}, 0.004),
        # a stricter threshold cuts the same books earlier
        ([(100_000.0, 0.01), (100_200.0, 0.05)], [(141e6, 1.0)], {"min_spread_pct": 0.5}, 0.01),
        ([(100_000.0, 0.01), (100_200.0, 0.01)], [(141e6, 1.0)], {"min_spread_pct": 0.3}, 0.02),
    ],
)
def test_executable_size(asks, bids, signal, qty):
    opps, _ = run(btc(asks, bids), **signal)
    assert [o.qty for o in opps] == [pytest.approx(qty)]


@pytest.mark.parametrize(
    ("books_", "fx", "signal", "best"),
    [
        # top of book nets ~0.064% < 0.3%: nothing, and the metric says how far off it is
        (
            btc([(100_000.0, 1.0)], [(140_300_000.0, 1.0)]),
            None,
            {},
            (140.3e6 * 0.9995 - 140e6 * 1.001) / 140e6 * 100,
        ),
        # 0.0003 BTC is 42,000 KRW < min_notional 50,000
        (btc([(100_000.0, 0.0003)], [(141e6, 1.0)]), None, {}, 15_790 / 2.8e6 * 100),
        # the slippage buffer is charged on top of the fees
        (
            btc([(100_000.0, 0.02)], [(141e6, 1.0)]),
            None,
            {"slippage_buffer_pct": 0.3},
            15_790 / 2.8e6 * 100 - 0.3,
        ),
        # no USDT rate: no pair can be normalised
        (btc([(100_000.0, 0.02)], [(141e6, 1.0)]), {"KRW": 1.0}, {}, None),
        # no binance asks: only the other direction is priced, far below the threshold
        (btc([], [(141e6, 1.0)]), None, {}, (90_000 * USDT_KRW * 0.999 - 150e6 * 1.0005) / 150e6 * 100),
    ],
)
def test_no_opportunity(books_, fx, signal, best):
    opps, metrics = run(books_, fx=fx, **signal)
    assert opps == []
    assert metrics["signals"] == 0.0
    if best is None:
        assert "best_net_spread_pct" not in metrics
    else:
        assert metrics["best_net_spread_pct"] == pytest.approx(best)


def test_slippage_buffer_lowers_the_net_spread_of_an_emitted_opportunity():
    (o,), _ = run(btc([(100_000.0, 0.02)], [(141e6, 1.0)]), slippage_buffer_pct=0.1)
    assert o.net_spread_pct == pytest.approx(15_790 / 2.8e6 * 100 - 0.1)


def test_each_direction_and_each_asset_is_evaluated():
    config = make_config()
    books_ = [
        # BTC: cheap on binance
        book("binance", "BTC/USDT", [(99_900.0, 1.0)], [(100_000.0, 0.02)]),
        book("upbit", "BTC/KRW", [(141e6, 1.0)], [(141.2e6, 1.0)]),
        # ETH: cheap on upbit
        book("binance", "ETH/USDT", [(3_600.0, 10.0)], [(3_601.0, 10.0)]),
        book("upbit", "ETH/KRW", [(4_990_000.0, 10.0)], [(5_000_000.0, 1.0)]),
    ]
    out = SignalEngine("signal", config).on_tick(ctx(snapshot(books_), state(config)))
    assert sorted(o.key for o in out.decisions) == ["BTC:binance>upbit", "ETH:upbit>binance"]
    eth = next(o for o in out.decisions if o.asset == "ETH")
    assert (eth.buy_fx, eth.sell_fx) == (1.0, USDT_KRW)
    assert eth.gross_spread_pct == pytest.approx((3_600 * USDT_KRW - 5e6) / 5e6 * 100)


def test_book_age_is_the_older_of_the_two_books():
    books_ = btc([(100_000.0, 0.02)], [(141e6, 1.0)])
    books_[0] = book("binance", "BTC/USDT", [], [(100_000.0, 0.02)], ts=NOW - 0.25)
    (o,), _ = run(books_)
    assert o.book_age_ms == pytest.approx(250.0)


# Property: the walk agrees with a reference built differently, from merged quantity breakpoints.


def reference_walk(asks, bids, bfx, sfx, bf, sf, min_spread, max_notional):
    """Qty and buy-side notional of the largest prefix whose every unit nets >= min_spread."""
    cuts = sorted({0.0, *_cumulative(asks), *_cumulative(bids)})
    qty = spent = 0.0
    for lo, hi in itertools.pairwise(cuts):
        mid = (lo + hi) / 2
        ask, bid = _price_at(asks, mid), _price_at(bids, mid)
        if ask is None or bid is None:
            break
        marginal = (bid * sfx * (1 - sf / 100) - ask * bfx * (1 + bf / 100)) / (ask * bfx) * 100
        if marginal < min_spread:
            break
        take = hi - lo
        if spent + take * ask * bfx >= max_notional:
            return qty + (max_notional - spent) / (ask * bfx), max_notional
        qty += take
        spent += take * ask * bfx
    return qty, spent


def _cumulative(levels):
    total = 0.0
    for _, size in levels:
        total += size
        yield total


def _price_at(levels, q):
    total = 0.0
    for price, size in levels:
        total += size
        if q < total:
            return price
    return None


@st.composite
def side(draw, start, step_sign):
    n = draw(st.integers(1, 5))
    price = start
    levels = []
    for _ in range(n):
        levels.append((round(price, 2), draw(st.floats(0.001, 0.5))))
        price += step_sign * draw(st.floats(0.0001, 0.004)) * start
    return levels


@settings(max_examples=200, deadline=None)
@given(
    asks=side(100_000.0, +1),
    bid_start=st.floats(139e6, 143e6),
    data=st.data(),
    min_spread=st.floats(-0.5, 1.0),
    max_notional=st.floats(1e5, 5e7),
)
def test_walk_matches_reference_and_never_breaks_the_threshold(
    asks, bid_start, data, min_spread, max_notional
):
    bids = data.draw(side(bid_start, -1))
    buy = book("binance", "BTC/USDT", [], asks)
    sell = book("upbit", "BTC/KRW", bids, [])
    opp, top = find_opportunity(
        "BTC",
        buy,
        sell,
        FX["USDT"],
        1.0,
        0.1,
        0.05,
        min_spread_pct=min_spread,
        max_notional=max_notional,
        min_notional=0.0,
        buffer_pct=0.0,
        ts=NOW,
    )
    ref_qty, ref_spent = reference_walk(asks, bids, FX["USDT"], 1.0, 0.1, 0.05, min_spread, max_notional)
    assert top is not None
    if opp is None:
        assert ref_qty == pytest.approx(0.0, abs=1e-9)
        return
    assert opp.qty == pytest.approx(ref_qty, rel=1e-9)
    assert opp.notional == pytest.approx(ref_spent, rel=1e-9)
    assert opp.net_spread_pct >= min_spread - 1e-9
    assert opp.net_spread_pct <= top + 1e-9
    assert opp.notional <= max_notional * (1 + 1e-9)
    assert opp.buy_price >= asks[0][0] and opp.sell_price <= bids[0][0]
    assert opp.slippage_pct >= -1e-9
    # top of book: gross less the buy fee and the sell fee (charged on the sale proceeds)
    assert top == pytest.approx(opp.gross_spread_pct - 0.1 - 0.05 * (1 + opp.gross_spread_pct / 100))


@pytest.mark.parametrize(
    ("changed", "found"),
    [
        (None, 1),  # a full pass looks at every asset
        (frozenset({("upbit", "BTC")}), 1),  # the opportunity's asset changed on one venue
        (frozenset({("binance", "BTC"), ("upbit", "BTC")}), 1),
        (frozenset({("upbit", "ETH")}), 0),  # only another asset changed: BTC is not looked at
        (frozenset(), 0),
    ],
)
def test_a_book_triggered_tick_looks_at_the_assets_whose_books_changed(changed, found):
    config = make_config()
    snap = replace(snapshot(btc([(100_000.0, 0.02)], [(141_000_000.0, 0.05)])), changed=changed)
    out = SignalEngine("signal", config).on_tick(ctx(snap, state(config)))
    assert len(out.decisions) == found
    assert ("best_net_spread_pct" in out.metrics) == bool(found)
