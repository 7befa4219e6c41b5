from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

import pytest

from arbitrage.config import parse_config
from arbitrage.ops.logs import (
    COMPONENTS,
    ROOT_LOGGER,
    RedactingFilter,
    component_logger,
    reset_logging,
    secrets_from_env,
    setup_logging,
    write_out_logs,
)

LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \[(DEBUG|INFO|WARNING|ERROR|CRITICAL) *\] \[([\w.]+)\] (.*)$"
)
FILES = ["live_loop.log", "health.log", "safety.log", "watchdog.log", "sys_monitor.log", "execution.log"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def read(log_dir: Path, name: str) -> str:
    return (log_dir / name).read_text(encoding="utf-8")


def test_one_file_per_component_with_the_exact_format(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", console=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    for component, logger_name in COMPONENTS.items():
        logging.getLogger(logger_name).info("hello from %s", component)
    reset_logging()  # flush and close
    for component, logger_name in COMPONENTS.items():
        lines = read(tmp_path, f"{component}.log").splitlines()
        assert len(lines) == 1, (component, lines)
        m = LINE.match(lines[0])
        assert m, lines[0]
        assert m.group(1) == "INFO"
        assert m.group(2) == logger_name
        assert m.group(3) == f"hello from {component}"
        # The level padded to 8 (see docs/ARCHITECTURE.md, Operations).
        assert lines[0].split(" [", 1)[1].startswith("INFO    ] ")


def test_a_line_is_in_its_file_at_once_unless_buffered(tmp_path: Path) -> None:
    live, replay = tmp_path / "live", tmp_path / "replay"
    setup_logging(live, "INFO", console=False)
    logging.getLogger("arbitrage.execution").info("order sent")
    assert "order sent" in read(live, "execution.log")  # the audit log holds it before the next line
    setup_logging(replay, "INFO", console=False, buffered=True)
    logging.getLogger("arbitrage.execution").info("order replayed")
    assert read(replay, "execution.log") == ""  # in the buffer, not yet written
    write_out_logs()
    assert "order replayed" in read(replay, "execution.log")


def test_other_arbitrage_loggers_go_to_live_loop_log(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", console=False)
    for name in ("arbitrage.signal", "arbitrage.stoploss", "arbitrage.venues.upbit", "arbitrage.recovery"):
        logging.getLogger(name).warning("note from %s", name)
    logging.getLogger("arbitrage.safety").warning("rejected STALE_DATA")
    reset_logging()
    live = read(tmp_path, "live_loop.log")
    for name in ("arbitrage.signal", "arbitrage.stoploss", "arbitrage.venues.upbit", "arbitrage.recovery"):
        assert f"[WARNING ] [{name}] note from {name}" in live
    assert "STALE_DATA" not in live
    assert "STALE_DATA" in read(tmp_path, "safety.log")
    assert read(tmp_path, "execution.log") == ""


def test_console_gets_the_same_lines_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(tmp_path, "INFO", console=True)
    component_logger("watchdog").error("level ERROR")
    logging.getLogger("arbitrage.signal").info("signal line")
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert all(LINE.match(line) for line in lines)
    assert "[arbitrage.watchdog] level ERROR" in lines[0]
    assert err == ""


def test_nothing_reaches_the_root_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup_logging(tmp_path, "INFO", console=False)
    with caplog.at_level(logging.DEBUG):
        component_logger("safety").info("safety only")
        logging.getLogger("arbitrage.signal").info("loop only")
    assert caplog.records == []


def test_setup_again_replaces_handlers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(tmp_path, "INFO", console=True)
    setup_logging(tmp_path, "INFO", console=True)
    setup_logging(tmp_path, "INFO", console=True)
    logging.getLogger("arbitrage.live_loop").info("once")
    logging.getLogger("arbitrage.engine.x").info("twice?")
    assert len(logging.getLogger(ROOT_LOGGER).handlers) == 2
    assert len(logging.getLogger("arbitrage.safety").handlers) == 2
    out = capsys.readouterr().out
    assert out.count("once") == 1
    assert out.count("twice?") == 1
    reset_logging()
    assert read(tmp_path, "live_loop.log").count("once") == 1
    assert read(tmp_path, "live_loop.log").count("twice?") == 1


def test_level_filters_lower_records(tmp_path: Path) -> None:
    setup_logging(tmp_path, "WARNING", console=False)
    log = component_logger("execution")
    log.info("quiet")
    log.warning("loud")
    reset_logging()
    text = read(tmp_path, "execution.log")
    assert "quiet" not in text
    assert "loud" in text
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging(tmp_path, "LOUD")


def test_rotation_is_midnight_with_the_configured_backups(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", console=False, backup_count=3)
    handlers = [
        h for h in logging.getLogger("arbitrage.safety").handlers if isinstance(h, TimedRotatingFileHandler)
    ]
    assert len(handlers) == 1
    handler = handlers[0]
    assert (handler.when, handler.backupCount) == ("MIDNIGHT", 3)
    component_logger("safety").info("before rotation")
    handler.doRollover()
    component_logger("safety").info("after rotation")
    reset_logging()
    rotated = [p for p in tmp_path.iterdir() if p.name.startswith("safety.log.")]
    assert len(rotated) == 1
    assert re.fullmatch(r"safety\.log\.\d{4}-\d{2}-\d{2}", rotated[0].name)
    assert "before rotation" in rotated[0].read_text()
    assert "after rotation" in read(tmp_path, "safety.log")
    assert "before rotation" not in read(tmp_path, "safety.log")


SECRET_KEY = "uPb1tK3yValue"
SECRET = "s3cr3t-Binance-SECRET"
TG_TOKEN = "123456789:AAH-tokenTOKENtoken_xyz"


def test_secrets_are_redacted_in_messages_args_and_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(tmp_path, "DEBUG", console=True, secrets=[SECRET_KEY, SECRET, "abc"])
    log = logging.getLogger("arbitrage.venues.binance")
    log.info("connecting with key %s", SECRET_KEY)
    log.info(f"inline secret {SECRET} in the message")
    log.info("as dict arg %s", {"apiKey": SECRET_KEY, "secret": SECRET})
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("venue error")
    component_logger("health").info("posting to https://api.telegram.org/bot%s/sendMessage", TG_TOKEN)
    log.info("short values like abc are not secrets")
    log.info("bad args %d", SECRET)  # a formatting error must not leak either
    console = capsys.readouterr().out
    reset_logging()
    files = "".join(read(tmp_path, f) for f in FILES)
    for text in (console, files):
        assert SECRET_KEY not in text
        assert SECRET not in text
        assert TG_TOKEN not in text
        assert "AAH-tokenTOKENtoken_xyz" not in text
        assert "connecting with key ***" in text
        assert "RuntimeError: auth failed for ***" in text
        assert "Traceback (most recent call last)" in text
        assert "/bot***/sendMessage" in text
        assert "short values like abc are not secrets" in text


def test_telegram_urls_are_redacted_without_being_told_the_token() -> None:
    f = RedactingFilter()
    assert f.redact("POST https://api.telegram.org/bot987:AA-b_c/sendMessage") == (
        "POST https://api.telegram.org/bot***/sendMessage"
    )
    assert f.redact("robot1:arm stays") == "robot1:arm stays"


def test_redacting_filter_prefers_the_longest_secret() -> None:
    f = RedactingFilter(["abcd", "abcdefgh"])
    assert f.redact("x abcdefgh y abcd") == "x *** y ***"


def test_component_logger_names() -> None:
    assert component_logger("sys_monitor").name == "arbitrage.sys_monitor"
    with pytest.raises(ValueError, match="unknown component"):
        component_logger("nope")


def test_secrets_from_env_collects_venue_and_alert_values() -> None:
    config = parse_config(
        {
            "venues": {
                "upbit": {"exchange": "upbit", "quote": "KRW", "api_key_env": "UK", "api_secret_env": "US"},
                "binance": {"exchange": "binance", "quote": "USDT", "api_key_env": "BK"},
            },
            "alerts": {"telegram_token_env": "TG_T", "telegram_chat_id_env": "TG_C"},
            "health_server": {"control_token_env": "CTL"},
        }
    )
    env = {"UK": "upkey1", "US": "upsecret", "BK": "", "TG_T": TG_TOKEN, "TG_C": "987654", "OTHER": "nope"}
    assert secrets_from_env(config, env) == ["upkey1", "upsecret", TG_TOKEN, "987654"]
    # The bearer token of POST /halt, /resume, /stop is masked like any other secret.
    assert secrets_from_env(config, {**env, "CTL": "ctl-bearer"})[-1] == "ctl-bearer"
