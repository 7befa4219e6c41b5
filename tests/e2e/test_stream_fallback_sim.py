"""Order-book streams end to end: the real command on WebSocket books from the simulator, the
streams cut and refused for a while, and back (see docs/ARCHITECTURE.md, The tick).

While the streams are down the bot must poll REST from the very next tick (no tick without its
books, no stale book), keep trading, say so once per venue (one warning, one alert), and return
to the stream once the simulator accepts connections again.
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.ops_harness import bot_process, free_port
from tests.e2e.runner import METRICS_RE, merge
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides
from tests.e2e.sim_run_probe import health_detail, log_lines, market_data, stream_states, ticks
from tests.waiting import wait_until

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts

REFUSE_S = 4.0
# Generous for a loaded machine (two suites at once on two cores): a restored stream must not go
# stale again only because its thread waited for a core, and a tick may take a second longer.
STALE_AFTER_S = 2.0
RECOVER_EVERY_S = 2.0
MAX_TICK_GAP_S = 3.5  # between two metrics lines, REST-polled ticks included: less than REFUSE_S


def stream_overrides(base_url: str, health_port: int) -> dict[str, Any]:
    return merge(
        sim_overrides(base_url),
        {
            "market_data": {
                "use_websocket": True,
                "stale_after_s": STALE_AFTER_S,
                "recover_every_s": RECOVER_EVERY_S,
            },
            "health_server": {"enabled": True, "host": "127.0.0.1", "port": health_port},
            # Inventory arbitrage with small entries: every entry closes at once, so exposure never
            # stops the trading this test watches, and the balances last the whole run.
            "exit": {"mode": "none"},
            "signal": {"max_notional": 300000},
            "safety": {"max_orders_per_minute": 5000},
            "watchdog": {"warn_loop_latency_ms": 3000, "max_loop_latency_ms": 3500},
        },
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paper", "live"])
def test_streams_cut_fall_back_to_rest_within_a_tick_and_come_back(
    tmp_path: Path, sim_server: SimServer, sim: SimControl, mode: str
) -> None:

    port = free_port()
    env = None
    if mode == "live":
        (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
        env = LIVE_ENV
    overrides = stream_overrides(sim_server.base_url, port)
    with bot_process(tmp_path, "--mode", mode, "--interval", "0.1", overrides=overrides, env=env) as bot:
        bot.wait_for(r"trades=[1-9]", 60)  # streaming, past the live dry run, and trading
        wait_until(lambda: set(stream_states(health_detail(port)).values()) == {"stream"}, 30, "streams")
        # The bot calls a stream up until its books go stale; the simulator knows at once when it
        # cut one (a client that fell behind): cut them when it holds one for each venue.
        wait_until(
            lambda: all(v["ws_connections"] > 0 for v in sim.health()["venues"].values()), 30,
            "the simulator to hold a stream of each venue",
        )  # fmt: skip

        sim.refuse_streams(REFUSE_S)  # the reconnects after the cut are refused for a while
        cut_at = time.time()
        assert sim.drop_streams(abort=True) >= len(VENUES)
        wait_until(lambda: set(stream_states(health_detail(port)).values()) == {"poll"}, 30, "REST polling")
        polling_at = time.time()
        wait_until(
            lambda: set(stream_states(health_detail(port)).values()) == {"stream"},
            REFUSE_S + 4 * RECOVER_EVERY_S + 5,
            "the streams restored",
        )
        back_at = time.time()
        done = len(ticks(tmp_path / "logs"))  # a few ticks on the restored streams
        wait_until(
            lambda: len(ticks(tmp_path / "logs")) >= done + 5, 30, "five ticks on the restored streams"
        )
        venues = health_detail(port)["venues"]
        bot.send(signal.SIGINT)
        run = bot.finish(60)
    assert run.code == 0, run.stderr[-3000:]
    assert all(METRICS_RE.search(line) for line in run.metrics_lines())

    # The health endpoint: each venue fell back once, restored once, polled REST in between.
    for name in VENUES:
        stream = market_data(venues[name])["stream"]
        assert stream["state"] == "stream", (name, stream)
        assert stream["fallbacks"] == 1 and stream["restores"] == 1, (name, stream)
        assert stream["rest_fallbacks"] > 0 and stream["reconnects"] >= 1, (name, stream)

    # The logs: one warning and one alert per venue for the episode, then "restored".
    loop_log = log_lines(run.log_dir / "live_loop.log")
    for name in VENUES:
        warnings = [
            line for line in loop_log
            if line.logger == "arbitrage.venues.stream" and line.level == "WARNING"
            and line.text.startswith(f"{name} order-book stream down")
        ]  # fmt: skip
        alerts = [line for line in loop_log if f"ALERT [market-data:{name}]" in line.text]
        restored = [line for line in loop_log if line.text.startswith(f"{name}: order-book stream restored")]
        assert len(warnings) == 1, [w.text for w in warnings]
        assert len(alerts) == 1 and "polling REST" in alerts[0].text, [a.text for a in alerts]
        assert cut_at - 0.5 <= warnings[0].ts <= polling_at + 0.5
        assert len(restored) == 1 and polling_at <= restored[0].ts <= back_at + 0.5
    assert not [w for w in loop_log if w.level == "WARNING" and w.logger == "arbitrage.venues.stream"][2:]

    # No tick went without a book or on a stale one, and the ticks kept coming through the episode.
    missing = [line.text for line in loop_log if "unavailable" in line.text]
    assert missing == [], missing[:5]
    safety_log = (run.log_dir / "safety.log").read_text(encoding="utf-8")
    assert "STALE_DATA" not in safety_log
    seen = ticks(run.log_dir)
    # Ticks on both sides of the episode and none further apart than MAX_TICK_GAP_S in between: how
    # many fit in it depends on how busy the machine is, the gap does not.
    around = [t for t in seen if cut_at - MAX_TICK_GAP_S <= t.ts <= back_at + MAX_TICK_GAP_S]
    gaps = [b.ts - a.ts for a, b in pairwise(around)]
    assert around and around[0].ts <= cut_at and around[-1].ts >= back_at, [t.ts for t in around]
    assert max(gaps) <= MAX_TICK_GAP_S, (len(around), max(gaps))
    while_polling = [t for t in seen if polling_at <= t.ts <= back_at]
    assert len(while_polling) >= 3, len(while_polling)

    # It kept trading on the polled books.
    before = max((t.trades for t in seen if t.ts <= polling_at), default=0)
    assert max(t.trades for t in seen if t.ts <= back_at) > before, "no trade while polling REST"
    if mode == "live":
        placed = [
            o for v in VENUES for o in sim.orders(venue=v, api_key=API_KEYS[v])
            if polling_at <= o["created_ms"] / 1000.0 <= back_at and Decimal(o["filled"]) > 0
        ]  # fmt: skip
        assert placed, "no order reached the simulator while the bot polled REST"
    else:
        assert sim.orders() == []  # paper never sends an order
