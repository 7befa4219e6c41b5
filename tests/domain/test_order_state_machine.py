"""The order lifecycle: the transition table, `apply`, and `events_from_report` on venue reports."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.domain.orders import (
    TERMINAL,
    TRANSITIONS,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderState,
    OrderSubmitted,
    apply,
    can_transition,
    events_from_report,
)
from arbitrage.errors import InvalidTransition

S = OrderState
QTY = Decimal("1.0")

# The order lifecycle (docs/ARCHITECTURE.md, The ledger's write order), written out pair by pair
# rather than read from the code's table.
ALLOWED = {
    (S.PENDING, S.SUBMITTED),
    (S.PENDING, S.REJECTED),  # never sent
    (S.PENDING, S.CANCELLED),  # dropped before sending
    (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.PARTIAL),
    (S.SUBMITTED, S.FILLED),
    (S.SUBMITTED, S.CANCELLED),
    (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.EXPIRED),
    (S.ACCEPTED, S.PARTIAL),
    (S.ACCEPTED, S.FILLED),
    (S.ACCEPTED, S.CANCELLED),
    (S.ACCEPTED, S.EXPIRED),
    (S.PARTIAL, S.PARTIAL),
    (S.PARTIAL, S.FILLED),
    (S.PARTIAL, S.CANCELLED),
    (S.PARTIAL, S.EXPIRED),
}


def order_in(state: OrderState, qty: Decimal = QTY) -> Order:
    """An order already in `state`, with the fill that state implies."""
    filled = {S.PARTIAL: qty * Decimal("0.4"), S.FILLED: qty}.get(state, Decimal(0))
    return Order(
        client_order_id="arbE0000001-B",
        venue="upbit",
        symbol="BTC/KRW",
        side="buy",
        qty=qty,
        price=Decimal(100),
        state=state,
        filled_qty=filled,
        avg_fill_price=Decimal(100) if filled else Decimal(0),
    )


def event_towards(order: Order, dst: OrderState) -> OrderEvent:
    """The event that would move `order` to `dst`."""
    if dst is S.SUBMITTED:
        return OrderSubmitted()
    if dst is S.ACCEPTED:
        return OrderAccepted("venue-1")
    if dst is S.PARTIAL:
        return OrderFilled(order.remaining_qty / 4 or Decimal("0.1"), Decimal(101), Decimal("0.01"))
    if dst is S.FILLED:
        return OrderFilled(order.remaining_qty or Decimal("0.1"), Decimal(101), Decimal("0.01"))
    if dst is S.CANCELLED:
        return OrderCancelled("by us")
    if dst is S.REJECTED:
        return OrderRejected("insufficient balance")
    return OrderExpired("IOC remainder")


# Table-driven -----------------------------------------------------------------------------


def test_the_table_is_the_lifecycle() -> None:
    table = {(src, dst) for src, dsts in TRANSITIONS.items() for dst in dsts}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(OrderState)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(a, b) for a, b in product(OrderState, OrderState) if b is not S.PENDING],
    ids=lambda s: s.value,
)
def test_each_transition_is_applied_or_refused(src: OrderState, dst: OrderState) -> None:
    order = order_in(src)
    event = event_towards(order, dst)
    assert can_transition(src, dst) == ((src, dst) in ALLOWED)
    if (src, dst) in ALLOWED:
        after = apply(order, event)
        assert after.state is dst
    else:
        with pytest.raises(InvalidTransition, match=src.value):
            apply(order, event)


def test_nothing_leads_back_to_pending() -> None:
    assert all(S.PENDING not in dsts for dsts in TRANSITIONS.values())


@pytest.mark.parametrize("terminal", sorted(TERMINAL), ids=lambda s: s.value)
def test_terminal_states_accept_nothing(terminal: OrderState) -> None:
    order = order_in(terminal)
    assert terminal.terminal
    for dst in OrderState:
        if dst is S.PENDING:
            continue
        with pytest.raises(InvalidTransition):
            apply(order, event_towards(order_in(S.ACCEPTED), dst))


@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (OrderAccepted("v-9"), "venue_order_id", "v-9"),
        (OrderRejected("min notional"), "reason", "min notional"),
        (OrderCancelled("shutdown"), "reason", "shutdown"),
        (OrderExpired("IOC remainder"), "reason", "IOC remainder"),
    ],
)
def test_events_carry_their_details(event: OrderEvent, field: str, value: str) -> None:
    assert getattr(apply(order_in(S.SUBMITTED), event), field) == value


@pytest.mark.parametrize(
    ("fill", "why"),
    [(Decimal(0), "non-positive"), (Decimal("-0.1"), "non-positive"), (Decimal("1.01"), "exceeds remaining")],
)
def test_bad_fills_are_refused(fill: Decimal, why: str) -> None:
    with pytest.raises(InvalidTransition, match=why):
        apply(order_in(S.ACCEPTED), OrderFilled(fill, Decimal(100)))


def test_fills_average_their_prices_and_sum_their_fees() -> None:
    order = order_in(S.SUBMITTED)
    order = apply(order, OrderFilled(Decimal("0.25"), Decimal(100), Decimal("0.1")))
    order = apply(order, OrderFilled(Decimal("0.75"), Decimal(104), Decimal("0.3")))
    assert order.state is S.FILLED
    assert order.avg_fill_price == Decimal(103)
    assert order.fee == Decimal("0.4")
    assert order.notional == Decimal(103)


# Properties of apply ----------------------------------------------------------------------

fill_qty = st.decimals(min_value=Decimal("-0.1"), max_value=Decimal("1.2"), places=3)
prices = st.decimals(min_value=Decimal(1), max_value=Decimal(1000), places=2)
events = st.one_of(
    st.just(OrderSubmitted()),
    st.builds(OrderAccepted, st.sampled_from([None, "v-1", "v-2"])),
    st.builds(OrderFilled, fill_qty, prices, st.decimals(min_value=0, max_value=1, places=4)),
    st.builds(OrderCancelled, st.sampled_from([None, "by us"])),
    st.builds(OrderRejected, st.just("refused")),
    st.builds(OrderExpired, st.sampled_from([None, "IOC remainder"])),
)


def intended_state(order: Order, event: OrderEvent) -> OrderState | None:
    """Where `event` should take `order` by the lifecycle, or None when it must be refused."""
    if isinstance(event, OrderFilled):
        if event.qty <= 0 or order.filled_qty + event.qty > order.qty:
            return None
        dst = S.FILLED if order.filled_qty + event.qty == order.qty else S.PARTIAL
    else:
        dst = {
            OrderSubmitted: S.SUBMITTED,
            OrderAccepted: S.ACCEPTED,
            OrderCancelled: S.CANCELLED,
            OrderRejected: S.REJECTED,
            OrderExpired: S.EXPIRED,
        }[type(event)]
    return dst if (order.state, dst) in ALLOWED else None


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=12))
def test_random_event_sequences_follow_the_table(sequence: list[OrderEvent]) -> None:
    order = order_in(S.PENDING)
    for event in sequence:
        before = order
        dst = intended_state(order, event)
        if dst is None:
            with pytest.raises(InvalidTransition):
                apply(order, event)
            assert order == before
            continue
        order = apply(order, event)
        assert order.state is dst
        assert (before.state, order.state) in ALLOWED
        assert before.filled_qty <= order.filled_qty <= order.qty
        assert order.fee >= before.fee
        if order.state is S.FILLED:
            assert order.filled_qty == order.qty
        if order.state is S.PARTIAL:
            assert 0 < order.filled_qty < order.qty
        # Only a fill moves the fill totals.
        if not isinstance(event, OrderFilled):
            assert (order.filled_qty, order.avg_fill_price, order.fee) == (
                before.filled_qty,
                before.avg_fill_price,
                before.fee,
            )


# events_from_report -----------------------------------------------------------------------

LIVE = (S.ACCEPTED, S.PARTIAL)


@st.composite
def report_sequences(draw: st.DrawFn) -> tuple[Decimal, list[OrderReport]]:
    """A venue's cumulative reports on one order: live reports, then perhaps a final one; any repeated."""
    qty = draw(st.decimals(min_value=Decimal("0.001"), max_value=Decimal(5), places=3))
    steps = draw(st.lists(st.integers(min_value=1, max_value=999), max_size=4, unique=True))
    levels = [qty * Decimal(s) / 1000 for s in sorted(steps)]
    fee_rate = Decimal("0.0005")
    totals = {"filled": Decimal(0), "notional": Decimal(0)}

    def report(state: OrderState, filled: Decimal) -> OrderReport:
        # Each new part fills at its own price; the report carries the cumulative totals.
        if filled > totals["filled"]:
            totals["notional"] += (filled - totals["filled"]) * draw(prices)
            totals["filled"] = filled
        notional = totals["notional"]
        avg = notional / filled if filled else Decimal(0)
        return OrderReport("arbE0000001-B", state, filled, avg, notional * fee_rate, "v-1", None)

    reports: list[OrderReport] = []
    if draw(st.booleans()):
        reports.append(report(S.ACCEPTED, Decimal(0)))
    reports += [report(S.PARTIAL, level) for level in levels]
    last = levels[-1] if levels else Decimal(0)
    final = draw(st.sampled_from(["none", "filled", "filled-short", "cancelled", "expired", "rejected"]))
    if final == "filled":
        reports.append(report(S.FILLED, qty))
    elif final == "filled-short":  # the venue calls it done a rounding step short of the quantity
        reports.append(report(S.FILLED, last))
    elif final in ("cancelled", "expired"):
        more = draw(st.decimals(min_value=last, max_value=qty, places=3))
        reports.append(report(S.CANCELLED if final == "cancelled" else S.EXPIRED, max(more, last)))
    elif final == "rejected":
        reports.append(report(S.REJECTED, last))
    repeats = draw(st.lists(st.booleans(), min_size=len(reports), max_size=len(reports)))
    with_repeats = [r for r, again in zip(reports, repeats, strict=True) for r in ([r, r] if again else [r])]
    return qty, with_repeats


def apply_report(order: Order, report: OrderReport) -> Order:
    for event in events_from_report(order, report):
        order = apply(order, event)
    return order


@settings(max_examples=300, deadline=None)
@given(report_sequences())
def test_cumulative_reports_apply_cleanly_and_idempotently(case: tuple[Decimal, list[OrderReport]]) -> None:
    qty, reports = case
    order = order_in(S.PENDING, qty)
    for report in reports:
        before = order
        order = apply_report(order, report)  # never raises
        assert order.filled_qty == report.filled_qty
        assert order.fee == report.fee
        if order.filled_qty:
            assert abs(order.avg_fill_price - report.avg_price) <= report.avg_price * Decimal("1e-20")
        assert before.filled_qty <= order.filled_qty <= order.qty
        if report.state in TERMINAL:
            assert order.state.terminal, (report, order)
        else:
            assert order.state in (S.SUBMITTED, *LIVE)
        # The same report again adds nothing.
        assert apply_report(order, report) == order


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (OrderReport("c", S.ACCEPTED), [OrderSubmitted, OrderAccepted]),
        (OrderReport("c", S.REJECTED, reason="min notional"), [OrderSubmitted, OrderRejected]),
        (OrderReport("c", S.FILLED, QTY, Decimal(100)), [OrderSubmitted, OrderFilled]),
        (
            OrderReport("c", S.EXPIRED, Decimal("0.3"), Decimal(100)),
            [OrderSubmitted, OrderFilled, OrderExpired],
        ),
        (OrderReport("c", S.CANCELLED), [OrderSubmitted, OrderCancelled]),
        # Some venues end an IOC remainder as "rejected" after a partial fill: that is an expiry.
        (
            OrderReport("c", S.REJECTED, Decimal("0.3"), Decimal(100)),
            [OrderSubmitted, OrderFilled, OrderExpired],
        ),
    ],
)
def test_events_for_a_pending_order(report: OrderReport, expected: list[type]) -> None:
    got = events_from_report(order_in(S.PENDING), report)
    assert [type(e) for e in got] == expected


def test_a_fill_price_comes_from_the_change_in_cumulative_notional() -> None:
    order = replace(order_in(S.PARTIAL), filled_qty=Decimal("0.4"), avg_fill_price=Decimal(100))
    events = events_from_report(order, OrderReport("c", S.FILLED, QTY, Decimal(106)))
    assert events == [OrderFilled(Decimal("0.6"), Decimal(110), Decimal(0))]


def test_a_repeated_final_report_is_not_an_invalid_transition() -> None:
    order = apply_report(order_in(S.PENDING), OrderReport("c", S.CANCELLED, Decimal("0.5"), Decimal(100)))
    assert order.state is S.CANCELLED
    assert events_from_report(order, OrderReport("c", S.CANCELLED, Decimal("0.5"), Decimal(100))) == []


def test_a_late_fill_on_a_finished_order_is_still_refused() -> None:
    """New quantity on a terminal order is a real discrepancy: the sender must see it refused."""
    order = apply_report(order_in(S.PENDING), OrderReport("c", S.EXPIRED, Decimal("0.5"), Decimal(100)))
    with pytest.raises(InvalidTransition):
        apply_report(order, OrderReport("c", S.EXPIRED, Decimal("0.7"), Decimal(100)))


@pytest.mark.parametrize(
    ("start", "report", "state", "filled"),
    [
        # "Done" a rounding step short: the order ends instead of staying open forever.
        (
            S.SUBMITTED,
            OrderReport("c", S.FILLED, Decimal("0.999"), Decimal(100)),
            S.EXPIRED,
            Decimal("0.999"),
        ),
        # A cancel that raced the last fill: the fill finished it.
        (S.PARTIAL, OrderReport("c", S.CANCELLED, QTY, Decimal(100)), S.FILLED, QTY),
        # Rejected after the venue accepted it: a live order ended, an expiry.
        (S.ACCEPTED, OrderReport("c", S.REJECTED, reason="self-trade"), S.EXPIRED, Decimal(0)),
        # Rejected before it was accepted stays a rejection.
        (S.SUBMITTED, OrderReport("c", S.REJECTED, reason="min notional"), S.REJECTED, Decimal(0)),
    ],
)
def test_venue_quirks_end_in_the_right_state(
    start: OrderState, report: OrderReport, state: OrderState, filled: Decimal
) -> None:
    order = apply_report(order_in(start), report)
    assert (order.state, order.filled_qty) == (state, filled)
    assert apply_report(order, report) == order
