"""Whether the log files can be written: what the log handlers report when a write fails.

The standard handler prints a traceback to stderr for every record it cannot write (105,868 of
them on a full disk) and the bot goes on without its audit log. Here a failing handler says so
once on stderr, counts what it loses, says so again once when it can write again, and the
Supervisor reads `status()` to stop entries and raise the watchdog.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class LogWriteStatus:
    failing: dict[str, str] = field(default_factory=dict)  # audit log file -> its last error
    failures: int = 0  # audit log records lost since start (a count that only grows)

    @property
    def ok(self) -> bool:
        return not self.failing

    def describe(self) -> str:
        return "; ".join(f"{name}: {error}" for name, error in sorted(self.failing.items()))


class LogWriteHealth:
    """Shared by the handlers setup_logging installs; safe to call from any thread.

    `audit` handlers are the log files (the record of what the bot did); the console is reported
    on stderr the same way but is not the audit log.
    """

    def __init__(self, stderr: TextIO | None = None) -> None:
        self._stderr = stderr
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self._audit: set[str] = set()
        self._lost: dict[str, int] = {}
        self._audit_failures = 0

    def failed(self, name: str, error: BaseException | None, audit: bool = True) -> None:
        text = _error_text(error)
        with self._lock:
            first = name not in self._failing
            self._failing[name] = text
            self._lost[name] = self._lost.get(name, 0) + 1
            if audit:
                self._audit.add(name)
                self._audit_failures += 1
        if first:
            self.tell(
                f"logging: cannot write {name}: {text}; its records are lost (counted, not printed) "
                "until it can be written again"
            )

    def succeeded(self, name: str) -> None:
        """A record was written: a failing handler has recovered (the caller checks `is_failing` first)."""
        with self._lock:
            if self._failing.pop(name, None) is None:
                return
            self._audit.discard(name)
            lost = self._lost.pop(name, 0)
        self.tell(f"logging: {name} can be written again; {lost} record(s) were lost")

    def is_failing(self, name: str) -> bool:
        return name in self._failing

    def status(self) -> LogWriteStatus:
        with self._lock:
            failing = {n: e for n, e in self._failing.items() if n in self._audit}
            return LogWriteStatus(failing, self._audit_failures)

    def tell(self, line: str) -> None:
        """One line on stderr, for what cannot wait for a log file that does not take it."""
        # The one place these failures are told when the logs themselves cannot take them.
        stream = self._stderr or sys.stderr
        try:
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # stderr gone too: the Supervisor still sees the status
            pass


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, OSError) and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}"
    return f"{type(error).__name__}: {error}"
