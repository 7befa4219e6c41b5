from __future__ import annotations

import logging
import os
import sys
import threading

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import SysMonitorConfig
from arbitrage.ops.sysmonitor import SYS_METRICS, SysMonitor
from arbitrage.ops.watchdog import Level

LOGGER = "arbitrage.sys_monitor"


def test_samples_this_process_with_real_psutil() -> None:
    monitor = SysMonitor(SysMonitorConfig(), FakeClock())
    sample = monitor.sample(0.0)
    assert sample.available
    assert sample.rss_mb > 1.0
    assert sample.open_fds >= 3  # stdin, stdout, stderr at least
    assert sample.threads >= threading.active_count() - 1
    assert sample.cpu_pct >= 0.0
    assert set(sample.levels) == set(SYS_METRICS)
    assert sample.level == Level.OK


def test_start_up_work_never_counts_as_cpu_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil's first reading covers everything since the process started (imports, wiring: ~100%).

    The readings are scripted rather than burnt: a real busy loop is graded by wall time, which a
    loaded machine stretches, so what it would read is not up to the test.
    """
    config = SysMonitorConfig(sample_interval_sec=1.0, warn_cpu_pct=50.0, max_cpu_pct=60.0)
    monitor = SysMonitor(config, FakeClock())
    readings = iter([100.0, 95.0])  # start-up work, then a busy loop after the first sample
    monkeypatch.setattr(monitor._process, "cpu_percent", lambda interval=None: next(readings))
    first = monitor.sample(0.0)
    assert first.cpu_pct == 0.0
    assert first.levels["cpu_pct"] is Level.OK
    second = monitor.sample(1.0)  # load after the first sample is graded
    assert second.cpu_pct == 95.0
    assert second.levels["cpu_pct"] is Level.ERROR


def test_caches_until_the_sample_interval_has_elapsed() -> None:
    monitor = SysMonitor(SysMonitorConfig(sample_interval_sec=5.0), FakeClock())
    first = monitor.sample(100.0)
    assert monitor.sample(104.9) is first
    fresh = monitor.sample(105.0)
    assert fresh is not first
    assert monitor.sample(109.0) is fresh


def test_without_an_explicit_time_it_reads_the_clock() -> None:
    clock = FakeClock()
    monitor = SysMonitor(SysMonitorConfig(sample_interval_sec=5.0), clock)
    first = monitor.sample()
    clock.advance(4.0)
    assert monitor.sample() is first
    clock.advance(1.0)
    assert monitor.sample() is not first


def test_fd_count_follows_files_opened() -> None:
    monitor = SysMonitor(SysMonitorConfig(sample_interval_sec=1.0), FakeClock())
    before = monitor.sample(0.0).open_fds
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(20)]
    try:
        assert monitor.sample(1.0).open_fds >= before + 20
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize(
    ("overrides", "metric", "level"),
    [
        ({"warn_rss_mb": 1.0, "max_rss_mb": 1_000_000.0}, "rss_mb", Level.WARN),
        ({"warn_rss_mb": 1.0, "max_rss_mb": 2.0}, "rss_mb", Level.ERROR),
        ({"warn_open_fds": 1, "max_open_fds": 100_000}, "open_fds", Level.WARN),
        ({"warn_open_fds": 1, "max_open_fds": 2}, "open_fds", Level.ERROR),
        ({"warn_threads": 1, "max_threads": 100_000}, "threads", Level.WARN),
    ],
)
def test_thresholds_grade_each_metric_and_log_a_warning(
    overrides: dict[str, float], metric: str, level: Level, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = SysMonitor(SysMonitorConfig.model_validate(overrides), FakeClock())
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        sample = monitor.sample(0.0)
    assert sample.levels[metric] == level
    assert sample.level == level
    assert any(b.startswith(f"{metric}=") for b in sample.breaches)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert metric in warnings[0].getMessage()


def test_a_quiet_sample_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    monitor = SysMonitor(SysMonitorConfig(), FakeClock())
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        monitor.sample(0.0)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert "rss=" in records[0].getMessage()
    assert "level=OK" in records[0].getMessage()


def test_without_psutil_it_warns_once_and_reports_unavailable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # makes `import psutil` raise ImportError
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        monitor = SysMonitor(SysMonitorConfig(sample_interval_sec=1.0), FakeClock())
        samples = [monitor.sample(float(t)) for t in range(5)]
    assert not monitor.available
    assert all(not s.available and s.level == Level.OK and s.levels == {} for s in samples)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "psutil is not installed" in warnings[0].getMessage()


def test_disabled_monitor_is_silent_and_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        sample = SysMonitor(SysMonitorConfig(enabled=False), FakeClock()).sample(0.0)
    assert not sample.available
    assert sample.level == Level.OK
    assert [r for r in caplog.records if r.name == LOGGER] == []
