"""The `arb` command line: run, record, config check, health, sim, report, watch, replay.

Exit codes (docs/ARCHITECTURE.md, Exit codes): 0 finished or stopped by a signal; 1 unexpected
failure; 2 bad usage or invalid config; 3 watchdog CRITICAL; 4 live trading refused by a guard.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from arbitrage.config import MAX_INTERVAL_S, SEED_MAX, load_config
from arbitrage.errors import AlreadyRunning, ArbitrageError, ConfigError, LiveRefused
from arbitrage.url_credentials import mask_url_credentials

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CRITICAL, EXIT_LIVE_REFUSED = 0, 1, 2, 3, 4
RECORD_DIR_FROM_CONFIG = ""  # `--record` without a DIR: record.dir from the config


def _fail(message: str, code: int) -> None:
    # A message may quote a URL from the config or a driver's error: never with its password.
    click.echo(mask_url_credentials(message), err=True)
    sys.exit(code)


def _print_traceback() -> None:
    click.echo(mask_url_credentials(traceback.format_exc()).rstrip(), err=True)


def guarded(debug: bool, body: Callable[[], int]) -> int:
    """Turn the bot's errors into one readable message and the right exit code."""
    try:
        return body()
    except ConfigError as err:
        lines = "\n".join(f"  - {p}" for p in err.problems)
        _fail(
            f"config error ({len(err.problems)} problem{'s' if len(err.problems) != 1 else ''}):\n{lines}",
            EXIT_USAGE,
        )
    except LiveRefused as err:
        lines = "\n".join(f"  - {f}" for f in err.failed)
        _fail(f"live trading refused; failed guards:\n{lines}", EXIT_LIVE_REFUSED)
    except AlreadyRunning as err:  # a second bot on one ledger: a usage mistake, not a failure
        _fail(f"refused to start: {err}", EXIT_USAGE)
    except ArbitrageError as err:
        if debug:
            _print_traceback()
        _fail(f"error: {err}", EXIT_FAILURE)
    except Exception as err:  # the last line of defence: one sentence, traceback only with --debug
        if debug:
            _print_traceback()
        _fail(
            f"unexpected failure: {type(err).__name__}: {err} (run with --debug for the traceback)",
            EXIT_FAILURE,
        )
    return EXIT_FAILURE


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that refuses nan and inf: `nan < 0` is false, so the range alone lets them in.

    An infinite interval never ticks again; a NaN one breaks the tick schedule's arithmetic.
    """

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a valid number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Cross-exchange arbitrage bot."""


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config",
            "config_path",
            default="config/live.yml",
            show_default=True,
            help="Config file (YAML).",
        ),
        click.option(
            "--mode",
            type=click.Choice(["mock", "paper", "live"]),
            envvar="ARB_MODE",
            help="Overrides mode.current (env ARB_MODE).",
        ),
        click.option("--mock", is_flag=True, help="Same as --mode mock."),
        click.option("--once", is_flag=True, help="Run one tick and exit."),
        click.option("--loops", type=click.IntRange(min=1), help="Run N ticks and exit."),
        click.option(
            "--interval",
            type=FiniteFloatRange(min=0, max=MAX_INTERVAL_S),
            help="Seconds between tick starts (0 allowed).",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0, max=SEED_MAX),
            help="Seed of the mock market (overrides mock.seed).",
        ),
        click.option("--instance", envvar="ARB_INSTANCE", help="Overrides instance (env ARB_INSTANCE)."),
        click.option(
            "--symbols",
            envvar="ARB_SYMBOLS",
            help="Overrides symbols: the assets this worker trades, comma-separated (env ARB_SYMBOLS).",
        ),
        click.option("--log-dir", default="logs", show_default=True, type=click.Path(file_okay=False)),
        click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False)),
        click.option(
            "--log-level",
            type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
            help="Overrides logging.level.",
        ),
        click.option("--debug", is_flag=True, help="Show tracebacks on failure."),
        click.option(
            "--record",
            "record_dir",
            is_flag=False,
            flag_value=RECORD_DIR_FROM_CONFIG,
            metavar="[DIR]",
            help="Record every book to Parquet files in DIR (default record.dir); sets record.enabled.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command("run")
@run_options
def run_cmd(
    config_path: str,
    mode: str | None,
    mock: bool,
    once: bool,
    loops: int | None,
    interval: float | None,
    seed: int | None,
    instance: str | None,
    symbols: str | None,
    log_dir: str,
    data_dir: str,
    log_level: str | None,
    debug: bool,
    record_dir: str | None,
) -> None:
    """Run the live loop."""
    from arbitrage.runtime.session import RunOptions, run_session

    if mock and mode not in (None, "mock"):
        _fail(f"--mock conflicts with --mode {mode}", EXIT_USAGE)
    if once and loops is not None:
        # Which one was meant is a guess either way: one tick, or N of them.
        _fail(f"--once conflicts with --loops {loops} (--once is --loops 1)", EXIT_USAGE)
    opts = RunOptions(
        config_path=config_path,
        mode="mock" if mock else mode,
        max_ticks=1 if once else loops,
        interval_s=interval,
        seed=seed,
        log_dir=Path(log_dir),
        data_dir=Path(data_dir),
        log_level=log_level.upper() if log_level else None,
        record_dir=record_dir,
        instance=instance,
        symbols=None if symbols is None else tuple(s.strip() for s in symbols.split(",")),
    )
    sys.exit(guarded(debug, lambda: run_session(opts, dict(os.environ))))


@main.command("record")
@click.option("--config", "config_path", default="config/live.yml", show_default=True)
@click.option("--mode", type=click.Choice(["mock", "paper", "live"]), envvar="ARB_MODE",
              help="Overrides mode.current; live records as paper (public data, no keys).")
@click.option("--dir", "record_dir", metavar="DIR", help="Where the files go (default record.dir).")
@click.option("--duration", type=FiniteFloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long (default: until SIGINT/SIGTERM).")
@click.option("--log-dir", default="logs", show_default=True, type=click.Path(file_okay=False))
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--debug", is_flag=True, help="Show tracebacks on failure.")
def record_cmd(
    config_path: str,
    mode: str | None,
    record_dir: str | None,
    duration: float | None,
    log_dir: str,
    log_level: str | None,
    debug: bool,
) -> None:
    """Record the venues' order books to Parquet files, without trading."""
    from arbitrage.runtime.market_recording import RecordOptions, record_market

    opts = RecordOptions(
        config_path=config_path,
        mode=mode,
        dir=record_dir,
        duration_s=duration,
        log_dir=Path(log_dir),
        log_level=log_level.upper() if log_level else None,
    )

    def body() -> int:
        summary = record_market(opts, dict(os.environ))
        click.echo(
            f"recorded {summary.books} books to {summary.dir} ({summary.files} file(s)); "
            f"{summary.dropped} dropped"
        )
        return EXIT_OK

    sys.exit(guarded(debug, body))


@main.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@click.option("--config", "config_path", default="config/live.yml", show_default=True)
@click.option("--mode", type=click.Choice(["mock", "paper", "live"]), envvar="ARB_MODE")
def config_check(config_path: str, mode: str | None) -> None:
    """Validate the config and print the effective config, secrets redacted."""

    def body() -> int:
        config = load_config(config_path, mode)
        click.echo(yaml.safe_dump(config.redacted(), sort_keys=False, allow_unicode=True).rstrip())
        click.echo(
            f"# {config_path}: valid ({config.mode.current} mode, {len(config.venues)} venues, "
            f"{len(config.symbols)} assets)"
        )
        return EXIT_OK

    sys.exit(guarded(False, body))


@main.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback only, unless you mean it.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0 = any free.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--tick-ms", default=200.0, show_default=True, type=FiniteFloatRange(min=1), help="Book step.")
@click.option(
    "--coins",
    default=2,
    show_default=True,
    type=click.IntRange(1, 26),
    help="Coins listed on both venues: BTC, ETH, then SIMA, SIMB, ...",
)
def sim_cmd(host: str, port: int, seed: int, tick_ms: float, coins: int) -> None:
    """Run the loopback exchange simulator (Binance- and Upbit-like REST and WebSocket) until stopped."""
    from arbitrage.sim.market import sim_assets
    from arbitrage.sim.server import serve

    def body() -> int:
        serve(host=host, port=port, seed=seed, tick_ms=tick_ms, assets=sim_assets(coins))
        return EXIT_OK

    sys.exit(guarded(False, body))


@main.command("health")
@click.option("--config", "config_path", default="config/live.yml", show_default=True)
@click.option("--mode", type=click.Choice(["mock", "paper", "live"]), envvar="ARB_MODE")
# Plain strings, not click.Path: a log dir that is a file is a failed check in the table, not a usage error.
@click.option("--log-dir", default="logs", show_default=True)
@click.option("--data-dir", default="data", show_default=True)
def health_cmd(config_path: str, mode: str | None, log_dir: str, data_dir: str) -> None:
    """Check config, log dir, ledger, Redis and venues; exit 0 when all pass, 1 otherwise."""
    from rich.console import Console
    from rich.table import Table

    from arbitrage.ops.health_check import CheckStatus, run_health_checks

    def body() -> int:
        config = load_config(config_path, mode)
        results = run_health_checks(
            config,
            source=config_path,
            log_dir=Path(log_dir),
            data_dir=Path(data_dir),
            env=dict(os.environ),
        )
        table = Table(title=f"arb health: {config.instance} ({config.mode.current} mode)")
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
        style = {CheckStatus.OK: "green", CheckStatus.FAIL: "bold red", CheckStatus.SKIP: "yellow"}
        for result in results:
            table.add_row(result.name, f"[{style[result.status]}]{result.status.value}[/]", result.detail)
        # Piped output (CI, docker healthchecks) gets wide lines rather than details folded at 80 columns.
        console = Console(width=None if sys.stdout.isatty() else 200)
        console.print(table)
        failed = [r.name for r in results if r.failed]
        summary = f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "all checks passed"
        console.print(summary)
        return EXIT_FAILURE if failed else EXIT_OK

    sys.exit(guarded(False, body))


@main.command("report")
@click.option("--config", "config_path", help="Config file (default config/live.yml when it exists).")
@click.option("--ledger", help="Ledger URL (sqlite:///path, postgresql://...?schema=...) or a SQLite file.")
@click.option("--data-dir", default="data", show_default=True, help="Where a run keeps its SQLite ledger.")
@click.option("--since", metavar="YYYY-MM-DD", help="First trading day to report.")
@click.option("--until", metavar="YYYY-MM-DD", help="Last trading day to report.")
@click.option("--html", "html_path", metavar="FILE", help="Also write a self-contained HTML page.")
@click.option("--instance", metavar="NAME", help="One worker of a fleet only (default: every worker).")
@click.option("--debug", is_flag=True, help="Show tracebacks on failure.")
def report_cmd(
    config_path: str | None,
    ledger: str | None,
    data_dir: str,
    since: str | None,
    until: str | None,
    html_path: str | None,
    instance: str | None,
    debug: bool,
) -> None:
    """Report what the bot did from its ledger (read-only; safe while a bot runs)."""
    from rich.console import Console

    from arbitrage.report.command import ReportInputError, ReportOptions, run_report

    opts = ReportOptions(
        config_path=config_path,
        ledger=ledger,
        data_dir=Path(data_dir),
        since=since,
        until=until,
        html=Path(html_path) if html_path else None,
        instance=instance,
    )

    def body() -> int:
        try:
            # Piped output gets wide lines rather than tables folded at 80 columns.
            run_report(opts, Console(width=None if sys.stdout.isatty() else 160))
        except ReportInputError as err:  # no ledger there, a bad date: a usage mistake
            _fail(f"error: {err}", EXIT_USAGE)
        return EXIT_OK

    sys.exit(guarded(debug, body))


@main.command("watch")
@click.option("--url", help="The bot's health server (default http://127.0.0.1:8080).")
@click.option(
    "--redis", "redis_url", help="Read the console state from Redis instead (redis://host:port/db)."
)
@click.option("--instance", default="arb-1", show_default=True, help="With --redis: the bot's instance name.")
@click.option("--key-prefix", default="arb", show_default=True, help="With --redis: redis.key_prefix.")
@click.option("--refresh", default=1.0, show_default=True, type=FiniteFloatRange(min=0.1, max=60))
@click.option(
    "--fleet", "fleet_config", metavar="CONFIG",
    help="A fleet worker's config (fleet.enabled): also draw every worker and the shared budget.",
)  # fmt: skip
def watch_cmd(
    url: str | None, redis_url: str | None, instance: str, key_prefix: str, refresh: float,
    fleet_config: str | None,
) -> None:  # fmt: skip
    """A live full-screen dashboard of a running bot (q quits); never opens its ledger."""
    from arbitrage.report.fleet_watch import FleetView
    from arbitrage.report.watch import HttpState, RedisConsole, StateSource, watch

    if url and redis_url:
        _fail("error: --url and --redis: give one source, not both", EXIT_USAGE)
    source: StateSource
    if redis_url:
        try:
            source = RedisConsole(redis_url, key_prefix, instance)
        except ConfigError as err:
            _fail(f"error: --redis: {err}", EXIT_USAGE)
    else:
        url = url or "http://127.0.0.1:8080"
        if not url.startswith(("http://", "https://")):
            _fail(f"error: --url: expected http://host:port (the health server), found {url!r}", EXIT_USAGE)
        source = HttpState(url)
    fleet = None
    if fleet_config:
        try:
            config = load_config(fleet_config)
        except ConfigError as err:
            _fail(f"error: --fleet: {err}", EXIT_USAGE)
        if not config.fleet.enabled:
            _fail(f"error: --fleet: {fleet_config} has fleet.enabled false: no fleet to draw", EXIT_USAGE)
        fleet = FleetView(config)
    if not sys.stdout.isatty():
        _fail("error: arb watch draws a full-screen dashboard and needs a terminal on stdout", EXIT_USAGE)
    sys.exit(watch(source, refresh, fleet=fleet))


@main.command("replay")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="A recording: <DIR>/<venue>/<YYYY-MM-DD>.parquet (arb record).")
@click.option("--from", "start", metavar="WHEN", help="First data time: YYYY-MM-DD or ISO datetime, UTC.")
@click.option("--to", "end", metavar="WHEN", help="Last data time (a date includes its whole day).")
@click.option("--config", "config_path", default="config/live.yml", show_default=True)
@click.option("--out", type=click.Path(file_okay=False),
              help="The replay's directory (ledger, logs, state).  [default: data/replays/<UTC now>]")
@click.option("--ledger", type=click.Path(dir_okay=False),
              help="SQLite ledger to write; an existing one is continued (never a running bot's).")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="Replay each value of a dotted config key, in parallel; repeat for a grid.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--debug", is_flag=True, help="Show tracebacks on failure.")
def replay_cmd(
    data_dir: str,
    start: str | None,
    end: str | None,
    config_path: str,
    out: str | None,
    ledger: str | None,
    sweeps: tuple[str, ...],
    log_level: str | None,
    debug: bool,
) -> None:
    """Run the bot on a recording: same engines, trader and ledger, fills walking the recorded books."""
    from datetime import UTC, datetime

    from rich.console import Console

    from arbitrage.recording.tape import RecordingError
    from arbitrage.runtime.replay import ReplayInputError, ReplayOptions, ReplayResult, replay
    from arbitrage.runtime.replay_sweep import comparison_table, parse_sweep, sweep

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    opts = ReplayOptions(
        data=Path(data_dir),
        config_path=config_path,
        start=start,
        end=end,
        out=Path(out) if out else Path("data") / "replays" / stamp,
        ledger=Path(ledger) if ledger else None,
        log_level=log_level.upper() if log_level else None,
    )
    console = Console(width=None if sys.stdout.isatty() else 200)

    def body() -> int:
        try:
            results: list[tuple[dict[str, Any] | None, ReplayResult]]
            if sweeps:
                results = list(sweep(opts, parse_sweep(sweeps), os.environ))
            else:
                results = [(None, replay(opts, os.environ))]
        except (ReplayInputError, RecordingError) as err:
            _fail(f"error: {err}", EXIT_USAGE)
        first = results[0][1]
        when = f"{_utc(first.start)} .. {_utc(first.end)}"
        console.print(f"[bold]arb replay[/]: {opts.data}, {when}, {first.ticks:,} ticks a run")
        for _variant, result in results:
            took = f"{result.wall_s:.1f} s ({result.load_s:.1f} s reading)"
            console.print(f"  {result.run_dir}: {took}, {result.ticks / result.wall_s:,.0f} ticks/s")
        console.print(comparison_table(results, first.currency))
        return max(r.exit_code for _v, r in results)

    sys.exit(guarded(debug, body))


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


if __name__ == "__main__":
    main()
