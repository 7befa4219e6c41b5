"""Logging setup: one rotating file per component plus the console, with secrets redacted everywhere.

Component loggers ("arbitrage.safety", ...) write to their own file; every other logger under
"arbitrage" writes to live_loop.log. Nothing propagates to the root logger once this is set up.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

from arbitrage.config import AppConfig, config_strings
from arbitrage.ops.log_health import LogWriteHealth
from arbitrage.url_credentials import mask_url_credentials, url_passwords

LOG_FORMAT = "%(asctime)s [%(levelname)-8s] [%(name)s] %(message)s"
ROOT_LOGGER = "arbitrage"

# component name -> logger name; the log file is <component>.log
COMPONENTS: dict[str, str] = {
    "live_loop": "arbitrage.live_loop",
    "health": "arbitrage.health",
    "safety": "arbitrage.safety",
    "watchdog": "arbitrage.watchdog",
    "sys_monitor": "arbitrage.sys_monitor",
    "execution": "arbitrage.execution",
}

MIN_SECRET_LEN = 4  # shorter values would redact ordinary words and numbers
_TELEGRAM_TOKEN = re.compile(r"(?<![A-Za-z0-9])bot\d+:[A-Za-z0-9_-]+")
_OWNED = "_arbitrage_ops_handler"  # marks handlers this module installed, so a re-setup removes them
# What a LogRecord learns of its thread and process, which LOG_FORMAT never shows, is a third of
# the cost of a line; the logging HOWTO ("Optimization") turns it off with these module flags,
# which stay off while the handlers of setup_logging are installed.
_RECORD_EXTRAS = ("logThreads", "logProcesses", "logMultiprocessing")
# Likewise the caller's file, line and function, found by walking the stack for every record
# (another tenth of a line); the same HOWTO section turns that off with `logging._srcfile = None`.
_SRCFILE = logging._srcfile


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no secret survives formatting: message, args, traceback, stack.

    Besides the given secret values it masks the password of any URL, whoever wrote the line:
    the last line of defence for a URL that reaches a message unmasked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = mask_url_credentials(text)
        # Every line passes here: the substring test spares the regex scan of lines without a token.
        return _TELEGRAM_TOKEN.sub("bot***", text) if "bot" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep the line (redacted) instead of losing it
            message = f"{record.msg} (args: {record.args!r})"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class LineFormatter(logging.Formatter):
    """LOG_FORMAT, with the date and time text made once per second instead of once per line.

    The lines are the same as logging.Formatter's; only the strftime of an unchanged second is reused.
    """

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second: int | None = None
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            # A handler formats under its own lock, and each handler has its own formatter.
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        if self.default_msec_format:
            return self.default_msec_format % (self._stamp, record.msecs)
        return self._stamp


class AuditFileHandler(TimedRotatingFileHandler):
    """A component's log file; a record it cannot write is reported to LogWriteHealth, not printed."""

    def __init__(self, path: Path, health: LogWriteHealth, backup_count: int, buffered: bool = False) -> None:
        super().__init__(path, when="midnight", backupCount=backup_count, encoding="utf-8")
        self._health = health
        self._label = str(path)
        self._failed = False
        # Buffered: records reach the file when the stream's buffer fills, at rotation and at
        # close, not one write call each (a replay's logs, remade by replaying again).
        self._buffered = buffered

    def flush(self) -> None:
        if not self._buffered:
            super().flush()

    def write_out(self) -> None:
        """Write what the buffer holds (a buffered handler's records so far)."""
        try:
            super().flush()
        except OSError as err:
            self._health.failed(self._label, err, audit=True)

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)
        if not self._failed and self._health.is_failing(self._label):
            self._health.succeeded(self._label)

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed = True
        self._health.failed(self._label, sys.exc_info()[1], audit=True)

    def close(self) -> None:
        # What a full disk left in the buffer fails again here: that must not break the exit.
        try:
            super().close()
        except OSError as err:
            self._health.failed(self._label, err, audit=True)


class ConsoleHandler(logging.StreamHandler):
    """The console (stdout): its failures are told once on stderr too, but it is not the audit log."""

    def __init__(self, health: LogWriteHealth) -> None:
        super().__init__(sys.stdout)
        self._health = health
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)
        if not self._failed and self._health.is_failing("the console"):
            self._health.succeeded("the console")

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed = True
        self._health.failed("the console", sys.exc_info()[1], audit=False)


def _managed_loggers() -> list[logging.Logger]:
    return [logging.getLogger(ROOT_LOGGER), *(logging.getLogger(n) for n in COMPONENTS.values())]


def reset_logging() -> None:
    """Remove and close the handlers setup_logging installed and let the loggers propagate again."""
    for logger in _managed_loggers():
        for handler in list(logger.handlers):
            if getattr(handler, _OWNED, False):
                logger.removeHandler(handler)
                # A handler is shared by several loggers; closing twice is harmless.
                handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for flag in _RECORD_EXTRAS:
        setattr(logging, flag, True)
    logging._srcfile = _SRCFILE


def write_out_logs() -> None:
    """Write what buffered log files hold: a replay's lines are all in its files when it returns."""
    for logger in _managed_loggers():
        for handler in logger.handlers:
            if isinstance(handler, AuditFileHandler):
                handler.write_out()


def _own(handler: logging.Handler, redactor: RedactingFilter) -> logging.Handler:
    handler.setFormatter(LineFormatter())
    handler.addFilter(redactor)
    setattr(handler, _OWNED, True)
    return handler


def setup_logging(
    log_dir: Path,
    level: str,
    console: bool = True,
    backup_count: int = 7,
    secrets: Iterable[str] = (),
    buffered: bool = False,
) -> LogWriteHealth:
    """Install the file and console handlers; calling it again replaces them (no duplicates).

    `buffered`: the files are written when their buffers fill and at close, not at every record:
    for a replay, whose logs nobody tails and whose run is made again rather than recovered (a
    live bot's audit log must hold every line before the next one happens).
    Returns what the handlers report when they cannot write (a full disk, say).
    """
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r} (one of DEBUG, INFO, WARNING, ERROR)")
    numeric = levels[level.upper()]
    reset_logging()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    redactor = RedactingFilter(secrets)
    health = LogWriteHealth()

    console_handler = _own(ConsoleHandler(health), redactor) if console else None
    for component, logger_name in COMPONENTS.items():
        file_handler = _own(
            AuditFileHandler(log_dir / f"{component}.log", health, backup_count, buffered), redactor
        )
        names = [logger_name]
        if component == "live_loop":
            # The catch-all shares live_loop's handler: two handlers rotating one file would clash.
            names.append(ROOT_LOGGER)
        for name in names:
            logger = logging.getLogger(name)
            logger.setLevel(numeric)
            logger.propagate = False
            logger.addHandler(file_handler)
            if console_handler is not None:
                logger.addHandler(console_handler)
    for flag in _RECORD_EXTRAS:
        setattr(logging, flag, False)
    logging._srcfile = None
    return health


def component_logger(name: str) -> logging.Logger:
    """The logger of a component by its short name ("safety", "watchdog", ...)."""
    try:
        return logging.getLogger(COMPONENTS[name])
    except KeyError:
        raise ValueError(f"unknown component {name!r} (one of {', '.join(COMPONENTS)})") from None


def secrets_from_env(config: AppConfig, env: Mapping[str, str]) -> list[str]:
    """Every secret value the run knows: the variables the config names (venue keys, alert
    credentials) and the passwords in the config's URLs (storage.url, redis.url, ...).

    A URL password is also masked wherever it appears on its own, e.g. decoded in a driver's error.
    """
    names: list[str] = []
    for venue in config.venues.values():
        names += [n for n in (venue.api_key_env, venue.api_secret_env) if n]
    names += [config.alerts.telegram_token_env, config.alerts.telegram_chat_id_env]
    names.append(config.health_server.control_token_env)  # the bearer token of POST /halt, /stop
    values = [env.get(name, "").strip() for name in names]
    values += [p for text in config_strings(config.model_dump(mode="json")) for p in url_passwords(text)]
    return [v for v in dict.fromkeys(values) if v]
