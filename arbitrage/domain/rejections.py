"""Safety rejections counted per trading day, asset, venue pair and reason, between ledger writes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RejectionCount:
    """How often one reason rejected one asset's buy->sell pair on one trading day, and when."""

    day: str  # trading day, YYYY-MM-DD (safety.trading_day_utc_offset_h)
    asset: str
    buy_venue: str
    sell_venue: str
    reason: str
    count: int
    first_ts: float
    last_ts: float


Key = tuple[str, str, str, str, str]  # day, asset, buy venue, sell venue, reason


class RejectionTally:
    """Counts since the last drain; draining hands them over as rows to add to the ledger's."""

    def __init__(self) -> None:
        self._counts: dict[Key, list[float]] = {}  # key -> [count, first ts, last ts]

    def add(self, day: str, asset: str, buy_venue: str, sell_venue: str, reason: str, ts: float) -> None:
        key = (day, asset, buy_venue, sell_venue, reason)
        entry = self._counts.get(key)
        if entry is None:
            self._counts[key] = [1, ts, ts]
        else:
            entry[0] += 1
            entry[2] = ts

    def __len__(self) -> int:
        return len(self._counts)

    def drain(self) -> list[RejectionCount]:
        counts, self._counts = self._counts, {}
        return [
            RejectionCount(day, asset, buy, sell, reason, int(n), first, last)
            for (day, asset, buy, sell, reason), (n, first, last) in sorted(counts.items())
        ]

    def restore(self, rows: list[RejectionCount]) -> None:
        """Put back rows a failed write did not store, to go with the next drain."""
        for r in rows:
            key = (r.day, r.asset, r.buy_venue, r.sell_venue, r.reason)
            entry = self._counts.get(key)
            if entry is None:
                self._counts[key] = [r.count, r.first_ts, r.last_ts]
            else:
                entry[0] += r.count
                entry[1] = min(entry[1], r.first_ts)
                entry[2] = max(entry[2], r.last_ts)
