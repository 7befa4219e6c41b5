"""Halt, resume and stop at the operator's word, whoever carries it (POST on the health server,
a Telegram command): the same effects as the halt file and as SIGTERM.

Halt writes the halt file (`safety.halt_file`) and resume removes it, rather than flipping a flag
in memory: the halt then survives a restart, as an operator who halted a bot expects, and the
file stays the one switch that a shell, a POST and a chat command all turn. The loop reads it at
the start of every tick, so a halt takes effect on the next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from arbitrage.clock import Clock

log = logging.getLogger("arbitrage.live_loop")


class OperatorControl:
    def __init__(self, halt_file: Path, request_stop: Callable[[str], str], clock: Clock) -> None:
        self.halt_file = halt_file
        self._request_stop = request_stop
        self._clock = clock

    def halt(self, source: str) -> str:
        if self.halt_file.exists():
            return f"already halted ({self.halt_file} exists)"
        when = datetime.fromtimestamp(self._clock.time(), UTC).isoformat(timespec="seconds")
        self.halt_file.parent.mkdir(parents=True, exist_ok=True)
        self.halt_file.write_text(f"halted by {source} at {when}\n", encoding="utf-8")
        log.warning("operator halt requested by %s: %s written", source, self.halt_file)
        return f"halted: {self.halt_file} written; no new entries from the next tick, exits go on"

    def resume(self, source: str) -> str:
        if not self.halt_file.exists():
            return f"not halted ({self.halt_file} absent)"
        self.halt_file.unlink(missing_ok=True)
        log.warning("operator resume requested by %s: %s removed", source, self.halt_file)
        return f"resumed: {self.halt_file} removed; entries allowed from the next tick"

    def stop(self, source: str) -> str:
        return self._request_stop(source)
