"""Named points where a crash test can kill the bot (SIGKILL) at an exact moment.

`ARB_FAILPOINT=name` kills the process the first time `hit("name")` runs; `name:N` on the N-th
time. Unset (always, outside crash tests), `hit` is a single comparison. The points sit between
ledger writes and venue calls, where a crash is hardest to recover from.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("ARB_FAILPOINT") or None
_NAME, _, _NTH = (_SPEC or "").partition(":")
_TARGET = int(_NTH) if _NTH else 1
_hits = 0


def hit(name: str) -> None:
    global _hits
    if _SPEC is None or name != _NAME:
        return
    _hits += 1
    if _hits >= _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
