"""The spread analyzer: finds cross-venue opportunities by walking both books, FX-normalised.

Runs every tick over every asset and ordered venue pair, so it is written for speed: plain
floats, no allocation until an opportunity qualifies, and an early exit on the top of book.
"""

from __future__ import annotations

from arbitrage.config import AppConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.pnl import fx_spread_pct
from arbitrage.domain.spread import taker_net_spread_pct, taker_rates
from arbitrage.engines.base import EngineOutput, TickContext


def find_opportunity(
    asset: str,
    buy_book: OrderBook,
    sell_book: OrderBook,
    buy_fx: float,
    sell_fx: float,
    buy_fee_pct: float,
    sell_fee_pct: float,
    *,
    min_spread_pct: float,
    max_notional: float,
    min_notional: float,
    buffer_pct: float,
    ts: float,
) -> tuple[Opportunity | None, float | None]:
    """Buy `asset` at `buy_book`'s asks and sell at `sell_book`'s bids.

    Takes levels while the MARGINAL net spread (that level pair's, after fees and the buffer)
    stays >= `min_spread_pct`, up to `max_notional` of buy-side cost in the accounting currency.
    Returns the opportunity (None unless it nets >= min_spread_pct on >= min_notional) and the
    top-of-book net spread (None when a side is empty), which the metrics report.
    """
    asks = buy_book.asks
    bids = sell_book.bids
    if not asks or not bids:
        return None, None
    ask_price, ask_left = asks[0]
    bid_price, bid_left = bids[0]
    buy_k, _ = taker_rates(buy_fx, buy_fee_pct)
    _, sell_k = taker_rates(sell_fx, sell_fee_pct)
    top_cost = ask_price * buy_fx
    if top_cost <= 0:
        return None, None
    top_net = taker_net_spread_pct(ask_price, buy_fx, buy_k, bid_price, sell_k) - buffer_pct
    if top_net < min_spread_pct:
        return None, top_net
    # A level pair qualifies when bid * sell_k >= ask * hurdle (the marginal-spread test, rearranged).
    hurdle = buy_fx * (1.0 + (buy_fee_pct + min_spread_pct + buffer_pct) / 100.0)
    qty = cost = proceeds = spent = 0.0
    worst_ask, worst_bid = ask_price, bid_price
    i = j = 0
    n_asks, n_bids = len(asks), len(bids)
    while bid_price * sell_k >= ask_price * hurdle:
        take = ask_left if ask_left < bid_left else bid_left
        room = (max_notional - spent) / (ask_price * buy_fx)
        capped = take >= room
        if capped:
            take = room
        if take > 0:
            qty += take
            cost += take * ask_price
            proceeds += take * bid_price
            spent += take * ask_price * buy_fx
            worst_ask, worst_bid = ask_price, bid_price
        if capped:
            break
        ask_left -= take
        bid_left -= take
        if ask_left <= 0:
            i += 1
            if i == n_asks:
                break
            ask_price, ask_left = asks[i]
        if bid_left <= 0:
            j += 1
            if j == n_bids:
                break
            bid_price, bid_left = bids[j]
    if qty <= 0 or spent < min_notional:
        return None, top_net
    proceeds_acc = proceeds * sell_fx
    fees = spent * buy_fee_pct / 100.0 + proceeds_acc * sell_fee_pct / 100.0
    net = (proceeds_acc - spent - fees) / spent * 100.0 - buffer_pct
    # Every level pair taken netted >= min_spread_pct, so the whole does too; allow float noise.
    if net < min_spread_pct - 1e-9:
        return None, top_net
    buy_vwap = cost / qty
    sell_vwap = proceeds / qty
    best_ask, best_bid = asks[0][0], bids[0][0]
    opp = Opportunity(
        asset=asset,
        buy_venue=buy_book.venue,
        sell_venue=sell_book.venue,
        buy_symbol=buy_book.symbol,
        sell_symbol=sell_book.symbol,
        qty=qty,
        buy_price=worst_ask,
        sell_price=worst_bid,
        buy_vwap=buy_vwap,
        sell_vwap=sell_vwap,
        buy_fx=buy_fx,
        sell_fx=sell_fx,
        gross_spread_pct=fx_spread_pct(best_ask, buy_fx, best_bid, sell_fx),
        net_spread_pct=net,
        slippage_pct=(buy_vwap / best_ask - 1.0) * 100.0 + (1.0 - sell_vwap / best_bid) * 100.0,
        fees_pct=buy_fee_pct + sell_fee_pct,
        ts=ts,
        book_age_ms=max(buy_book.age_ms(ts), sell_book.age_ms(ts)),
    )
    return opp, top_net


class SignalEngine:
    """Emits an Opportunity for each (asset, buy venue, sell venue) that nets >= signal.min_spread_pct.

    Metrics: `signals` (count) and `best_net_spread_pct`: the best emitted opportunity's net spread,
    or, when none qualified, the best top-of-book net spread seen (how far the market is from the
    threshold); absent when no pair had both books. A book-triggered tick (snapshot.changed) looks
    at the assets whose books changed only, and its metrics are theirs.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._assets = tuple(config.symbols)
        sig = config.signal
        self._min_spread = sig.min_spread_pct
        self._max_notional = sig.max_notional
        self._min_notional = sig.min_notional
        self._buffer = sig.slippage_buffer_pct

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        snapshot = ctx.snapshot
        books = snapshot.books
        fx = snapshot.fx
        ts = snapshot.ts
        min_spread = self._min_spread
        buffer = self._buffer
        spread = taker_net_spread_pct  # a local name: looked up once per tick, not once per pair
        # (name, fx, fee %, cost per quote unit bought, proceeds per quote unit sold): the same
        # rates as find_opportunity's, computed once per venue rather than once per pair.
        venues: list[tuple[str, float | None, float, float, float]] = []
        for name, status in ctx.state.venues.items():
            rate = fx.get(status.quote)
            fee = status.taker_fee_pct
            if rate is None:
                venues.append((name, None, fee, 0.0, 0.0))
            else:
                venues.append((name, rate, fee, *taker_rates(rate, fee)))
        found: list[Opportunity] = []
        best_top: float | None = None
        # A book-triggered tick looks at the assets whose books changed; the others' spreads are
        # what the tick that last saw them found.
        changed = snapshot.changed_assets()
        for asset in self._assets:
            if changed is not None and asset not in changed:
                continue
            for buy_venue, buy_fx, buy_fee, buy_k, _ in venues:
                buy_book = books.get((buy_venue, asset))
                if buy_book is None or buy_fx is None:
                    continue
                # The top alone, and one read of it: a side may be built lazily (see domain.book).
                try:
                    ask_price = buy_book.asks[0][0]
                except IndexError:
                    continue
                top_cost = ask_price * buy_fx
                if top_cost <= 0:
                    continue
                for sell_venue, sell_fx, sell_fee, _, sell_k in venues:
                    if sell_venue == buy_venue or sell_fx is None:
                        continue
                    sell_book = books.get((sell_venue, asset))
                    if sell_book is None:
                        continue
                    try:
                        bid_price = sell_book.bids[0][0]
                    except IndexError:
                        continue
                    # Most pairs end at the top of book: find_opportunity's own first test, inline.
                    top_net = spread(ask_price, buy_fx, buy_k, bid_price, sell_k) - buffer
                    top: float | None = top_net
                    if not top_net < min_spread:  # written as find_opportunity's test, NaN included
                        opp, top = find_opportunity(
                            asset,
                            buy_book,
                            sell_book,
                            buy_fx,
                            sell_fx,
                            buy_fee,
                            sell_fee,
                            min_spread_pct=min_spread,
                            max_notional=self._max_notional,
                            min_notional=self._min_notional,
                            buffer_pct=buffer,
                            ts=ts,
                        )
                        if opp is not None:
                            found.append(opp)
                    if top is not None and (best_top is None or top > best_top):
                        best_top = top
        metrics = {"signals": float(len(found))}
        if found:
            metrics["best_net_spread_pct"] = max(o.net_spread_pct for o in found)
        elif best_top is not None:
            metrics["best_net_spread_pct"] = best_top
        return EngineOutput(decisions=found, metrics=metrics)
