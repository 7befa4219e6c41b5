"""The suite's one way to wait: poll a condition until it holds, with a generous deadline.

Tests wait for what they mean (a book arrived, a breaker opened, a line was logged), never for time
to pass: on a loaded machine (two suites at once on two cores) everything is slower, so deadlines
are upper bounds that only a broken feature reaches, not estimates of how long things take.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    every_s: float = 0.02,
    proc: subprocess.Popen[bytes] | None = None,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails after `timeout_s` naming `what`, or at once if `proc` (the process that should make the
    condition true) exited first; `details` adds what helps to see why (e.g. the bot's output).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            exited = f"the process exited ({proc.returncode})"
            raise AssertionError(f"{exited} while waiting for {what}{_more(details)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{_more(details)}")
        time.sleep(every_s)


def _more(details: Callable[[], str] | None) -> str:
    return f"\n{details()}" if details is not None else ""
