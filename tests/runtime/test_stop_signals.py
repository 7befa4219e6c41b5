"""The stop-signal handler must never block the main thread it interrupts.

A handler runs in the main thread between two bytecodes, possibly while that thread holds a plain
lock: the loop's stop Event's own lock as it starts or ends a wait. A handler that set the Event
itself would wait on that lock forever (seen once: a SIGINT, then a bot that neither ticked nor
shut down). The script below holds that lock while the signal arrives, in a process of its own so
that a deadlock is a timeout here rather than a hung suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, signal, threading
    from arbitrage.runtime.stop_signals import StopSignals

    stop = threading.Event()
    reasons = []

    def request_stop(reason):
        reasons.append(reason)
        stop.set()

    signals = StopSignals(request_stop, stopping=stop.is_set)
    signals.install()
    with stop._cond:  # what Event.wait holds at its start and end
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes: the handler runs here, the lock still held
            pass
    assert stop.wait(20), "the stop was never requested"
    print(reasons[0])
    """
)


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_still_stops_the_bot() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "signal SIGTERM"
