"""Log files that cannot be written: told once on stderr, counted, and told again on recovery."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.ops.log_health import LogWriteHealth
from arbitrage.ops.logs import AuditFileHandler, reset_logging, setup_logging


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    reset_logging()


def test_a_full_disk_is_told_once_not_once_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "execution.log").symlink_to("/dev/full")
    health = setup_logging(tmp_path, "INFO", console=False)
    for n in range(500):
        logging.getLogger("arbitrage.execution").info("fill %d", n)
    logging.getLogger("arbitrage.live_loop").info("this file is fine")
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"logging: cannot write {tmp_path / 'execution.log'}: [Errno 28] No space left on device" in err
    status = health.status()
    assert status.failing == {str(tmp_path / "execution.log"): "[Errno 28] No space left on device"}
    assert status.failures == 500
    assert "this file is fine" in (tmp_path / "live_loop.log").read_text(encoding="utf-8")


def test_recovery_is_told_once_with_what_was_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    health = LogWriteHealth()
    handler = AuditFileHandler(tmp_path / "x.log", health, backup_count=1)
    logger = logging.getLogger("test.log_health")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        good = handler.stream
        handler.stream = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 - swapped back below
        for _ in range(3):
            logger.warning("lost")
        assert not health.status().ok
        with contextlib.suppress(OSError):  # the lines left in its buffer cannot be written either
            handler.stream.close()
        handler.stream = good
        logger.warning("kept")
        logger.warning("kept too")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert health.status().ok and health.status().failures == 3
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[1] == f"logging: {tmp_path / 'x.log'} can be written again; 3 record(s) were lost"
    assert (tmp_path / "x.log").read_text(encoding="utf-8").count("kept") == 2
