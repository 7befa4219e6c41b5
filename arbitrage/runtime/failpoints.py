"""Named points where a test can stop the bot at an exact moment: kill it, or hold it.

`ARB_FAILPOINT=name` kills the process (SIGKILL) the first time `hit("name")` runs; `name:N` on
the N-th time. The kill points sit between ledger writes and venue calls, where a crash is
hardest to recover from.

`ARB_PAUSE_AT=name[,name...]` with `ARB_PAUSE_DIR=dir` holds the process at `pause("name")`:
it creates `dir/name.reached` and waits until `dir/name.go` exists, so that a test can act (send
a signal, say) while the bot is exactly there. Signal handlers run while it waits.

Unset (always, outside these tests), `hit` and `pause` are a single comparison each.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_SPEC = os.environ.get("ARB_FAILPOINT") or None
_NAME, _, _NTH = (_SPEC or "").partition(":")
_TARGET = int(_NTH) if _NTH else 1
_hits = 0

_PAUSES = frozenset(filter(None, os.environ.get("ARB_PAUSE_AT", "").split(",")))
_PAUSE_DIR = Path(os.environ.get("ARB_PAUSE_DIR") or ".")
PAUSE_POLL_S = 0.01


def hit(name: str) -> None:
    global _hits
    if _SPEC is None or name != _NAME:
        return
    _hits += 1
    if _hits >= _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)


def pause(name: str) -> None:
    if not _PAUSES or name not in _PAUSES:
        return
    (_PAUSE_DIR / f"{name}.reached").touch()
    go = _PAUSE_DIR / f"{name}.go"
    while not go.exists():
        time.sleep(PAUSE_POLL_S)
