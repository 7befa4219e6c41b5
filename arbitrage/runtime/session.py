"""One run of the bot, start to exit: the config, the engines and live guards checked, the instance
lock, then the run assembled (runtime.assembly), ticked, shut down and closed. Returns the process
exit code (see docs/ARCHITECTURE.md, Exit codes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, load_config
from arbitrage.engines.registry import build_engines
from arbitrage.errors import ConfigError, LiveRefused
from arbitrage.ops.live_guards import check_live_guards
from arbitrage.ops.logs import RedactingFilter, secrets_from_env
from arbitrage.runtime import failpoints
from arbitrage.runtime.assembly import Run, RunSettings, assemble
from arbitrage.runtime.wiring import lock_instance

log = logging.getLogger("arbitrage.live_loop")


@dataclass(frozen=True)
class RunOptions:
    config_path: str
    mode: str | None = None
    max_ticks: int | None = None
    interval_s: float | None = None
    seed: int | None = None
    log_dir: Path = Path("logs")
    data_dir: Path = Path("data")
    log_level: str | None = None
    record_dir: str | None = None  # --record: "" for record.dir, else the directory; None: as configured
    instance: str | None = None  # a fleet's worker: overrides `instance`
    symbols: tuple[str, ...] | None = None  # and the assets it trades


def prepare_config(opts: RunOptions) -> AppConfig:
    worker: dict[str, object] = {}
    if opts.instance is not None:
        worker["instance"] = opts.instance
    if opts.symbols is not None:
        worker["symbols"] = list(opts.symbols)
    config = load_config(opts.config_path, opts.mode, worker)
    if opts.seed is not None:
        config = config.model_copy(update={"mock": config.mock.model_copy(update={"seed": opts.seed})})
    if opts.record_dir is not None:
        record = {"enabled": True, **({"dir": opts.record_dir} if opts.record_dir else {})}
        config = config.model_copy(update={"record": config.record.model_copy(update=record)})
    return config


def run_session(opts: RunOptions, env: Mapping[str, str]) -> int:
    config = prepare_config(opts)  # ConfigError -> exit 2 before anything starts
    redactor = RedactingFilter(secrets_from_env(config, env))
    try:
        return _run(opts, config, env)
    except BaseException as err:
        # The CLI prints what escapes, outside the logging redaction: mask secret values here.
        _redact_exception(err, redactor)
        raise


def _redact_exception(err: BaseException, redactor: RedactingFilter) -> None:
    """Rewrite the messages of an exception and of its causes in place, secret values masked."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redactor.redact(a) if isinstance(a, str) else a for a in current.args)
        if isinstance(current, ConfigError):
            current.problems = [redactor.redact(p) for p in current.problems]
        if isinstance(current, LiveRefused):
            current.failed = [redactor.redact(f) for f in current.failed]
        if isinstance(current, OSError) and isinstance(current.strerror, str):
            current.strerror = redactor.redact(current.strerror)
        current = current.__cause__ or current.__context__


def _run(opts: RunOptions, config: AppConfig, env: Mapping[str, str]) -> int:
    # A user engine that cannot load is a config error too: found before logs/ or data/ exist.
    engines = build_engines(config)
    if config.mode.current == "live":
        failed = check_live_guards(config, env, Path.cwd())
        if failed:
            raise LiveRefused(failed)
    clock = SystemClock()
    # One bot per ledger: a second one is refused here, before it logs, touches the ledger or trades.
    lock = lock_instance(config, opts.data_dir, clock)
    try:
        interval = opts.interval_s if opts.interval_s is not None else config.loop.interval_s
        settings = RunSettings(opts.data_dir, opts.log_dir, interval, opts.max_ticks, opts.log_level)
        return trade_run(assemble(config, settings, env, clock, engines=engines, lock=lock))
    finally:
        lock.release()  # after the ledger is closed; the kernel or the server frees it should we die


def trade_run(run: Run) -> int:
    """Start, tick until stopped, then the graceful shutdown and every part closed, whatever
    happened in between."""
    run.start()
    code, reason = 1, "unexpected failure"
    try:
        code, reason = run.loop()
    except BaseException as err:
        log.exception("loop failed: %s", err)
        raise
    finally:
        try:
            run.finish(reason, code)
        finally:
            failpoints.pause("session.closed")
    if run.dry_run is not None and run.dry_run.refused:
        raise LiveRefused(run.dry_run.refused)
    return code
