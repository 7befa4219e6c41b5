"""The trading day a timestamp belongs to, in the venues' local calendar (KST by default): the day
the bot books PnL under, the kill switch re-arms on, and the report groups by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def trading_day(ts: float, utc_offset_h: float) -> str:
    return (datetime.fromtimestamp(ts, UTC) + timedelta(hours=utc_offset_h)).strftime("%Y-%m-%d")
