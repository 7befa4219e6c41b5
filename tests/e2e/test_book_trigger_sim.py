"""Book-triggered ticks end to end: the bot in live mode on WebSocket books from the simulator, with
a 30 s interval. A spread opened on the simulator must reach the bot as a streamed book, wake a
tick and become orders at the simulator long before the interval would have."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from arbitrage.clock import SystemClock
from arbitrage.config import parse_config
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.wiring import build_bot
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.runner import base_config, merge
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, sim_overrides
from tests.runtime.mock_bot import Recorder, TickLog
from tests.waiting import wait_until

SIM_SEED = 12
SIM_RESET_EACH_TEST = True
INTERVAL_S = 30.0


class Trades(TickLog):
    """Keeps every report, and when the first tick that traded ended."""

    def __init__(self) -> None:
        super().__init__()
        self.traded_at: float | None = None

    def after_tick(self, report: TickReport) -> int | None:
        if report.traded and self.traded_at is None:
            self.traded_at = time.monotonic()
        return super().after_tick(report)


def test_a_spread_opened_on_the_simulator_trades_on_the_next_streamed_book(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    # No premium and a high threshold: nothing trades until the test opens a spread.
    sim.steer("BTC", premium_pct=0.0, set_mean=True)
    config = parse_config(
        merge(
            base_config(),
            merge(
                sim_overrides(sim_server.base_url),
                {
                    "mode": {"current": "live"},
                    "symbols": ["BTC"],
                    "loop": {"interval_s": INTERVAL_S},
                    "market_data": {"use_websocket": True},
                    "signal": {"min_spread_pct": 1.0, "max_notional": 300000},
                    "safety": {"halt_file": str(tmp_path / ".halt")},
                },
            ),
        )
    )
    assert config.loop_trigger() == "book"  # the default in live mode
    trades = Trades()
    bot = build_bot(
        config, data_dir=tmp_path / "data", interval_s=INTERVAL_S, max_ticks=None, alert=Recorder().alert,
        env=LIVE_ENV, clock=SystemClock(), hooks=[trades], print_line=lambda line: None,
    )  # fmt: skip
    runner = threading.Thread(target=bot.loop.run, daemon=True)
    try:
        runner.start()
        # Streaming: ticks woken by streamed books, long before a second 30 s full pass.
        wait_until(lambda: sum(r.book_updates > 0 for r in trades.reports) >= 5, 60, "book-triggered ticks")
        assert trades.traded_at is None and not sim.orders(venue="upbit", api_key=API_KEYS["upbit"])

        opened = time.monotonic()
        sim.steer("BTC", premium_pct=2.5)  # Upbit's BTC bids now pay 2.5% over Binance's asks
        wait_until(lambda: trades.traded_at is not None, 60, "a tick that traded")
        assert trades.traded_at is not None
        traded = next(r for r in trades.reports if r.traded)
        assert traded.book_updates > 0  # woken by the streamed book, not the interval's full pass
        assert trades.traded_at - opened < INTERVAL_S / 3
        for venue in ("upbit", "binance"):
            assert sim.orders(venue=venue, api_key=API_KEYS[venue]), venue
        assert bot.events.updates == bot.events.taken + bot.events.pending()
    finally:
        bot.loop.request_stop("test over")
        runner.join(30)
        bot.close()
