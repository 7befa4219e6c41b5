"""The SysMonitor: samples this process's CPU, memory, file descriptors and threads for the watchdog."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from arbitrage.clock import Clock
from arbitrage.config import SysMonitorConfig
from arbitrage.ops.watchdog import Level, grade

log = logging.getLogger("arbitrage.sys_monitor")

SYS_METRICS: tuple[str, ...] = ("cpu_pct", "rss_mb", "open_fds", "threads")


@dataclass(frozen=True)
class SysSample:
    cpu_pct: float = 0.0
    rss_mb: float = 0.0
    open_fds: int = 0
    threads: int = 0
    levels: dict[str, Level] = field(default_factory=dict)  # per metric; empty when unavailable
    available: bool = False  # False without psutil, when disabled, or when the sample failed
    breaches: list[str] = field(default_factory=list)

    @property
    def level(self) -> Level:
        return max(self.levels.values(), default=Level.OK)

    def describe(self) -> str:
        if not self.available:
            return "process metrics unavailable"
        return (
            f"cpu={self.cpu_pct:.1f}% rss={self.rss_mb:.1f}MB fds={self.open_fds} "
            f"threads={self.threads} level={self.level.name}"
        )


class SysMonitor:
    """Samples at most once per sample_interval_sec; between samples it returns the last one."""

    def __init__(self, config: SysMonitorConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._last: SysSample = SysSample()
        self._last_at: float | None = None
        self._process: Any = None
        self._psutil: Any = None
        if not config.enabled:
            return
        try:
            import psutil
        except ImportError:
            log.warning("psutil is not installed: process CPU, memory, fd and thread metrics are off")
            return
        self._psutil = psutil
        self._process = psutil.Process()
        self._cpu_origin_set = False

    @property
    def available(self) -> bool:
        return self._process is not None

    @property
    def last(self) -> SysSample:
        return self._last

    def sample(self, now_monotonic: float | None = None) -> SysSample:
        now = self._clock.monotonic() if now_monotonic is None else now_monotonic
        if self._last_at is not None and now - self._last_at < self._config.sample_interval_sec:
            return self._last
        self._last_at = now
        if self._process is None:
            return self._last  # unavailable: the empty sample, all OK

        try:
            self._last = self._measure()
        except (self._psutil.Error, OSError) as err:
            log.warning("process metrics could not be read: %s", err)
            self._last = SysSample()
            return self._last
        if self._last.breaches:
            log.warning("%s: %s", self._last.describe(), "; ".join(self._last.breaches))
        elif log.isEnabledFor(logging.DEBUG):  # describe() formats every figure: not for nothing
            log.debug("%s", self._last.describe())
        return self._last

    def _measure(self) -> SysSample:
        p = self._process
        with p.oneshot():
            # cpu_percent(None) measures since its previous call. The first sample only sets the
            # origin, so imports and start-up work never count as load (they read ~100% and could
            # escalate the watchdog right after start); CPU is graded from the second sample on.
            measured = float(p.cpu_percent(interval=None))
            cpu = measured if self._cpu_origin_set else 0.0
            self._cpu_origin_set = True
            rss_mb = p.memory_info().rss / (1024 * 1024)
            fds = p.num_fds() if hasattr(p, "num_fds") else p.num_handles()  # num_handles: Windows
            threads = p.num_threads()
        c = self._config
        values = {"cpu_pct": cpu, "rss_mb": rss_mb, "open_fds": fds, "threads": threads}
        limits = {
            "cpu_pct": (c.warn_cpu_pct, c.max_cpu_pct),
            "rss_mb": (c.warn_rss_mb, c.max_rss_mb),
            "open_fds": (c.warn_open_fds, c.max_open_fds),
            "threads": (c.warn_threads, c.max_threads),
        }
        levels: dict[str, Level] = {}
        breaches: list[str] = []
        for name in SYS_METRICS:
            level, breach = grade(name, float(values[name]), *limits[name])
            levels[name] = level
            if breach:
                breaches.append(breach)
        return SysSample(cpu, rss_mb, int(fds), int(threads), levels, True, breaches)
