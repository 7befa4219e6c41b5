"""The operator's stop signals (SIGINT, SIGTERM, SIGHUP): the first one stops the bot gracefully;
every later one, up to the process exit, is logged and ignored, so the exit code stays that of
the first stop.
"""

from __future__ import annotations

import atexit
import logging
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("arbitrage.live_loop")

# SIGHUP is what a closed SSH session or terminal sends: it must stop the bot the way SIGTERM does
# (cancel, state, final alert), not kill it mid-tick.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Installs one handler for every stop signal and keeps it until the process exits.

    `request_stop(reason)` is called for the first signal while `stopping()` is false; a signal
    while the bot is stopping, or after `shutdown_finished(code)`, is only logged.
    Restoring the previous handlers on the way out is what turned a late SIGTERM into exit 143:
    Python's default for SIGTERM kills the process, for SIGINT it raises KeyboardInterrupt.
    The interpreter itself resets Python-level handlers to the system default while it
    finalizes, after the exit handlers have run; so the last exit handler sets the stop signals
    to "ignore" (which the interpreter leaves alone) for the final instants.
    """

    def __init__(self, request_stop: Callable[[str], None], stopping: Callable[[], bool]) -> None:
        self._request_stop = request_stop
        self._stopping = stopping
        self._exit_code: int | None = None
        # The handler only queues the signal; a thread of its own logs it and stops the loop. A
        # handler runs in the main thread between two bytecodes, possibly while that thread holds
        # a plain (non-reentrant) lock: the loop's stop Event's own lock while it starts to wait,
        # a log stream mid-write. Setting that Event or logging from the handler then deadlocks the
        # bot or breaks the log. SimpleQueue.put is documented safe to call from a signal handler.
        self._received: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._serve, name="stop-signals", daemon=True)

    def install(self) -> None:
        self._worker.start()
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        # Registered after logging's own exit handler, so it runs first: logging still works.
        atexit.register(ignore_stop_signals)

    def shutdown_finished(self, exit_code: int) -> None:
        """From now on a stop signal is answered with the exit code the process is about to return."""
        self._exit_code = exit_code

    def request(self, source: str) -> str:
        """A stop asked for without a signal (POST /stop, Telegram /stop): the same path as the first
        SIGTERM, the same graceful shutdown and exit code 0. Returns what happened, for the answer."""
        if self._exit_code is not None or self._stopping():
            return "already stopping"
        log.warning("stop requested by %s: stopping after this tick", source)
        self._request_stop(f"stop requested by {source}")
        return "stopping after this tick"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.put(signum)

    def _serve(self) -> None:
        while True:
            self._answer(self._received.get())

    def _answer(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._exit_code is not None:
            code = self._exit_code
            log.warning("%s received after the shutdown: ignored, exiting with code %d", name, code)
        elif self._stopping():
            # Interrupting the shutdown could leave an order half recorded; it finishes on its own.
            log.warning("%s received during shutdown: ignored, the shutdown is finishing cleanly", name)
        else:
            log.warning("%s received: stopping after this tick", name)
            self._request_stop(f"signal {name}")


def ignore_stop_signals() -> None:
    """Ignore the stop signals at the kernel level, for the last instants before the process exits."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
