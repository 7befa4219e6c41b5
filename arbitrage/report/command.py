"""`arb report`: find the ledger a run uses, read it, figure the report, print it (and the page)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console

from arbitrage.config import AppConfig, SafetyConfig, load_config
from arbitrage.errors import ArbitrageError, LedgerUnavailable
from arbitrage.report.figures import Window, compute_report
from arbitrage.store.ledger import ledger_url
from arbitrage.store.ledger_reader import describe_ledger, read_ledger

DEFAULT_CONFIG = "config/live.yml"


class ReportInputError(ArbitrageError):
    """The report cannot be made from what it was given (exit 2): one sentence says why."""


@dataclass(frozen=True)
class ReportOptions:
    config_path: str | None = None
    ledger: str | None = None
    data_dir: Path = Path("data")
    since: str | None = None
    until: str | None = None
    html: Path | None = None
    instance: str | None = None  # one worker of a fleet; every worker when None


def as_url(ledger: str) -> str:
    """A ledger URL, or a bare file path taken as a SQLite ledger."""
    return ledger if "://" in ledger else f"sqlite:///{ledger}"


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportInputError(f"{option} {value!r} is not a date: expected YYYY-MM-DD") from None


def _config(path: str | None) -> AppConfig | None:
    if path is not None:
        return load_config(path)
    # Like `arb run`, the default config when it is there; a bare --ledger needs none.
    return load_config(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None


def run_report(opts: ReportOptions, console: Console) -> None:
    since, until = parse_day(opts.since, "--since"), parse_day(opts.until, "--until")
    if since and until and since > until:
        raise ReportInputError(f"--since {since} is after --until {until}")
    config = _config(opts.config_path)
    url = as_url(opts.ledger) if opts.ledger else ledger_url(config, opts.data_dir)
    currency = config.accounting_currency if config else AppConfig.model_fields["accounting_currency"].default
    offset = (
        config.safety.trading_day_utc_offset_h
        if config
        else SafetyConfig.model_fields["trading_day_utc_offset_h"].default
    )
    window = Window(since, until, offset)
    if opts.html is not None and not opts.html.parent.is_dir():
        raise ReportInputError(f"--html {opts.html}: directory {opts.html.parent} does not exist")
    try:
        contents = read_ledger(url, window.start_ts, window.end_ts, opts.instance)
    except LedgerUnavailable as err:
        raise ReportInputError(str(err)) from None
    report = compute_report(contents, window, now=time.time())

    from arbitrage.report.terminal import report_tables, window_text

    where = describe_ledger(url)
    who = f", worker {opts.instance} only" if opts.instance else ""
    console.print(f"[bold]arb report[/]: {where}, {window_text(report)}{who}, money in {currency}")
    if opts.instance:
        console.print("daily rows are the whole fleet's: not shown for one worker", style="dim")
    for table in report_tables(report, currency):
        console.print(table)
    if opts.html is not None:
        from arbitrage.report.html_page import MATPLOTLIB_MISSING, render_page

        try:
            page = render_page(report, currency, where, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "matplotlib":
                raise
            raise ReportInputError(MATPLOTLIB_MISSING) from None
        tmp = opts.html.with_name(opts.html.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, opts.html)
        console.print(f"wrote {opts.html} ({len(page) // 1024} KiB)")
