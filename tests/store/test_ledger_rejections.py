"""Safety rejection counts in the ledger (SQLite and PostgreSQL): added up per trading day, asset,
pair and reason, first and last seen kept; the loop's RejectionLog writes them every few seconds
and keeps them when the ledger refuses; `read_ledger` hands them to the report."""

from __future__ import annotations

from typing import Any

from arbitrage.clock import FakeClock
from arbitrage.domain.decisions import SafetyVerdict
from arbitrage.domain.rejections import RejectionCount, RejectionTally
from arbitrage.runtime.rejection_log import FLUSH_S, RejectionLog
from arbitrage.store.ledger import Ledger
from arbitrage.store.ledger_reader import read_ledger
from tests.engines.factories import opportunity


def test_counts_add_up_per_key_and_keep_the_first_and_last_seen(ledger: Ledger, ledger_url: str) -> None:
    ledger.add_rejections([
        RejectionCount("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 3, 10.0, 20.0),
        RejectionCount("2026-12-03", "BTC", "binance", "upbit", "MAX_EXPOSURE", 1, 15.0, 15.0),
    ])  # fmt: skip
    ledger.add_rejections(
        [RejectionCount("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 2, 5.0, 30.0)]
    )
    ledger.add_rejections([])
    expected = [
        RejectionCount("2026-12-03", "BTC", "binance", "upbit", "MAX_EXPOSURE", 1, 15.0, 15.0),
        RejectionCount("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 5, 5.0, 30.0),
    ]
    assert ledger.rejections() == expected
    assert read_ledger(ledger_url).rejections == expected


class RefusingLedger:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.refuse = True

    def add_rejections(self, rows: Any) -> None:
        if self.refuse:
            raise OSError("disk full")
        self.ledger.add_rejections(rows)


def verdict(reason: str, buy: str = "binance", sell: str = "upbit") -> SafetyVerdict:
    return SafetyVerdict(opportunity(buy_venue=buy, sell_venue=sell), reason)


def test_the_log_writes_every_few_seconds_and_keeps_what_a_refusing_ledger_did_not_take(
    ledger: Ledger,
) -> None:
    clock = FakeClock()
    refusing = RefusingLedger(ledger)
    log = RejectionLog(refusing, clock)  # type: ignore[arg-type]
    log.count("2026-12-03", verdict("STALE_DATA"), 100.0)
    log.flush_if_due()
    assert ledger.rejections() == []  # not due yet
    clock.advance(FLUSH_S)
    log.flush_if_due()  # refused: kept
    log.count("2026-12-03", verdict("STALE_DATA"), 101.0)
    refusing.refuse = False
    log.flush()
    assert [(r.reason, r.count, r.first_ts, r.last_ts) for r in ledger.rejections()] == [
        ("STALE_DATA", 2, 100.0, 101.0)
    ]


def test_the_tally_drains_in_key_order() -> None:
    tally = RejectionTally()
    tally.add("2026-12-04", "ETH", "upbit", "binance", "WS_LAG", 3.0)
    tally.add("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 1.0)
    tally.add("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 2.0)
    assert tally.drain() == [
        RejectionCount("2026-12-03", "BTC", "binance", "upbit", "STALE_DATA", 2, 1.0, 2.0),
        RejectionCount("2026-12-04", "ETH", "upbit", "binance", "WS_LAG", 1, 3.0, 3.0),
    ]
    assert len(tally) == 0
